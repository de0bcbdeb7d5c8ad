import { CacheKeyError } from '../utils/cache.errors';
import { encodeKeyValue } from './key-constructor.encoding';
import type { CacheKeySource } from '../interfaces/cache-key.interface';
import type { ArgKeyField, KeyField } from './key-constructor.fields';

/**
 * How a {@link KeyConstructor} is declared.
 *
 * @example
 * ```ts
 * const definition: KeyConstructorDefinition = { namespace: 'users', fields: [argField('userId')] };
 * new KeyConstructor(definition);
 * ```
 */
export interface KeyConstructorDefinition<F extends readonly KeyField[] = readonly KeyField[]> {
  /**
   * First segment of every key, so the keys of one kind of data never meet another's; also the
   * prefix that wipes all of them. Letters, digits and `_ $ . / -`.
   */
  namespace: string;
  /** The key's fields, in order; partition fields are moved to the front (keeping their order). */
  fields: F;
}

/**
 * Names of the argument fields of a field list (what `render` and `fieldMapping` accept).
 *
 * @example
 * ```ts
 * type Names = ArgFieldNames<[ArgKeyField<'userId'>, ConstKeyField<'v'>]>; // 'userId'
 * ```
 */
export type ArgFieldNames<F extends readonly KeyField[]> = F[number] extends infer U
  ? U extends ArgKeyField<infer N>
    ? N
    : never
  : never;

/**
 * Values of a key's fields: by field name (`{ userId: 42, 'filter.status': 'open' }`), or
 * shaped like the arguments (`{ userId: 42, filter: { status: 'open' } }`).
 *
 * @example
 * ```ts
 * const values: KeyFieldValues<'userId'> = { userId: 42 };
 * UserPayloadKey.render(values);
 * ```
 */
export type KeyFieldValues<N extends string = string> = { readonly [K in N]?: unknown } & {
  readonly [name: string]: unknown;
};

/**
 * What an invalidation drops: one exact key, or every key under a prefix (a partition, or the
 * whole namespace when the known values do not pin a partition down).
 *
 * @example
 * ```ts
 * UserPayloadKey.target({ userId: 42 }); // { prefix: 'users:userId=42:' }
 * ```
 */
export type KeyTarget = { readonly key: string } | { readonly prefix: string };

const NAMESPACE = /^[A-Za-z0-9_$./-]+$/;
const hasOwn = (o: object, k: string) => Object.prototype.hasOwnProperty.call(o, k);

/**
 * A declarative cache key (Restflow's `KeyConstructor`): a namespace, then the partition
 * fields, then the other fields, each written as `name=value`:
 *
 * ```text
 * users:userId=42:locale=en:v=1        // namespace users, partition userId, then locale and v
 * ```
 *
 * Every entry of one partition shares the prefix `users:userId=42:`, so it can be wiped with
 * one `deleteByPrefix` ({@link KeyConstructor.partition}). Values are escaped (`:`, `=`, `%`,
 * `~`, braces and the glob characters `* ? [ ] \`), so keys are injective and a value can never
 * match another user's prefix; objects render the same whatever their property order. A
 * constant field (a version) that is bumped makes the old entries unreachable.
 *
 * Use it as the `key` of `@Cacheable` / `@CachePut` / `@CacheEvict`, of {@link cacheResult},
 * or directly with `CacheService`.
 *
 * @example
 * ```ts
 * export const UserPayloadKey = KeyConstructor.define({
 *   namespace: 'users',
 *   fields: [argField('userId', { partition: true }), constField('v', 1)],
 * });
 *
 * await cache.set(UserPayloadKey.render({ userId: 42 }), payload); // 'users:userId=42:v=1'
 * await cache.deleteByPrefix(UserPayloadKey.partition({ userId: 42 })); // every entry of user 42
 * ```
 */
export class KeyConstructor<N extends string = string> implements CacheKeySource {
  /** The namespace, first segment of every key. */
  readonly namespace: string;
  /** The fields in key order: partition fields first, then the others as declared. */
  readonly fields: readonly KeyField[];
  /** The argument fields, in key order. */
  readonly argFields: readonly ArgKeyField[];
  private readonly partitionCount: number;

  /**
   * Declares a key and infers its field names, so `render` and `partition` are type-checked.
   *
   * @example
   * ```ts
   * const OrdersKey = KeyConstructor.define({
   *   namespace: 'orders',
   *   fields: [argField('tenantId', { partition: true }), argField('filter.status'), constField('v', 1)],
   * });
   * OrdersKey.render({ tenantId: 7, filter: { status: 'open' } }); // 'orders:tenantId=7:filter.status=open:v=1'
   * ```
   */
  static define<const F extends readonly KeyField[]>(
    definition: KeyConstructorDefinition<F>,
  ): KeyConstructor<ArgFieldNames<F>> {
    return new KeyConstructor<ArgFieldNames<F>>(definition);
  }

