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
 * Options of {@link InvalidationRule}.
 *
 * @example
 * ```ts
 * const options: InvalidationRuleOptions<User> = { event: User, fieldMapping: { userId: 'id' } };
 * InvalidationRule(options);
 * ```
 */
export interface InvalidationRuleOptions<P = unknown> {
  /** The event (name or entity class) that invalidates. */
  event: InvalidationEvent;
  /**
   * Key field ← payload field. Fields left out are unknown: when they leave the exact key
   * open, the rule drops the partition (known leading partition fields) or, failing that,
   * every entry of the key's namespace. `{}` therefore drops every entry of the function.
   * @default {}
   */
  fieldMapping?: FieldMapping<P>;
  /**
   * Where the work runs.
   * @default 'inline'
   */
  dispatcher?: InvalidationDispatcherName;
}
