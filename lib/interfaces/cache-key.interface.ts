/**
 * An object that renders keys from a call's arguments, for key schemes richer than a template.
 * `KeyConstructor` implements it, so a `KeyConstructor` can be passed as the `key` of
 * `@Cacheable`, `@CachePut` and `@CacheEvict`. The result is used verbatim: it must be
 * deterministic and injective over the arguments it reads.
 *
 * @example
 * ```ts
 * const byTenant: CacheKeySource = {
 *   renderArgs: (args, names) => `report:${String(args[names.indexOf('tenantId')])}`,
 * };
 * @Cacheable({ key: byTenant })
 * report(tenantId: string) { ... }
 * ```
 */
export interface CacheKeySource {
  /**
   * Renders the key of one call. `args` are the arguments with literal default values applied
   * to omitted ones; `parameterNames` are the method's parameter names by position (`''` for a
   * destructured parameter).
   */
  renderArgs(args: readonly unknown[], parameterNames: readonly string[]): string;
  /**
   * Optional check run when the decorator is applied (class definition time), so a key that
   * cannot work with the method fails before the first call. Throw to reject.
   *
   * @param owner `ClassName.methodName`, for error messages.
   */
  assertParameters?(parameterNames: readonly string[], owner: string): void;
}

/**
 * A function computing the key from the method's arguments, as passed (called with `this`
 * set to the instance). Its result is used verbatim, so make it injective yourself.
 *
 * @example
 * ```ts
 * @Cacheable({ key: (id: string, locale: string) => `product:${id}:${locale}` })
 * ```
 */
export type CacheKeyFunction = {
  // A method signature compares parameters bivariantly, so `(id: string) => string` fits.
  bivarianceHack(...args: unknown[]): string;
}['bivarianceHack'];

/**
 * Where a decorator's key comes from: a template (`'product:{id}'`, see the README's key
 * template rules), a {@link CacheKeyFunction}, or a {@link CacheKeySource} such as a
 * `KeyConstructor`.
 */
export type CacheKeySpec = string | CacheKeyFunction | CacheKeySource;
