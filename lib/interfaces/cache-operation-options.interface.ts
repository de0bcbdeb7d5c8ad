import type { CacheKeySpec, CacheKeyFunction } from './cache-key.interface';
import type { CacheLoadingOptions } from './cache-module-options.interface';
import type {
  InvalidationDispatcherName,
  InvalidationRuleOptions,
} from './invalidation-rule.interface';

/**
 * A function computing the tags of a call from the method's arguments, as passed (called with
 * `this` set to the instance). It must return 1 to 100 non-empty strings (or `[]`: no tags);
 * anything else is logged and the call runs uncached.
 *
 * @example
 * ```ts
 * @Cacheable({ key: 'order:{id}', tags: (id: string, shop: Shop) => [`shop:${shop.id}`] })
 * ```
 */
export type CacheTagsFunction = {
  bivarianceHack(...args: unknown[]): readonly string[];
}['bivarianceHack'];

/**
 * The tags of a decorator's entries: an array whose items are tag templates — rendered from the
 * arguments exactly like key templates (`'product:{id}'`, `{name.path}`, `{0}`; injective, and
 * checked against the method's parameters when the class is defined) — or functions of the
 * arguments returning one tag; or one {@link CacheTagsFunction} returning them all. At most
 * 100 tags; `[]` means none. A tag that cannot be rendered for a call (a function that throws
 * or returns no string) is logged and the call goes on uncached, as for a key: an entry stored
 * without one of its tags would escape that tag's invalidation.
 *
 * @example
 * ```ts
 * const tags: CacheTagsSpec = ['product:{id}', 'products', (id: string) => `shard:${id.slice(0, 2)}`];
 * ```
 */
export type CacheTagsSpec = readonly (string | CacheKeyFunction)[] | CacheTagsFunction;

/**
 * Decides from the method's arguments whether a decorator applies to this call (called with
 * `this` set to the instance); `false` makes the decorator step aside for the call.
 *
 * @example
 * ```ts
 * @Cacheable({ key: 'search:{query}', condition: (query: string) => query.length > 2 })
 * ```
 */
export type CacheCondition = {
  bivarianceHack(...args: unknown[]): boolean;
}['bivarianceHack'];

/**
 * Vetoes storing a result: when it returns `true` the result is returned but not cached.
 *
 * @example
 * ```ts
 * @Cacheable({ key: 'product:{id}', unless: (product: Product | null) => product === null })
 * ```
 */
export type CacheUnless = {
  bivarianceHack(result: unknown): boolean;
}['bivarianceHack'];

/**
 * Options of `@Cacheable`: the key, the TTL, the loading options of
 * {@link CacheLoadingOptions} (`jitter`, `timeouts`, `grace`, `graceBackoff`, `refreshAhead`,
 * `lock`; each defaults to the module's), `tags`, `condition`, `unless` and `invalidateOn`.
 */
export interface CacheableOptions extends CacheLoadingOptions {
  /**
   * The key: a template (`'product:{id}'`), a function of the arguments, or a key source such
   * as a `KeyConstructor`.
   * @default `ClassName:methodName:<each argument>`
   */
  key?: CacheKeySpec;
  /**
   * Seconds to keep the result; `0` never expires.
   * @default the module's `ttl`
   */
  ttl?: number | `${number}`;
  /**
   * Tags of the stored result, rendered from the arguments (see {@link CacheTagsSpec}):
   * `CacheService.deleteByTag`, `@CacheEvict({ tags })` or an invalidation rule naming one of
   * them drops it, whatever its key.
   *
   * @example
   * ```ts
   * @Cacheable({ key: 'product:{id}:{locale}', tags: ['product:{id}', 'products'] })
   * async getProduct(id: string, locale: string): Promise<Product> { ... }
   * ```
   */
  tags?: CacheTagsSpec;
  /** Skip the cache for calls whose arguments fail this test. */
  condition?: CacheCondition;
  /** Do not store results that pass this test (in the batch form: each id's value). */
  unless?: CacheUnless;
  /**
   * The batch form, for a method that takes a list of ids (`findByIds(ids: string[])`): each id
   * is cached under its own key — the key and tags templates render the list parameter as one
   * id (`'product:{ids}'`) — and a call runs the method **once**, with only the ids that missed
   * (its other arguments unchanged). Ids another caller is loading join that load. `true`: the
   * list is the first parameter; a name or position picks it; or {@link CacheBatchOptions}.
   *
   * The method returns its values in the order of the ids it was given (an array of the same
   * length: `undefined` for an id without a value), a `Map` from id to value (`map: true`), or
   * items in any order that carry their id (`by: 'id'`). The decorated method answers for the
   * whole list in the same shape. An id the method has no value for is not cached.
   *
   * @example
   * ```ts
   * @Cacheable({ key: 'product:{ids}', ttl: 600, batch: { by: 'id' } })
   * async findByIds(ids: string[]): Promise<Product[]> {
   *   return this.repo.findBy({ id: In(ids) }); // only the ids that missed
   * }
   * ```
   */
  batch?: boolean | string | number | CacheBatchOptions;
  /**
   * Events that drop this method's entries — `InvalidationRule({ event, fieldMapping, tags })`.
   * A rule with a `fieldMapping` (or with neither `fieldMapping` nor `tags`: every entry of the
   * method) drops keys, so it needs a `KeyConstructor` key (payload fields are mapped to key
   * fields). A rule with `tags` and no `fieldMapping` drops only the entries carrying the tags
   * it renders from the payload, and works with any key (a template, a function).
   *
   * @example
   * ```ts
   * @Cacheable({ key: UserPayloadKey, invalidateOn: [InvalidationRule({ event: User, fieldMapping: { userId: 'id' } })] })
   * async payload(userId: number): Promise<Payload> { ... }
   *
   * @Cacheable({
   *   key: 'product:{id}',
   *   tags: ['product:{id}'],
   *   invalidateOn: [InvalidationRule({ event: 'product.updated', tags: ['product:{id}'] })],
   * })
   * async getProduct(id: string): Promise<Product> { ... } // publish('product.updated', { id }) drops it
   * ```
   */
  // The shape of what `InvalidationRule(...)` returns, spelled with interface types so this
  // layer does not import from invalidation/.
  invalidateOn?: readonly Readonly<
    InvalidationRuleOptions & { readonly dispatcher: InvalidationDispatcherName }
  >[];
  /**
   * The named cache the result is cached in (a key of the module's
   * `caches`); an unknown name fails startup.
   * @default the module's own cache (`'default'`)
   */
  cache?: string;
}