  constructor(definition: KeyConstructorDefinition) {
    const { namespace, fields } = definition ?? ({} as KeyConstructorDefinition);
    if (typeof namespace !== 'string' || !NAMESPACE.test(namespace)) {
      throw new CacheKeyError(
        `KeyConstructor: invalid namespace ${JSON.stringify(namespace)}; use letters, digits and _ $ . / -.`,
      );
    }
    const list: readonly KeyField[] = fields;
    if (!isArray(list)) {
      throw new CacheKeyError(
        `KeyConstructor "${namespace}": fields must be an array of argField(...) / constField(...).`,
      );
    }
    const names = new Set<string>();
    for (const field of list) {
      if (!field || (field.kind !== 'arg' && field.kind !== 'const')) {
        throw new CacheKeyError(
          `KeyConstructor "${namespace}": every field must come from argField(...) or constField(...).`,
        );
      }
      if (names.has(field.name)) {
        throw new CacheKeyError(
          `KeyConstructor "${namespace}": two fields are named "${field.name}"; give one a { name }.`,
        );
      }
      names.add(field.name);
    }
    const isPartition = (f: KeyField) => f.kind === 'arg' && f.partition;
    this.namespace = namespace;
    this.fields = Object.freeze([
      ...list.filter(isPartition),
      ...list.filter((f) => !isPartition(f)),
    ]);
    this.argFields = Object.freeze(this.fields.filter((f): f is ArgKeyField => f.kind === 'arg'));
    this.partitionCount = this.fields.filter(isPartition).length;
  }

  /** Prefix shared by every key of this constructor (`'users:'`): wipes all of them. */
  get prefix(): string {
    return `${this.namespace}:`;
  }

  /** Names of the partition fields, in key order. */
  get partitionFields(): readonly N[] {
    return this.argFields.slice(0, this.partitionCount).map((f) => f.name as N);
  }

  /**
   * The key for the given field values — for use with `CacheService` directly. Every argument
   * field must be given (by field name or through the parameter it reads); a value given as
   * `undefined` renders as such.
   *
   * @throws CacheKeyError when a field is missing or holds a value that cannot be rendered.
   * @example
   * ```ts
   * UserPayloadKey.render({ userId: 42 }); // 'users:userId=42:v=1'
   * ```
   */
  render(values: KeyFieldValues<N>): string {
    assertValues(values, this.namespace);
    return this.compose((field) => {
      const found = lookup(values, field);
      if (!found.present) {
        throw new CacheKeyError(
          `KeyConstructor "${this.namespace}": no value for field "${field.name}" ` +
            `(got ${describeKeys(values)}).`,
        );
      }
      return found.value;
    });
  }

  /**
   * The key of one call ({@link CacheKeySource}): each argument field reads the parameter of
   * its name (or position) from `args`. Decorators and {@link cacheResult} call this for you,
   * with literal default values already applied to omitted arguments.
   */
  renderArgs(args: readonly unknown[], parameterNames: readonly string[]): string {
    return this.compose((field) => readArgument(field, args, parameterNames, this.namespace));
  }

  /** The field values of one call, by field name (what {@link render} turns into the key). */
  valuesFromArgs(args: readonly unknown[], parameterNames: readonly string[]): Record<N, unknown> {
    const values: Record<string, unknown> = {};
    for (const field of this.argFields) {
      values[field.name] = readArgument(field, args, parameterNames, this.namespace);
    }
    return values;
  }

  /**
   * Throws {@link CacheKeyError} when an argument field names a parameter that
   * `parameterNames` lacks. Decorators call this once, when the method is declared.
   *
   * @param owner `ClassName.methodName`, for the message.
   */
  assertParameters(parameterNames: readonly string[], owner: string): void {
    for (const field of this.argFields) {
      if (typeof field.source === 'number') continue;
      const root = field.source.split('.')[0];
      if (/^\d+$/.test(root)) continue;
      if (!parameterNames.includes(root)) {
        throw new CacheKeyError(
          `KeyConstructor "${this.namespace}": field "${field.name}" reads parameter "${root}", but ` +
            `${owner}(${parameterNames.join(', ')}) has no such parameter. Fix the field's path, or ` +
            `use a position for destructured parameters: argField(0, { name: '${field.name}' }).`,
        );
      }
    }
  }

