import type { CacheStack } from '../core/cache-stack';

/**
 * Which application's cache stack serves each provider or controller instance. The
 * explorer of every application binds the instances it owns at bootstrap; a decorated method
 * reads the binding of `this` at call time, so two applications in one process never share a
 * cache and routes Nest captured before `onModuleInit` still reach the right one.
 */
const bindings = new WeakMap<object, CacheStack>();

/** An explorer that has not bound its application yet, and can be asked for one instance. */
export interface LateBinder {
  /** Binds `instance` if it belongs to this binder's application; returns its cache. */
  claim(instance: object): CacheStack | undefined;
}

// Weak: an application that is compiled but never initialised or closed must not be kept alive.
const pending = new Set<WeakRef<LateBinder>>();

/** Serves `instance`'s decorated methods from `cache`. */
export function bindInstance(instance: object, cache: CacheStack): void {
  bindings.set(instance, cache);
}

/** Removes the binding of `instance` if it still points at `cache`. */
export function unbindInstance(instance: object, cache: CacheStack): void {
  if (bindings.get(instance) === cache) bindings.delete(instance);
}

/**
 * The cache serving `instance`, if any. A call made before its application's explorer ran (a
 * decorated method used in another provider's `onModuleInit`, or an app compiled but not
 * initialised) asks the pending explorers, so it is bound on the spot.
 */
export function boundCache(instance: object): CacheStack | undefined {
  const cache = bindings.get(instance);
  if (cache || pending.size === 0) return cache;
  for (const ref of pending) {
    const binder = ref.deref();
    if (!binder) {
      pending.delete(ref);
      continue;
    }
    const claimed = binder.claim(instance);
    if (claimed) return claimed;
  }
  return undefined;
}

// The named caches (`caches`) of each application, by its default stack (what instances bind).
const namedStacks = new WeakMap<CacheStack, ReadonlyMap<string, CacheStack>>();

/** Records the named caches of the application whose module's own stack is `stack`. */
export function registerNamedStacks(
  stack: CacheStack,
  named: ReadonlyMap<string, CacheStack>,
): void {
  if (named.size > 0) namedStacks.set(stack, named);
}

/** The named caches of the application whose module's own stack is `stack`, by name. */
export function namedStacksOf(stack: CacheStack): ReadonlyMap<string, CacheStack> | undefined {
  return namedStacks.get(stack);
}

/**
 * The stack of the cache named `cache` in the application whose own stack is `stack`: `stack`
 * itself for `undefined` (or `'default'`), `undefined` for a name it does not configure.
 */
export function namedStack(stack: CacheStack, cache: string | undefined): CacheStack | undefined {
  if (cache === undefined || cache === 'default') return stack;
  return namedStacks.get(stack)?.get(cache);
}

/**
 * The stack serving `instance`'s operations on the cache named `cache` (`undefined`: the
 * module's own): the one runtime lookup of decorated methods, bound as {@link boundCache} binds.
 * `undefined` when the instance is not bound, or its application has no cache of that name.
 */
export function boundStack(instance: object, cache?: string): CacheStack | undefined {
  const stack = boundCache(instance);
  return stack && namedStack(stack, cache);
}

/** Registers an explorer that may bind late; returns the function that unregisters it. */
export function registerLateBinder(binder: LateBinder): () => void {
  const ref = new WeakRef(binder);
  pending.add(ref);
  return () => {
    pending.delete(ref);
  };
}
