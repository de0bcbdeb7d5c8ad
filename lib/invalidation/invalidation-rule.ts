import { CacheConfigError } from '../utils/cache.errors';
import { MAX_TAGS } from '../config/validators';
import { describeError, describeValue } from '../utils/describe-value';
import { compilePayloadTag } from '../keys/tag-resolver';
import type {
  FieldMapping,
  InvalidationDispatcherName,
  InvalidationEvent,
  InvalidationRuleOptions,
  InvalidationTag,
} from '../interfaces/invalidation-rule.interface';

/**
 * Ties a cached function (or method) to a change event (Restflow's `InvalidationRule`). Attach
 * it with `invalidateOn: [...]`; create it with the {@link InvalidationRule} function.
 */
export interface InvalidationRule<P = unknown> {
  /** The event (name or entity class). */
  readonly event: InvalidationEvent;
  /** Key field ← payload field; `undefined` for a rule that drops tags only (no keys). */
  readonly fieldMapping: FieldMapping<P> | undefined;
  /** The tags it invalidates, rendered from the payload (`[]`: none). */
  readonly tags: readonly InvalidationTag<P>[];
  /** Where the work runs. */
  readonly dispatcher: InvalidationDispatcherName;
}

/**
 * Declares that an event invalidates a cached function's entries. When the event fires with a
 * payload (or an array of payloads), each mapped key field takes the payload's value and the
 * matching entries are dropped: the exact key when every argument field is mapped, else the
 * partition of the mapped partition fields, else every entry of the key's namespace.
 *
 * With `tags`, the rule also invalidates the tags it renders from each payload (templates whose
 * placeholders name payload paths, `'product:{id}'`); with `tags` and no `fieldMapping` it drops
 * only those tagged entries, and the cached method or function it is attached to may have any
 * key (a template, a function), not only a `KeyConstructor`. Tags go to the rule's dispatcher
 * with the keys, so they are invalidated inline, deferred or through BullMQ alike.
 *
 * @example
 * ```ts
 * InvalidationRule({ event: User, fieldMapping: { userId: 'id' } })          // TypeORM / publish(User, user)
 * InvalidationRule({ event: 'user.updated', fieldMapping: { userId: 'id' }, dispatcher: 'deferred' })
 * InvalidationRule({ event: 'catalog.reset' })                               // drops every entry
 * InvalidationRule({ event: 'product.updated', tags: ['product:{id}', 'products'] }) // tagged entries only
 * InvalidationRule({ event: Order, tags: [(order: Order) => `customer:${order.customerId}`], dispatcher: 'bullmq' })
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
  const { event, tags = [], dispatcher = 'inline' } = options;
  // Tags alone drop no keys; without tags, an absent mapping means every entry (`{}`).
  const fieldMapping = options.fieldMapping ?? (tags.length > 0 ? undefined : {});
  if (
    !(typeof event === 'string' && event.length > 0) &&
    typeof event !== 'symbol' &&
    typeof event !== 'function'
  ) {
    throw new CacheConfigError(
      `InvalidationRule: "event" must be an event name or an entity class, got ${describeValue(event)}.`,
    );
  }
  if (
    fieldMapping !== undefined &&
    (fieldMapping === null || typeof fieldMapping !== 'object' || Array.isArray(fieldMapping))
  ) {
    throw new CacheConfigError(
      `InvalidationRule(${describeEvent(event)}): "fieldMapping" must be an object such as { userId: 'id' }.`,
    );
  }
  for (const [field, source] of Object.entries(fieldMapping ?? {})) {
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
  checkTags(event, tags);
  return Object.freeze({
    event,
    fieldMapping: fieldMapping && Object.freeze({ ...fieldMapping }),
    tags: Object.freeze([...tags]),
    dispatcher,
  });
}

function checkTags(event: InvalidationEvent, tags: unknown): void {
  if (!Array.isArray(tags) || tags.length > MAX_TAGS) {
    throw new CacheConfigError(
      `InvalidationRule(${describeEvent(event)}): "tags" must be an array of at most ${MAX_TAGS} ` +
        `tag templates (such as 'product:{id}') or functions of the payload, got ${describeValue(tags)}.`,
    );
  }
  (tags as unknown[]).forEach((tag, index) => {
    if (typeof tag === 'function') return;
    if (typeof tag !== 'string' || tag.length === 0) {
      throw new CacheConfigError(
        `InvalidationRule(${describeEvent(event)}): tags[${index}] must be a non-empty tag ` +
          `template such as 'product:{id}' or a function of the payload, got ${describeValue(tag)}.`,
      );
    }
    try {
      compilePayloadTag(tag, `InvalidationRule(${describeEvent(event)})`);
    } catch (error) {
      throw new CacheConfigError(
        `InvalidationRule(${describeEvent(event)}): tags[${index}]: ${describeError(error)}`,
      );
    }
  });
}

/** A readable name of an event, for logs and job labels. */
export function describeEvent(event: InvalidationEvent): string {
  if (typeof event === 'string') return event;
  if (typeof event === 'symbol') return event.toString();
  return event.name || 'anonymous entity';
}
