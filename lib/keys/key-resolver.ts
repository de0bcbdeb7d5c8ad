import { CacheKeyError } from '../cache.errors';
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
 * `ClassName:methodName:<arg>:<arg>...`, rendered with the same injective encoding.
 */
export function createKeyResolver(
  key: CacheKeySpec | undefined,
  signature: MethodSignature,
  options: { allowResult: boolean; what: string },
): KeyResolver {
  const owner = `${signature.className}.${signature.methodName}`;
  const where = `${options.what} on ${owner}`;
  if (key === undefined) {
    const prefix = `${escapeKeyText(signature.className)}:${escapeKeyText(signature.methodName)}`;
    return {
      usesResult: false,
      render: ({ args }) =>
        [prefix, ...args.map((arg, i) => renderTemplateValue(arg, `argument ${i}`))].join(':'),
    };
  }
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
      `KeyConstructor); got ${describe(key)}.`,
  );
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
      `The key of ${where} came out as ${key === '' ? 'an empty string' : describe(key)}; it must be a non-empty string.`,
    );
  }
  return key;
}

function describe(value: unknown): string {
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object' && value !== null) return 'an object';
  return describeValue(value);
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
