import { CacheConfigError } from '../utils/cache.errors';
import { describeValue } from '../utils/describe-value';
import { KeyConstructor, type KeyTarget } from '../keys/key-constructor';
import { encodeKeyValue } from '../keys/key-constructor.encoding';
import { compilePayloadTag, type PayloadTagRenderer } from '../keys/tag-resolver';
import { describeEvent, type InvalidationRule } from './invalidation-rule';

/**
 * A cached function (or method) with its key and the rules that invalidate it. Built by
 * {@link registerInvalidation} (decorated methods) and by {@link cacheResult}.
 *
 * @example
 * ```ts
 * // what @Cacheable({ key: UserPayloadKey, invalidateOn: [rule] }) on UsersService.payload records
 * const binding: InvalidationBinding = { owner: 'UsersService.payload', key: UserPayloadKey, rules: [rule] };
 * ```
 */
export interface InvalidationBinding {
  /** `'UsersService.getPayload'`, or the wrapped function's name: for logs. */
  readonly owner: string;
  /**
   * The key of the cached entries; `undefined` when it is not a `KeyConstructor`, which only
   * rules dropping tags alone accept.
   */
  readonly key: KeyConstructor | undefined;
  /** The rules. */
  readonly rules: readonly InvalidationRule[];
  /** The named cache the entries live in (`cache: 'sessions'`); `undefined`: the module's own. */
  readonly cache?: string;
}

type Constructor = abstract new (...args: never[]) => unknown;

// Class → method name → binding. A WeakMap (not reflect-metadata) so classes can be collected.
const byClass = new WeakMap<object, Map<string | symbol, InvalidationBinding>>();

/**
 * Validates a key and its rules and returns the binding. Throws {@link CacheConfigError} when
 * a rule drops keys (it has a `fieldMapping`, or no `tags`) and the key is not a
 * {@link KeyConstructor}, or when a `fieldMapping` names a field the key lacks. A rule with
 * `tags` and no `fieldMapping` works with any key.
 */
export function createInvalidationBinding(
  owner: string,
  key: unknown,
  rules: readonly InvalidationRule[],
  cache?: string,
): InvalidationBinding {
  const list: readonly unknown[] = rules;
  if (!isArray(list)) {
    throw new CacheConfigError(`${owner}: invalidateOn must be an array of InvalidationRule(...).`);
  }
  for (const rule of rules) {
    if (!isRule(rule)) {
      throw new CacheConfigError(
        `${owner}: every invalidateOn entry must come from InvalidationRule({ event, fieldMapping, tags }).`,
      );
    }
  }
  const keyed = key instanceof KeyConstructor ? key : undefined;
  for (const rule of rules) {
    if (rule.fieldMapping === undefined) continue;
    if (!keyed) {
      throw new CacheConfigError(
        `${owner}: invalidateOn needs a KeyConstructor key (so an event's payload can be mapped to ` +
          `key fields) for the rule on ${describeEvent(rule.event)}, which drops keys; got ` +
          `${typeof key === 'string' ? `the template ${JSON.stringify(key)}` : typeof key}. ` +
          `Declare the key with KeyConstructor.define({ namespace, fields }), or give the rule ` +
          `tags and no fieldMapping (it then drops the tagged entries only).`,
      );
    }
    const names = keyed.argFields.map((f) => f.name);
    for (const field of Object.keys(rule.fieldMapping)) {
      if (!names.includes(field)) {
        throw new CacheConfigError(
          `${owner}: the rule on ${describeEvent(rule.event)} maps "${field}", which is not a field ` +
            `of key "${keyed.namespace}" (its fields: ${names.join(', ') || 'none'}).`,
        );
      }
    }
  }
  return Object.freeze({
    owner,
    key: keyed,
    rules: Object.freeze([...rules]),
    ...(cache !== undefined && { cache }),
  });
}

function isArray(value: unknown): boolean {
  return Array.isArray(value);
}

function isRule(value: unknown): value is InvalidationRule {
  if (typeof value !== 'object' || value === null || !('event' in value)) return false;
  const { fieldMapping, tags } = value as { fieldMapping?: unknown; tags?: unknown };
  return (
    Array.isArray(tags) &&
    ((typeof fieldMapping === 'object' && fieldMapping !== null) ||
      (fieldMapping === undefined && tags.length > 0))
  );
}

/**
 * Records that a method of a class is cached under `key` and invalidated by `rules`. This is
 * the hook a caching decorator calls for its `invalidateOn` option; every application that
 * provides the class (as a provider or controller) then runs the rules when their events fire.
 *
 * @param target the class, or its prototype (what a method decorator receives)
 * @param cache the named cache the method's entries live in (`undefined`: the module's own)
 * @example
 * ```ts
 * // inside a method decorator
 * registerInvalidation(target, propertyKey, options.key, options.invalidateOn ?? []);
 * ```
 */
export function registerInvalidation(
  target: object,
  propertyKey: string | symbol,
  key: unknown,
  rules: readonly InvalidationRule[],
  cache?: string,
): void {
  const type = (typeof target === 'function' ? target : target.constructor) as Constructor;
  const owner = `${type.name || 'anonymous'}.${String(propertyKey)}`;
  const binding = createInvalidationBinding(owner, key, rules, cache);
  let methods = byClass.get(type);
  if (!methods) {
    methods = new Map();
    byClass.set(type, methods);
  }
  if (binding.rules.length === 0) methods.delete(propertyKey);
  else methods.set(propertyKey, binding);
}

