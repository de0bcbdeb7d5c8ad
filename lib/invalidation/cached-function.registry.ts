import type { CacheStack } from '../core/cache-stack';
import type { InvalidationEvent } from '../interfaces/invalidation-rule.interface';
import type { InvalidationBinding } from './invalidation.registry';

/**
 * What a cached function needs from an application: its cache, and its event listeners.
 * {@link CacheInvalidator} is the host of each application.
 *
 * @example
 * ```ts
 * getUserPayload.attach(app.get(CacheInvalidator));
 * ```
 */
export interface InvalidationHost {
  /** @internal The application's cache stack. */
  readonly stack: CacheStack;
  /** Makes sure the host hears `event` from every source it bridges (idempotent). */
  listen(event: InvalidationEvent): void;
}

/** A `cacheResult` function as the registry sees it. */
export interface CachedFunctionState {
  readonly binding: InvalidationBinding | undefined;
  attached: InvalidationHost | undefined;
  /** Its name in logs and errors. */
  readonly name?: string;
  /** The named cache it uses (`cache`); `undefined`: the module's own. */
  readonly cache?: string;
}

// Applications whose CacheModule is running, in start order: the last one is the default host
// of every cached function that was not attached explicitly.
const running: InvalidationHost[] = [];
const functions = new Set<CachedFunctionState>();

/** The default host: the most recently started application that is still running. */
export function defaultHost(): InvalidationHost | undefined {
  return running[running.length - 1];
}

/** The host a cached function uses now. */
export function hostOf(state: CachedFunctionState): InvalidationHost | undefined {
  return state.attached ?? defaultHost();
}

/** Records a cached function; its events are heard by its host from now on. */
export function registerCachedFunction(state: CachedFunctionState): void {
  functions.add(state);
  listenFor(state);
}

/** Re-routes a cached function to `host` (or back to the default host). */
export function attachCachedFunction(
  state: CachedFunctionState,
  host: InvalidationHost | undefined,
): void {
  state.attached = host;
  listenFor(state);
}

/** The bindings of every cached function whose host is `host`. */
export function cachedFunctionBindings(host: InvalidationHost): InvalidationBinding[] {
  const bindings: InvalidationBinding[] = [];
  for (const state of functions) {
    if (state.binding && hostOf(state) === host) bindings.push(state.binding);
  }
  return bindings;
}

/** The cached functions whose host is `host` and that name a cache (`cache`). */
export function namedCachedFunctions(
  host: InvalidationHost,
): Array<{ readonly name: string; readonly cache: string }> {
  const found: Array<{ name: string; cache: string }> = [];
  for (const state of functions) {
    if (state.cache !== undefined && hostOf(state) === host) {
      found.push({ name: state.name ?? 'anonymous', cache: state.cache });
    }
  }
  return found;
}

/** Called by an application's invalidator when it starts. */
export function hostStarted(host: InvalidationHost): void {
  if (!running.includes(host)) running.push(host);
  for (const state of functions) listenFor(state);
}

/** Called by an application's invalidator when it stops; functions attached to it detach. */
export function hostStopped(host: InvalidationHost): void {
  const index = running.indexOf(host);
  if (index >= 0) running.splice(index, 1);
  for (const state of functions) {
    if (state.attached === host) state.attached = undefined;
    listenFor(state);
  }
}

function listenFor(state: CachedFunctionState): void {
  const host = hostOf(state);
  if (!host || !state.binding) return;
  for (const rule of state.binding.rules) host.listen(rule.event);
}