  /**
   * The prefix of one partition, for `cache.deleteByPrefix(...)`: every entry whose partition
   * fields hold these values, whatever its other fields (and whatever its version). With
   * several partition fields, a leading subset may be given (`{ tenantId }` alone wipes the
   * tenant; `{ tenantId, userId }` one user of it).
   *
   * @example
   * ```ts
   * await cache.deleteByPrefix(UserPayloadKey.partition({ userId: 42 })); // 'users:userId=42:'
   * ```
   */
  partition(values: KeyFieldValues<N>): string {
    assertValues(values, this.namespace);
    if (this.partitionCount === 0) {
      throw new CacheKeyError(
        `KeyConstructor "${this.namespace}" has no partition fields; mark one with ` +
          `argField(name, { partition: true }), or wipe the whole namespace with its prefix.`,
      );
    }
    const known = this.knownPartition(values);
    if (known === 0) {
      throw new CacheKeyError(
        `KeyConstructor "${this.namespace}": partition(...) needs a value for "${this.argFields[0].name}" ` +
          `(got ${describeKeys(values)}).`,
      );
    }
    const later = this.argFields
      .slice(known, this.partitionCount)
      .find((f) => lookup(values, f).present);
    if (later) {
      throw new CacheKeyError(
        `KeyConstructor "${this.namespace}": partition field "${later.name}" was given without ` +
          `"${this.argFields[known].name}", which comes before it in the key.`,
      );
    }
    return this.partitionPrefix(values, known);
  }

  /**
   * The narrowest set of entries that surely holds every entry matching `values`, given that
   * some fields may be unknown (`undefined` or absent): the exact key when every argument field
   * is known; else the prefix of the known leading partition fields; else the whole namespace.
   * Invalidation rules use this.
   */
  target(values: KeyFieldValues<N>): KeyTarget {
    assertValues(values, this.namespace);
    const known = (field: ArgKeyField) => {
      const found = lookup(values, field);
      return found.present && found.value !== undefined;
    };
    if (this.argFields.every(known)) return { key: this.render(values) };
    const partitions = this.knownPartition(values);
    if (partitions > 0) return { prefix: this.partitionPrefix(values, partitions) };
    return { prefix: this.prefix };
  }

  /** A readable outline of the key, e.g. `users:userId={userId}:v=1`. */
  toString(): string {
    return this.compose((field) => `{${field.name}}`, true);
  }

  private compose(valueOf: (field: ArgKeyField) => unknown, raw = false): string {
    let key = this.prefix;
    this.fields.forEach((field, index) => {
      const value =
        field.kind === 'const'
          ? encodeKeyValue(field.value, field.name)
          : raw
            ? String(valueOf(field))
            : encodeKeyValue(valueOf(field), field.name);
      const segment = `${field.name}=${value}`;
      // Partition segments are each closed by ':' so 'userId=4:' is never a prefix of 'userId=42:'.
      key +=
        index < this.partitionCount
          ? `${segment}:`
          : index > this.partitionCount
            ? `:${segment}`
            : segment;
    });
    return key;
  }

  private knownPartition(values: KeyFieldValues<N>): number {
    let count = 0;
    while (count < this.partitionCount) {
      const found = lookup(values, this.argFields[count]);
      if (!found.present || found.value === undefined) break;
      count++;
    }
    return count;
  }

  private partitionPrefix(values: KeyFieldValues<N>, count: number): string {
    let prefix = this.prefix;
    for (const field of this.argFields.slice(0, count)) {
      prefix += `${field.name}=${encodeKeyValue(lookup(values, field).value, field.name)}:`;
    }
    return prefix;
  }
}

/** Resolves a field from values given by field name, or shaped like the arguments. */
function lookup(values: KeyFieldValues, field: ArgKeyField): { present: boolean; value?: unknown } {
  if (hasOwn(values, field.name)) return { present: true, value: values[field.name] };
  if (typeof field.source === 'number') return { present: false };
  const [root, ...rest] = field.source.split('.');
  if (!hasOwn(values, root)) return { present: false };
  return { present: true, value: walk(values[root], rest) };
}

function readArgument(
  field: ArgKeyField,
  args: readonly unknown[],
  parameterNames: readonly string[],
  namespace: string,
): unknown {
  if (typeof field.source === 'number') return args[field.source];
  const [root, ...rest] = field.source.split('.');
  const index = /^\d+$/.test(root) ? Number(root) : parameterNames.indexOf(root);
  if (index < 0) {
    throw new CacheKeyError(
      `KeyConstructor "${namespace}": field "${field.name}" reads parameter "${root}", which the ` +
        `function does not have (parameters: ${parameterNames.filter(Boolean).join(', ') || 'none'}).`,
    );
  }
  return walk(args[index], rest);
}

function isArray(value: unknown): boolean {
  return Array.isArray(value);
}

function walk(value: unknown, path: readonly string[]): unknown {
  let current = value;
  for (const part of path) {
    if (current === null || current === undefined) return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

function assertValues(values: unknown, namespace: string): asserts values is KeyFieldValues {
  if (typeof values !== 'object' || values === null || Array.isArray(values)) {
    throw new CacheKeyError(
      `KeyConstructor "${namespace}": expected an object of field values, e.g. { userId: 42 }.`,
    );
  }
}

function describeKeys(values: object): string {
  const keys = Object.keys(values);
  return keys.length ? `fields ${keys.join(', ')}` : 'no fields';
}
