import type { CacheBatchOptions } from '../interfaces/cache-operation-options.interface';
import { parseKeyTemplate, type MethodSignature } from '../keys/key-template';
import type { BatchSpec } from '../runtime/batch-operation';
import { CacheArgumentError } from '../utils/cache.errors';
import { describeValue } from '../utils/describe-value';

const BATCH_FIELDS: readonly string[] = ['param', 'by', 'map'];

/**
 * The compiled `batch` option of `@Cacheable` (`true`, a parameter's name or position, or
 * {@link CacheBatchOptions}), or `undefined` without one. Throws `CacheArgumentError` when the
 * class is defined: an unknown field, a parameter the method does not have, `by` with `map`.
 */
export function batchSpecOf(
  decorator: string,
  batch: unknown,
  signature: MethodSignature,
  key?: unknown,
): BatchSpec | undefined {
  if (batch === undefined || batch === false) return undefined;
  const where = `@${decorator} on ${signature.className}.${signature.methodName}`;
  const options: CacheBatchOptions =
    batch === true
      ? {}
      : typeof batch === 'string' || typeof batch === 'number'
        ? { param: batch }
        : typeof batch === 'object' && batch !== null && !Array.isArray(batch)
          ? batch
          : fail(
              `${where}: batch must be true, a parameter's name or position, or { param, by, map }; got ${describeValue(batch)}.`,
            );
  for (const field of Object.keys(options)) {
    if (!BATCH_FIELDS.includes(field)) {
      fail(`${where}: unknown batch option "${field}". Known: ${BATCH_FIELDS.join(', ')}.`);
    }
  }
  const index = paramIndex(options.param ?? 0, signature, where);
  assertKeyNamesList(key, index, signature, where);
  const { by, map } = options;
  if (map !== undefined && typeof map !== 'boolean') {
    fail(`${where}: batch.map must be a boolean; got ${describeValue(map)}.`);
  }
  if (by === undefined) return { index, shape: map ? 'map' : 'array' };
  if (map) fail(`${where}: batch.by and batch.map exclude each other (by: items in any order).`);
  if (typeof by === 'function')
    return { index, shape: 'items', idOf: by as (item: unknown) => unknown };
  if (typeof by === 'string' && by !== '') {
    return {
      index,
      shape: 'items',
      idOf: (item) =>
        typeof item === 'object' && item !== null ? (item as Record<string, unknown>)[by] : item,
    };
  }
  return fail(
    `${where}: batch.by must be a property name or a function of an item; got ${describeValue(by)}.`,
  );
}

function paramIndex(param: unknown, signature: MethodSignature, where: string): number {
  if (typeof param === 'number') {
    if (!Number.isInteger(param) || param < 0) {
      fail(
        `${where}: batch.param must be a parameter's name or position; got ${describeValue(param)}.`,
      );
    }
    const params = signature.parameters;
    if (params !== undefined && !params.some((p) => p.rest) && param >= params.length) {
      fail(
        `${where}: batch.param ${param} names no parameter (the method takes ${params.length}).`,
      );
    }
    return param;
  }
  if (typeof param !== 'string' || param === '') {
    fail(
      `${where}: batch.param must be a parameter's name or position; got ${describeValue(param)}.`,
    );
  }
  const names = signature.parameters?.map((p) => p.name);
  if (names === undefined) {
    fail(
      `${where}: batch.param '${param}' needs the method's parameter names, which could not be read; give its position instead.`,
    );
  }
  const index = names.indexOf(param);
  if (index < 0) {
    fail(
      `${where}: batch.param '${param}' names no parameter (parameters: ${names.map((n) => n ?? '?').join(', ')}).`,
    );
  }
  return index;
}

/**
 * A key template must read the list parameter (by name or position): without it every id
 * renders the same key, and all ids would share the first one's entry.
 */
function assertKeyNamesList(
  key: unknown,
  index: number,
  signature: MethodSignature,
  where: string,
): void {
  if (typeof key !== 'string') return;
  let parts: ReturnType<typeof parseKeyTemplate>;
  try {
    parts = parseKeyTemplate(key);
  } catch {
    return; // reported by the key resolver
  }
  const name = signature.parameters?.[index]?.name;
  const roots = parts.flatMap((part) => ('root' in part ? [part.root] : []));
  // Parameter names unknown (the method source could not be read): a named placeholder may be
  // the list; the key template's own check reports a name it cannot resolve.
  const unknownNames =
    signature.parameters === undefined && roots.some((root) => typeof root === 'string');
  if (unknownNames || roots.some((root) => root === index || root === name)) return;
  const list = `{${name ?? index}}`;
  fail(
    `${where}: the key template "${key}" does not read the list parameter (${list}), so every ` +
      `id would render the same key and share one entry; put it in the key, e.g. "${key}:${list}".`,
  );
}

function fail(message: string): never {
  throw new CacheArgumentError(message);
}
