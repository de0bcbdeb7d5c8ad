import type { ExecutionContext } from '@nestjs/common';

/**
 * The key of a response cached by {@link CacheInterceptor}: a fixed string, or a function of
 * the execution context returning the key (`undefined`: do not cache this request).
 */
export type CacheKeyFactory = string | ((context: ExecutionContext) => string | undefined);

/** Seconds, or a function of the execution context returning seconds. */
export type CacheTtlFactory = number | ((context: ExecutionContext) => number | Promise<number>);

/**
 * Identifies the user of a request for {@link CachePerUser}; `undefined` (or `null`, `''`)
 * means "no user known".
 */
export type CacheUserIdentifier = (
  context: ExecutionContext,
) => string | number | null | undefined | PromiseLike<string | number | null | undefined>;

/** What `@CachePerUser` records. @internal */
export interface CachePerUserMetadata {
  /** The identifier given, if any. */
  readonly identify?: CacheUserIdentifier;
}
