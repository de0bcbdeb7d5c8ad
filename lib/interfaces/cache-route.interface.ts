import type { ExecutionContext } from '@nestjs/common';

/**
 * The key of a response cached by {@link CacheInterceptor}: a fixed string, or a function of
 * the execution context returning the key, or a Promise of it (as `@nestjs/cache-manager`'s
 * `CacheKeyFactory`). `undefined`, `null` or `''` from the function: do not cache this request.
 */
export type CacheKeyFactory =
  | string
  | ((context: ExecutionContext) => string | undefined | null | Promise<string | undefined | null>);

/**
 * A route's TTL for {@link CacheInterceptor}, in **seconds**: a number, a string of plain
 * decimal digits (`'60'`, `'1.5'`: what `ConfigService.get` returns from the environment), or a
 * function of the execution context returning either, or a Promise of either.
 */
export type CacheTtlFactory =
  number | string | ((context: ExecutionContext) => number | string | Promise<number | string>);

/**
 * The safety rules {@link CacheInterceptor} applies to one request, each `true` by default.
 * A subclass relaxes one by overriding `safetyRules(context)` and returning `false` for it;
 * the others keep their defaults:
 *
 * ```ts
 * protected override safetyRules(context: ExecutionContext): CacheSafetyRules {
 *   return { ...super.safetyRules(context), credentials: false };
 * }
 * ```
 *
 * The status rule cannot be relaxed: a cached answer is replayed with the status of the route
 * (`200`, or Nest's default `201` for a `POST` route without `@HttpCode`), so a response with any
 * other status would be replayed as a different one.
 */
export interface CacheSafetyRules {
  /**
   * A request carrying `Authorization`, `Proxy-Authorization` or `Cookie` is neither answered
   * from nor stored into the shared entry of its URL (its response may be personal), unless the
   * route is marked `@CachePerUser`. `false`: such a request shares the entry with everyone.
   * @defaultValue `true`
   */
  readonly credentials: boolean;
  /**
   * A response whose `Cache-Control` says `private`, `no-store` or `no-cache` is not stored.
   * `false`: it is stored all the same.
   * @defaultValue `true`
   */
  readonly cacheControl: boolean;
  /**
   * A response that sets a cookie (`Set-Cookie`) is not stored (it would hand one client's
   * cookie to every other). `false`: the body is stored; the cookie is not replayed on hits.
   * @defaultValue `true`
   */
  readonly setCookie: boolean;
  /**
   * A response with `Vary` is stored per value of the request headers it names, and one with
   * `Vary: *` is not stored. `false`: `Vary` is ignored; one entry answers every request.
   * @defaultValue `true`
   */
  readonly vary: boolean;
}

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
