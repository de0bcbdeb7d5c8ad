import { isObservable } from 'rxjs';
import {
  invokeCachedMethod,
  type CachedMethod,
  type CacheOperation,
} from '../runtime/cache-operations';
import { CACHE_CLASS_METADATA, CACHE_OPERATIONS_METADATA } from '../config/cache.constants';
import { CacheArgumentError } from '../utils/cache.errors';
import type {
  CacheableOptions,
  CacheEvictOptions,
  CachePutOptions,
} from '../interfaces/cache-operation-options.interface';
import type { MethodSignature } from '../keys/key-template';
import { readParameters } from '../keys/parameter-names';

/** What `Reflector` reads back from a decorated method (`CACHE_OPERATIONS_METADATA`). */
export interface CacheOperationMetadata {
  /** Which decorator. */
  readonly decorator: 'Cacheable' | 'CachePut' | 'CacheEvict';
  /** Its options as given (the key included). */
  readonly options: Readonly<CacheableOptions | CachePutOptions | CacheEvictOptions>;
}

const CACHED_METHOD = Symbol('cachekit:cached-method');

type AnyMethod = (...args: unknown[]) => unknown;
type Marked = AnyMethod & { [CACHED_METHOD]?: CachedMethod };

// Function properties a wrapper must not take over from the method it wraps.
const OWN_FUNCTION_PROPERTIES = new Set<string | symbol>([
  'name',
  'length',
  'prototype',
  'arguments',
  'caller',
]);

/**
 * Applies one cache decorator to a method. The first cache decorator on a method replaces it
 * with a thin wrapper that carries every piece of metadata the method had (routes, params,
 * guards, `@HttpCode`, other libraries' keys) and is marked so it is never wrapped twice;
 * later cache decorators only add their operation to it. Decorators applied above ours
 * write their metadata onto the wrapper, which is what Nest then reads, so order does not
 * matter. At call time the wrapper asks which application's cache its instance is bound to.
 */
export function addCacheOperation(
  decorator: CacheOperationMetadata['decorator'],
  options: CacheOperationMetadata['options'],
  target: object,
  propertyKey: string | symbol,
  descriptor: PropertyDescriptor | undefined,
  build: (signature: MethodSignature) => CacheOperation,
): PropertyDescriptor {
  const owner =
    typeof target === 'function' ? (target as { name: string }).name : target.constructor.name;
  const where = `@${decorator}() on ${owner}.${String(propertyKey)}`;
  if (typeof target === 'function') {
    throw new CacheArgumentError(
      `${where}: static methods cannot be cached; decorate instance methods of providers or controllers.`,
    );
  }
  const value: unknown = descriptor?.value;
  if (!descriptor || typeof value !== 'function') {
    throw new CacheArgumentError(`${where}: only methods can be cached (not getters or fields).`);
  }

  const method = cachedMethodOf(value) ?? install(target, propertyKey, descriptor);
  const operation = build(method);
  checkCombination(method, operation, where);
  method.operations.push(operation);
  if (operation.cache !== undefined) method.named = true;

  const wrapper = descriptor.value as AnyMethod;
  const recorded = (Reflect.getOwnMetadata(CACHE_OPERATIONS_METADATA, wrapper) ??
    []) as CacheOperationMetadata[];
  Reflect.defineMetadata(CACHE_OPERATIONS_METADATA, [...recorded, { decorator, options }], wrapper);
  return descriptor;
}

/** The cached-method record behind a (possibly decorated) function, if any. */
export function cachedMethodOf(fn: unknown): CachedMethod | undefined {
  return typeof fn === 'function' ? (fn as Marked)[CACHED_METHOD] : undefined;
}

function install(
  target: object,
  propertyKey: string | symbol,
  descriptor: PropertyDescriptor,
): CachedMethod {
  const original = descriptor.value as AnyMethod;
  const className = target.constructor.name;
  const methodName = String(propertyKey);
  const method: CachedMethod = {
    className,
    methodName,
    parameters: readParameters(original),
    original,
    declaringClass: target.constructor,
    operations: [],
    resultKind: resultKindOf(Reflect.getMetadata('design:returntype', target, propertyKey)),
  };
  const wrapper = function (this: unknown, ...args: unknown[]): unknown {
    return invokeCachedMethod(method, this, args);
  } as Marked;
  copyFunction(original, wrapper);
  Object.defineProperty(wrapper, CACHED_METHOD, { value: method });
  method.wrapper = wrapper;
  descriptor.value = wrapper;

  const ctor = target.constructor;
  const names = (Reflect.getOwnMetadata(CACHE_CLASS_METADATA, ctor) ?? []) as Array<
    string | symbol
  >;
  Reflect.defineMetadata(CACHE_CLASS_METADATA, [...names, propertyKey], ctor);
  return method;
}

/** Gives `wrapper` the name, arity, own properties and reflect metadata of `original`. */
function copyFunction(original: AnyMethod, wrapper: AnyMethod): void {
  Object.defineProperty(wrapper, 'name', { value: original.name, configurable: true });
  Object.defineProperty(wrapper, 'length', { value: original.length, configurable: true });
  for (const key of Reflect.ownKeys(original)) {
    if (OWN_FUNCTION_PROPERTIES.has(key)) continue;
    const property = Object.getOwnPropertyDescriptor(original, key);
    if (property) Object.defineProperty(wrapper, key, property);
  }
  for (const key of Reflect.getOwnMetadataKeys(original) as unknown[]) {
    const value: unknown = Reflect.getOwnMetadata(key, original);
    Reflect.defineMetadata(key, Array.isArray(value) ? [...(value as unknown[])] : value, wrapper);
  }
}

/**
 * What the emitted return type says. `Object` (an interface, `unknown`, or an Observable
 * imported with `import type`) and a missing type say nothing.
 */
function resultKindOf(type: unknown): CachedMethod['resultKind'] {
  if (typeof type !== 'function' || type === Object) return 'unknown';
  const prototype = (type as { prototype?: unknown }).prototype;
  return isObservable(prototype) || (type as { name?: string }).name === 'Observable'
    ? 'observable'
    : 'promise';
}

function checkCombination(method: CachedMethod, operation: CacheOperation, where: string): void {
  const kinds = new Set(method.operations.map((op) => op.kind));
  if (operation.kind === 'cacheable' && kinds.has('cacheable')) {
    throw new CacheArgumentError(`${where}: a method can carry only one @Cacheable.`);
  }
  if (
    (operation.kind === 'cacheable' && kinds.has('put')) ||
    (operation.kind === 'put' && kinds.has('cacheable'))
  ) {
    throw new CacheArgumentError(
      `${where}: @Cacheable (skip the method on a hit) and @CachePut (always run it) contradict ` +
        `each other on one method; split them into two methods.`,
    );
  }
}
