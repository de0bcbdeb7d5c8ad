/**
 * What an invalidation rule listens to:
 *
 * - a string (or symbol) event name — fired by `CacheInvalidator.publish(name, payload)` and,
 *   when `@nestjs/event-emitter` is set up, by `eventEmitter.emit(name, payload)`;
 * - an entity class — fired by `CacheInvalidator.publish(User, entity)` and by the TypeORM
 *   subscriber after a committed insert, update or remove of that entity.
 *
 * @example
 * ```ts
 * const byName: InvalidationEvent = 'user.updated';
 * const byEntity: InvalidationEvent = User;
 * ```
 */
export type InvalidationEvent = string | symbol | (abstract new (...args: never[]) => unknown);

/**
 * Where one key field's value comes from in the event payload: a dotted path
 * (`'id'`, `'owner.id'`) or a function of the payload.
 *
 * @example
 * ```ts
 * const path: PayloadField = 'owner.id';
 * const fn: PayloadField<OrderPlaced> = (event) => event.order.customerId;
 * ```
 */
export type PayloadField<P = unknown> =
  | string
  // A method signature compares parameters bivariantly, so a rule typed for `User` payloads
  // still fits where `InvalidationRule[]` is expected.
  | { bivarianceHack(payload: P): unknown }['bivarianceHack'];

/**
 * Maps key field names (of the cached function's `KeyConstructor`) to payload fields:
 * `{ userId: 'id' }` reads the payload's `id` as the key's `userId`.
 *
 * @example
 * ```ts
 * const mapping: FieldMapping<User> = { userId: 'id', locale: (user) => user.settings.locale };
 * ```
 */
export type FieldMapping<P = unknown> = Readonly<Record<string, PayloadField<P>>>;

/**
 * One tag an invalidation rule invalidates: a template whose placeholders name paths into the
 * event payload (`'product:{id}'`, `'shop:{owner.shopId}'`), rendered with the key encoding — so
 * it gives the tag a cached method's `'product:{id}'` gives for the same value —, or a function
 * of the payload returning the tag (used verbatim).
 *
 * @example
 * ```ts
 * const byTemplate: InvalidationTag = 'product:{id}';
 * const byFunction: InvalidationTag<Order> = (order) => `customer:${order.customerId}`;
 * ```
 */
export type InvalidationTag<P = unknown> =
  string | { bivarianceHack(payload: P): string }['bivarianceHack'];

/**
 * Name of the dispatcher that runs a rule's invalidation: `'inline'` (default), `'deferred'`,
 * or a name registered through the module's `invalidation.dispatchers` (e.g. `'bullmq'`).
 *
 * @example
 * ```ts
 * InvalidationRule({ event: User, dispatcher: 'deferred' });
 * ```
 */
export type InvalidationDispatcherName = 'inline' | 'deferred' | 'bullmq' | (string & {});

/**
 * Options of {@link InvalidationRule}. A rule drops keys (`fieldMapping`), tags (`tags`), or
 * both: with `tags` and no `fieldMapping` it drops only the tagged entries; with neither, every
 * entry of the cached function.
 *
 * @example
 * ```ts
 * const options: InvalidationRuleOptions<User> = { event: User, fieldMapping: { userId: 'id' } };
 * InvalidationRule(options);
 * InvalidationRule({ event: 'product.updated', tags: ['product:{id}', 'products'] });
 * ```
 */
export interface InvalidationRuleOptions<P = unknown> {
  /** The event (name or entity class) that invalidates. */
  event: InvalidationEvent;
  /**
   * Key field ← payload field. Fields left out are unknown: when they leave the exact key
   * open, the rule drops the partition (known leading partition fields) or, failing that,
   * every entry of the key's namespace. `{}` therefore drops every entry of the function.
   * @default `{}` without `tags`; with `tags`, none (the rule drops no keys)
   */
  fieldMapping?: FieldMapping<P>;
  /**
   * Tags to invalidate (`CacheService.deleteByTag`), rendered from the payload — or from each
   * element of an array payload — (see {@link InvalidationTag}); at most 100. A tag that
   * cannot be rendered from a payload (a path with no value, a function that throws or returns
   * no string) is logged; the rule then drops every entry of its cached function instead when
   * the function's key is a `KeyConstructor`. Tags-only rules work on any cached method or
   * `cacheResult` function, whatever its key.
   *
   * @example
   * ```ts
   * InvalidationRule({ event: 'product.updated', tags: ['product:{id}', 'products'] })
   * ```
   */
  tags?: readonly InvalidationTag<P>[];
  /**
   * Where the work runs.
   * @default 'inline'
   */
  dispatcher?: InvalidationDispatcherName;
}
