import { CacheConfigError } from '../utils/cache.errors';
import { describeValue } from '../utils/describe-value';
import type {
  FieldMapping,
  InvalidationDispatcherName,
  InvalidationEvent,
  InvalidationRuleOptions,
} from '../interfaces/invalidation-rule.interface';

/**
 * Ties a cached function (or method) to a change event (Restflow's `InvalidationRule`). Attach
 * it with `invalidateOn: [...]`; create it with the {@link InvalidationRule} function.
 */
export interface InvalidationRule<P = unknown> {
  /** The event (name or entity class). */
  readonly event: InvalidationEvent;
  /** Key field ← payload field. */
  readonly fieldMapping: FieldMapping<P>;
  /** Where the work runs. */
  readonly dispatcher: InvalidationDispatcherName;
}

/**
 * Declares that an event invalidates a cached function's entries. When the event fires with a
 * payload (or an array of payloads), each mapped key field takes the payload's value and the
 * matching entries are dropped: the exact key when every argument field is mapped, else the
 * partition of the mapped partition fields, else every entry of the key's namespace.
 *
 * @example
 * ```ts
 * InvalidationRule({ event: User, fieldMapping: { userId: 'id' } })          // TypeORM / publish(User, user)
 * InvalidationRule({ event: 'user.updated', fieldMapping: { userId: 'id' }, dispatcher: 'deferred' })
 * InvalidationRule({ event: 'catalog.reset' })                               // drops every entry
 * ```
 */
export function InvalidationRule<P = unknown>(
  options: InvalidationRuleOptions<P>,
): InvalidationRule<P> {
  if (options === null || typeof options !== 'object') {
    throw new CacheConfigError(
      'InvalidationRule({ event, fieldMapping, dispatcher }) needs an options object.',
    );
  }
  const { event, fieldMapping = {}, dispatcher = 'inline' } = options;
  if (
    !(typeof event === 'string' && event.length > 0) &&
    typeof event !== 'symbol' &&
    typeof event !== 'function'
  ) {
    throw new CacheConfigError(
      `InvalidationRule: "event" must be an event name or an entity class, got ${describeValue(event)}.`,
    );
  }
  if (fieldMapping === null || typeof fieldMapping !== 'object' || Array.isArray(fieldMapping)) {
    throw new CacheConfigError(
      `InvalidationRule(${describeEvent(event)}): "fieldMapping" must be an object such as { userId: 'id' }.`,
    );
  }
  for (const [field, source] of Object.entries(fieldMapping)) {
    if (!(typeof source === 'string' && source.length > 0) && typeof source !== 'function') {
      throw new CacheConfigError(
        `InvalidationRule(${describeEvent(event)}): fieldMapping.${field} must be a payload path ` +
          `such as 'id' or a function of the payload, got ${describeValue(source)}.`,
      );
    }
  }
  if (typeof dispatcher !== 'string' || dispatcher.length === 0) {
    throw new CacheConfigError(
      `InvalidationRule(${describeEvent(event)}): "dispatcher" must be a dispatcher name such as 'inline', 'deferred' or 'bullmq'.`,
    );
  }
  return Object.freeze({
    event,
    fieldMapping: Object.freeze({ ...fieldMapping }),
    dispatcher,
  });
}

/** A readable name of an event, for logs and job labels. */
export function describeEvent(event: InvalidationEvent): string {
  if (typeof event === 'string') return event;
  if (typeof event === 'symbol') return event.toString();
  return event.name || 'anonymous entity';
}
