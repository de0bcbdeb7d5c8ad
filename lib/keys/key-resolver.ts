import { CacheKeyError } from '../utils/cache.errors';
import type { CacheKeySpec, CacheKeySource } from '../interfaces/cache-key.interface';
import { describeValue } from '../utils/describe-value';
import { escapeKeyText } from './key-constructor.encoding';
import { compileKeyTemplate, renderTemplateValue, type MethodSignature } from './key-template';

/** One call as the decorators see it. */
export interface MethodCall {
  readonly instance: object;
  readonly args: readonly unknown[];
  readonly hasResult: boolean;
  readonly result?: unknown;
}

/** A key (template, function, source or default) checked against its method. */
export interface KeyResolver {
  /** `true` if the key can only be rendered once the method has returned. */
  readonly usesResult: boolean;
  /** Renders the key; throws {@link CacheKeyError} if it cannot. */
  render(call: MethodCall): string;
}

/**
 * Prepares the key of one decorator. Templates and key sources are checked against the
 * method's parameters now (class definition time); `undefined` selects the default key
 * `<owner>:<methodName>:<arg>:<arg>...`, rendered with the same injective encoding, where the
 * owner is the name of the class declaring the method, or — when another cached provider or
 * controller of the application has a class of that name — the provider's place in the
 * application (see {@link bindDefaultKeyOwners}).
 */
export function createKeyResolver(
  key: CacheKeySpec | undefined,
  signature: MethodSignature,
  options: { allowResult: boolean; what: string },
): KeyResolver {
  const owner = `${signature.className}.${signature.methodName}`;
  const where = `${options.what} on ${owner}`;
  if (key === undefined) return defaultKeyResolver(signature);
  if (typeof key === 'string') {
    const compiled = compileKeyTemplate(key, signature, { allowResult: options.allowResult });
    return { usesResult: compiled.usesResult, render: compiled.render };
  }
  if (typeof key === 'function') {
    return {
      usesResult: false,
      render: (call) => checked(key.apply(call.instance, call.args as unknown[]), where),
    };
  }
  if (isKeySource(key)) {
    const names = parameterNames(signature);
    if (!names && key.assertParameters) {
      throw new CacheKeyError(
        `The key of ${where} needs the method's parameter names, but its source could not be read.`,
      );
    }
    key.assertParameters?.(names ?? [], owner);
    return {
      usesResult: false,
      render: (call) =>
        checked(key.renderArgs(withDefaults(call.args, signature), names ?? []), where),
    };
  }
  throw new CacheKeyError(
    `The key of ${where} must be a template string, a function or a key source (such as a ` +
      `KeyConstructor); got ${describeValue(key)}.`,
  );
}

// Instance → declaring class → the escaped owner segment of its default keys. Weak, and left in
// place at shutdown: an instance bound again (by another application) is simply re-labelled.
const defaultKeyOwners = new WeakMap<object, ReadonlyMap<object, string>>();

/**
 * @internal Names the owner of `instance`'s default keys, per class declaring its cached
 * methods (`owners`: declaring class → owner label). The explorer calls it when it binds the
 * instance; until then (and for classes not in `owners`) the declaring class's name is used.
 */
export function bindDefaultKeyOwners(instance: object, owners: ReadonlyMap<object, string>): void {
  const escaped = new Map<object, string>();
  for (const [type, label] of owners) escaped.set(type, escapeKeyText(label));
  defaultKeyOwners.set(instance, escaped);
}

function defaultKeyResolver(signature: MethodSignature): KeyResolver {
  const fallback = escapeKeyText(signature.className);
  const method = `:${escapeKeyText(signature.methodName)}`;
  const declaring = signature.declaringClass;
  return {
    usesResult: false,
    render: ({ instance, args }) => {
      let key = (declaring && defaultKeyOwners.get(instance)?.get(declaring)) ?? fallback;
      key += method;
      for (let i = 0; i < args.length; i++) {
        key += `:${renderTemplateValue(args[i], `argument ${i}`)}`;
      }
      return key;
    },
  };
}

function isKeySource(value: unknown): value is CacheKeySource {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { renderArgs?: unknown }).renderArgs === 'function'
  );
}

function checked(key: unknown, where: string): string {
  if (typeof key !== 'string' || key.length === 0) {
    throw new CacheKeyError(
      `The key of ${where} came out as ${key === '' ? 'an empty string' : describeValue(key)}; it must be a non-empty string.`,
    );
  }
  return key;
}

/** Parameter names by position, `''` for destructured ones (the `KeyConstructor` convention). */
export function parameterNames(signature: MethodSignature): string[] | undefined {
  return signature.parameters?.map((p) => p.name ?? '');
}

/** The arguments with literal default values put in for omitted ones. */
export function withDefaults(args: readonly unknown[], signature: MethodSignature): unknown[] {
  const out = [...args];
  signature.parameters?.forEach((param, index) => {
    if (param.rest || out[index] !== undefined || !param.default?.resolvable) return;
    out[index] = param.default.value;
  });
  return out;
}
