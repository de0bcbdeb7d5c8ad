import { CacheKeyError } from '../utils/cache.errors';

/**
 * A key field that takes its value from the cached function's arguments: a parameter by name
 * (`'userId'`), a path into one (`'filter.status'`), or a position (`0`). Create it with
 * {@link argField}.
 *
 * @typeParam N the field's name: the label written into the key and the name used by
 * `render(...)` and by an invalidation rule's `fieldMapping`.
 * @example
 * ```ts
 * const field: ArgKeyField<'userId'> = argField('userId', { partition: true });
 * ```
 */
export interface ArgKeyField<N extends string = string> {
  readonly kind: 'arg';
  /** Label of the field in the key (`name=value`); defaults to the path. */
  readonly name: N;
  /** Parameter name (with an optional `.path` into it) or position of the argument. */
  readonly source: string | number;
  /** Partition fields come first in the key, so one partition can be wiped by prefix. */
  readonly partition: boolean;
}

/**
 * A key field with a fixed value, such as a version: bumping it (`'1'` → `'2'`) makes every
 * entry written under the old value unreachable. Create it with {@link constField}.
 *
 * @example
 * ```ts
 * const version: ConstKeyField<'v'> = constField('v', 2);
 * ```
 */
export interface ConstKeyField<N extends string = string> {
  readonly kind: 'const';
  /** Label of the field in the key (`name=value`). */
  readonly name: N;
  /** The fixed value. */
  readonly value: string | number | boolean;
}

/**
 * A field of a {@link KeyConstructor}: from the arguments, or constant.
 *
 * @example
 * ```ts
 * const fields: KeyField[] = [argField('userId', { partition: true }), constField('v', 1)];
 * ```
 */
export type KeyField = ArgKeyField | ConstKeyField;

/**
 * Options of {@link argField}.
 *
 * @example
 * ```ts
 * argField('tenantId', { partition: true });
 * ```
 */
export interface ArgFieldOptions {
  /**
   * Make this field part of the key's prefix, so every entry sharing its value (a user's, a
   * tenant's) can be wiped with one `deleteByPrefix`.
   * @default false
   */
  partition?: boolean;
}

/**
 * Options of {@link argField} that rename the field.
 *
 * @example
 * ```ts
 * argField(0, { name: 'userId', partition: true }); // a destructured first parameter
 * ```
 */
export interface NamedArgFieldOptions<N extends string> extends ArgFieldOptions {
  /** Label of the field in the key and in `fieldMapping`, instead of the path. */
  name: N;
}

// Names are written into keys verbatim, so they are restricted to characters that need no
// escaping (a value, by contrast, may hold anything; see `encodeKeyValue`).
const NAME = /^[A-Za-z0-9_$][A-Za-z0-9_$.-]*$/;

/**
 * Declares a key field read from the arguments of the cached function.
 *
 * - `argField('userId')`: the parameter named `userId`;
 * - `argField('filter.status')`: the `status` property of the parameter `filter`;
 * - `argField(0, { name: 'id' })`: the first argument (for destructured or minified parameters).
 *
 * @example
 * ```ts
 * const UserPayloadKey = KeyConstructor.define({
 *   namespace: 'users',
 *   fields: [argField('userId', { partition: true }), argField('locale'), constField('v', 1)],
 * });
 * ```
 */
export function argField<P extends string>(path: P, options?: ArgFieldOptions): ArgKeyField<P>;
export function argField<N extends string>(
  source: string | number,
  options: NamedArgFieldOptions<N>,
): ArgKeyField<N>;
export function argField(
  source: string | number,
  options: ArgFieldOptions & { name?: string } = {},
): ArgKeyField {
  if (typeof source === 'number') {
    if (!Number.isInteger(source) || source < 0) {
      throw new CacheKeyError(`argField(${source}): a position must be an integer >= 0.`);
    }
    if (options.name === undefined) {
      throw new CacheKeyError(
        `argField(${source}) needs a name: argField(${source}, { name: 'userId' }).`,
      );
    }
  } else if (!isPath(source)) {
    throw new CacheKeyError(
      `argField(${JSON.stringify(source)}): expected a parameter name or a dotted path such as 'filter.status'.`,
    );
  }
  const name = options.name ?? String(source);
  assertFieldName(name, 'argField');
  return Object.freeze({
    kind: 'arg' as const,
    name,
    source,
    partition: options.partition ?? false,
  });
}

/**
 * Declares a constant key field, typically a version. Bump the value when the shape of the
 * cached data changes: entries written under the old value are never read again (they
 * expire with their TTL).
 *
 * @example
 * ```ts
 * constField('v', 2) // written as `v=2`
 * ```
 */
export function constField<N extends string>(
  name: N,
  value: string | number | boolean,
): ConstKeyField<N> {
  assertFieldName(name, 'constField');
  if (!['string', 'number', 'boolean'].includes(typeof value)) {
    throw new CacheKeyError(
      `constField(${JSON.stringify(name)}): the value must be a string, number or boolean.`,
    );
  }
  return Object.freeze({ kind: 'const' as const, name, value });
}

function isPath(source: string): boolean {
  return source.split('.').every((part) => /^[A-Za-z_$][A-Za-z0-9_$]*$|^\d+$/.test(part));
}

function assertFieldName(name: string, where: string): void {
  if (typeof name !== 'string' || !NAME.test(name)) {
    throw new CacheKeyError(
      `${where}: invalid field name ${JSON.stringify(name)}; use letters, digits, '_', '$', '.' or '-'.`,
    );
  }
}