/**
 * The invalidation bindings of a class, its own and inherited (a subclass's method wins over
 * the parent's method of the same name).
 */
export function invalidationBindingsOf(type: unknown): InvalidationBinding[] {
  const found = new Map<string | symbol, InvalidationBinding>();
  let current: unknown = type;
  while (typeof current === 'function' && current !== Function.prototype) {
    for (const [method, binding] of byClass.get(current) ?? []) {
      if (!found.has(method)) found.set(method, binding);
    }
    current = Object.getPrototypeOf(current);
  }
  return [...found.values()];
}

/**
 * Called when a rule's `fieldMapping` cannot give a usable value for `field` from a payload
 * (its function threw or returned a Promise, a path getter threw, or the value cannot be
 * written into a key); `target` is what the rule drops instead. For a tag that cannot be
 * rendered, `field` is `tags[<index>]` and `target` is what the rule drops instead, if anything
 * (`undefined`: the rule's key is not a `KeyConstructor`, so nothing wider can be named).
 */
export type MappingProblemHandler = (
  field: string,
  error: unknown,
  target: KeyTarget | undefined,
) => void;

/** What one rule drops for one event: key targets and tags. */
export interface InvalidationPlan {
  readonly targets: KeyTarget[];
  readonly tags: string[];
}

/**
 * The entries one rule drops for one event payload (an array payload is several payloads).
 * A mapped field whose value cannot be had is treated like a value missing from the payload:
 * the target widens (to the partition, or the key's whole namespace) rather than dropping a
 * wrong key or nothing, and `onProblem` hears why. The rule's tags are rendered from each
 * payload; a tag that cannot be rendered widens the same way, to the key's namespace (when the
 * key is a `KeyConstructor`), and `onProblem` hears why.
 */
export function planInvalidation(
  binding: InvalidationBinding,
  rule: InvalidationRule,
  payload: unknown,
  onProblem?: MappingProblemHandler,
): InvalidationPlan {
  const payloads = Array.isArray(payload) ? (payload as unknown[]) : [payload];
  const targets: KeyTarget[] = [];
  const tags = new Set<string>();
  const renderers = rule.tags.length > 0 ? payloadTagsOf(rule) : [];
  const key = binding.key;
  for (const item of payloads) {
    if (rule.fieldMapping !== undefined && key) targets.push(keyTarget(key, rule, item, onProblem));
    renderers.forEach((renderer, index) => {
      try {
        tags.add(renderer.render(item));
      } catch (error) {
        const wider: KeyTarget | undefined = key && { prefix: key.prefix };
        if (wider) targets.push(wider);
        onProblem?.(`tags[${index}]`, error, wider);
      }
    });
  }
  return { targets, tags: [...tags] };
}

function keyTarget(
  key: KeyConstructor,
  rule: InvalidationRule,
  item: unknown,
  onProblem?: MappingProblemHandler,
): KeyTarget {
  const problems: Array<{ field: string; error: unknown }> = [];
  const values = mapPayload(rule, item, problems);
  let target: KeyTarget;
  try {
    target = key.target(values);
  } catch (error) {
    // Every value was checked above; should rendering still fail, drop everything.
    problems.push({ field: '*', error });
    target = { prefix: key.prefix };
  }
  for (const problem of problems) onProblem?.(problem.field, problem.error, target);
  return target;
}

// Rule → its tags compiled (a rule is frozen, so they are compiled once, on first use).
const compiledTags = new WeakMap<InvalidationRule, readonly PayloadTagRenderer[]>();

function payloadTagsOf(rule: InvalidationRule): readonly PayloadTagRenderer[] {
  let renderers = compiledTags.get(rule);
  if (!renderers) {
    const owner = `InvalidationRule(${describeEvent(rule.event)})`;
    renderers = rule.tags.map((tag) =>
      typeof tag === 'string' ? compilePayloadTag(tag, owner) : functionTag(tag),
    );
    compiledTags.set(rule, renderers);
  }
  return renderers;
}

function functionTag(fn: (payload: unknown) => unknown): PayloadTagRenderer {
  return {
    source: '<function>',
    render: (payload) => {
      const tag = fn(payload);
      if (isThenable(tag)) {
        Promise.resolve(tag).catch(() => undefined);
        throw new Error('returned a Promise; a tag function must return the tag itself');
      }
      if (typeof tag !== 'string' || tag.length === 0) {
        throw new Error(
          `returned ${describeValue(tag)}; a tag function must return a non-empty string`,
        );
      }
      return tag;
    },
  };
}

function mapPayload(
  rule: InvalidationRule,
  payload: unknown,
  problems: Array<{ field: string; error: unknown }>,
): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const [field, source] of Object.entries(rule.fieldMapping ?? {})) {
    let value: unknown;
    try {
      value = typeof source === 'function' ? source(payload) : readPath(payload, source);
      if (isThenable(value)) {
        // Never awaited, so its rejection must be handled here: an unhandled one ends the process.
        Promise.resolve(value).catch(() => undefined);
        throw new Error('returned a Promise; a fieldMapping function must return the value itself');
      }
      // A value no key can hold (a function, a symbol, a Map) cannot name an entry either.
      if (value !== undefined) encodeKeyValue(value, field);
    } catch (error) {
      problems.push({ field, error });
      continue;
    }
    // An unknown value widens the target (partition or namespace) instead of guessing.
    if (value !== undefined) values[field] = value;
  }
  return values;
}

function isThenable(value: unknown): boolean {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

function readPath(payload: unknown, path: string): unknown {
  let current = payload;
  for (const part of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}
