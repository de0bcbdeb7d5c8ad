import type { CacheLoadingOptions } from '../interfaces/cache-module-options.interface';
import { LOADING_DEFAULTS } from './defaults';

/**
 * The loading options of one load with every default filled in (seconds): the module's, with
 * what a `wrap` call, a `@Cacheable` method or a `cacheResult` function gives over them.
 * @internal
 */
export interface LoadPolicy {
  readonly jitter: number;
  readonly soft: number | undefined;
  readonly hard: number | undefined;
  readonly grace: number;
  readonly graceBackoff: number;
  readonly refreshAhead: number | undefined;
  readonly lock: Readonly<{ ttl: number; wait: number }> | undefined;
}

/** The policy of a module that sets none of the loading options. @internal */
export const DEFAULT_LOAD_POLICY: LoadPolicy = Object.freeze({
  jitter: 0,
  soft: undefined,
  hard: undefined,
  grace: LOADING_DEFAULTS.grace,
  graceBackoff: LOADING_DEFAULTS.graceBackoff,
  refreshAhead: undefined,
  lock: undefined,
});

/**
 * `base` with the loading options `given` sets over it, field by field (`timeouts.soft` alone
 * keeps the base's `hard`; `lock: false` switches a module's lock off for one call). `given` must
 * have passed `loadingOptionsProblem`. Returns `base` itself when `given` sets nothing.
 * @internal
 */
export function loadPolicyOf(base: LoadPolicy, given: CacheLoadingOptions): LoadPolicy {
  const { jitter, timeouts, grace, graceBackoff, refreshAhead, lock } = given;
  if (
    jitter === undefined &&
    timeouts === undefined &&
    grace === undefined &&
    graceBackoff === undefined &&
    refreshAhead === undefined &&
    lock === undefined
  ) {
    return base;
  }
  return {
    jitter: jitter ?? base.jitter,
    soft: timeouts?.soft ?? base.soft,
    hard: timeouts?.hard ?? base.hard,
    grace: grace ?? base.grace,
    graceBackoff: graceBackoff ?? base.graceBackoff,
    refreshAhead: refreshAhead ?? base.refreshAhead,
    lock: lock === undefined ? base.lock : lockOf(lock, base.lock),
  };
}

function lockOf(
  lock: boolean | { ttl?: number; wait?: number },
  base: LoadPolicy['lock'],
): LoadPolicy['lock'] {
  if (lock === false) return undefined;
  const defaults = base ?? LOADING_DEFAULTS.lock;
  if (lock === true) return defaults;
  return { ttl: lock.ttl ?? defaults.ttl, wait: lock.wait ?? defaults.wait };
}

/**
 * A frozen copy of the loading options `given` sets (nested objects copied too: the object given
 * to a decorator may be changed later), or `undefined` when it sets none. `given` must have
 * passed `loadingOptionsProblem`.
 * @internal
 */
export function loadingCopy(given: CacheLoadingOptions): Readonly<CacheLoadingOptions> | undefined {
  const copy: CacheLoadingOptions = {};
  if (given.jitter !== undefined) copy.jitter = given.jitter;
  if (given.timeouts !== undefined) copy.timeouts = Object.freeze({ ...given.timeouts });
  if (given.grace !== undefined) copy.grace = given.grace;
  if (given.graceBackoff !== undefined) copy.graceBackoff = given.graceBackoff;
  if (given.refreshAhead !== undefined) copy.refreshAhead = given.refreshAhead;
  if (given.lock !== undefined) {
    copy.lock = typeof given.lock === 'boolean' ? given.lock : Object.freeze({ ...given.lock });
  }
  return Object.keys(copy).length === 0 ? undefined : Object.freeze(copy);
}
