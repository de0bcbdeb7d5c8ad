import type { ExecutionContext } from '@nestjs/common';

/** Name of the response header that says whether a response came from the cache. */
export const CACHE_STATUS_HEADER = 'X-Cache';

/** An Express response, a Fastify reply or a raw Node response. */
export interface StatusResponse {
  headersSent?: boolean;
  sent?: boolean;
  header?: (name: string, value: string) => unknown;
  setHeader?: (name: string, value: string) => unknown;
}

/** `true` for an object a status header can be written on. */
export function isResponse(value: unknown): value is StatusResponse {
  return (
    typeof value === 'object' &&
    value !== null &&
    (typeof (value as StatusResponse).header === 'function' ||
      typeof (value as StatusResponse).setHeader === 'function')
  );
}

/**
 * Writes `X-Cache` on an Express response, a Fastify reply or a raw Node response, unless the
 * headers are already on the wire.
 */
export function writeStatusHeader(response: StatusResponse, value: string | undefined): void {
  if (!value || response.headersSent || response.sent === true) return;
  // Node's own setHeader first (an Express response is one): Express's header() adds nothing
  // for a plain string value. A Fastify reply has only header().
  if (typeof response.setHeader === 'function') response.setHeader(CACHE_STATUS_HEADER, value);
  else if (typeof response.header === 'function') response.header(CACHE_STATUS_HEADER, value);
}

/** {@link writeStatusHeader} on the response of an HTTP execution context. */
export function writeCacheStatus(context: ExecutionContext, value: string | undefined): void {
  if (!value) return;
  // The HTTP response is argument 1 (`switchToHttp()` builds three closures per call).
  const response: unknown = context.getArgByIndex(1);
  if (isResponse(response)) writeStatusHeader(response, value);
}
