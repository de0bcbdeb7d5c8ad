import type { ExecutionContext } from '@nestjs/common';

/** Name of the response header that says whether a response came from the cache. */
export const CACHE_STATUS_HEADER = 'X-Cache';

interface HeaderWritable {
  headersSent?: boolean;
  sent?: boolean;
  header?: (name: string, value: string) => unknown;
  setHeader?: (name: string, value: string) => unknown;
}

/**
 * Writes `X-Cache` on an Express response or a Fastify reply (both have `header()`), or a raw
 * Node response, unless the headers are already on the wire.
 */
export function writeCacheStatus(context: ExecutionContext, value: string | undefined): void {
  if (!value) return;
  const response = context.switchToHttp().getResponse<HeaderWritable | undefined>();
  if (!response || typeof response !== 'object' || response.headersSent || response.sent === true) {
    return;
  }
  if (typeof response.header === 'function') response.header(CACHE_STATUS_HEADER, value);
  else if (typeof response.setHeader === 'function') response.setHeader(CACHE_STATUS_HEADER, value);
}