/**
 * Options of `@CachePut`. `{result}` / `{result.path}` may be used in the key template and in
 * tag templates.
 */
export interface CachePutOptions {
  /**
   * The key the result is stored under.
   * @default `ClassName:methodName:<each argument>`
   */
  key?: CacheKeySpec;
  /**
   * Seconds to keep the result; `0` never expires.
   * @default the module's `ttl`
   */
  ttl?: number | `${number}`;
  /**
   * Fraction of the TTL (0 to 1) added at random to the stored result's TTL.
   * @default the module's `jitter`
   */
  jitter?: number;
  /**
   * Seconds the stored result is kept after it expires, as a stale value a failing
   * `@Cacheable` of the same key falls back on.
   * @default the module's `grace`
   */
  grace?: number;
  /**
   * Tags of the stored result (see {@link CacheTagsSpec}); templates may read `{result}`. Give
   * the tags the `@Cacheable` reading the same key gives, so the entry stays reachable by them.
   * When a tag cannot be rendered, nothing is stored and the key's entry is deleted.
   *
   * @example
   * ```ts
   * @CachePut({ key: 'product:{result.id}', tags: ['product:{result.id}', 'products'] })
   * async createProduct(input: NewProduct): Promise<Product> { ... }
   * ```
   */
  tags?: CacheTagsSpec;
  /** Skip the store for calls whose arguments fail this test. */
  condition?: CacheCondition;
  /** Do not store results that pass this test (the previous entry is kept). */
  unless?: CacheUnless;
  /**
   * The named cache the result is stored in (a key of the module's
   * `caches`); an unknown name fails startup.
   * @default the module's own cache (`'default'`)
   */
  cache?: string;
}

/**
 * Options of `@CacheEvict`. Give at most one of `key`, `prefix`, `allEntries` and `tags` (stack
 * several `@CacheEvict` to drop several kinds of targets); with none, the default key of the
 * method's arguments is evicted. `beforeInvocation` and `condition` go with any of them.
 */
export interface CacheEvictOptions {
  /** The key to delete. After invocation, `{result}` may be used in the template. */
  key?: CacheKeySpec;
  /**
   * Delete every key starting with this (rendered) prefix, e.g. `'products:'` or
   * `'user:{userId}:'`; taken literally, glob characters included.
   */
  prefix?: string | CacheKeyFunction;
  /**
   * Clear this application's whole namespace (`CacheService.clear()`).
   * @default false
   */
  allEntries?: boolean;
  /**
   * Invalidate every entry carrying one of these tags (`CacheService.deleteByTag`), rendered
   * from the arguments like `@Cacheable`'s tags (see {@link CacheTagsSpec}); after invocation,
   * `{result}` may be used in the templates. A tag that cannot be rendered is logged and the
   * eviction skipped.
   *
   * @example
   * ```ts
   * @CacheEvict({ tags: ['product:{id}'] })
   * async updateProduct(id: string, patch: Partial<Product>): Promise<void> { ... }
   *
   * @CacheEvict({ tags: ['products'], beforeInvocation: true })
   * async reimportCatalog(): Promise<void> { ... }
   * ```
   */
  tags?: CacheTagsSpec;
  /**
   * Evict before the method runs (so it happens even if the method throws).
   * @default false
   */
  beforeInvocation?: boolean;
  /** Skip the eviction for calls whose arguments fail this test. */
  condition?: CacheCondition;
  /**
   * The named cache to evict from (a key of the module's `caches`; `allEntries` clears
   * that cache only); an unknown name fails startup.
   * @default the module's own cache (`'default'`)
   */
  cache?: string;
}

/**
 * How a batch `@Cacheable` method takes its ids and returns its values (see
 * {@link CacheableOptions.batch}).
 */
export interface CacheBatchOptions {
  /**
   * The parameter holding the list of ids: its name or position.
   * @default 0
   */
  param?: string | number;
  /**
   * The method returns items in any order (ids without a value left out), each carrying its id:
   * this property of the item, or this function of it. Ids match as given or by their text
   * (`42` matches `'42'`). The decorated method returns the items found, in the order of the ids.
   */
  by?: string | ((item: never) => unknown);
  /**
   * The method returns a `Map` from id to value; so does the decorated method (the ids found, in
   * the order asked).
   * @default false: an array in the order of the ids
   */
  map?: boolean;
}
