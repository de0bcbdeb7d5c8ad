import type { CacheTierName } from '../interfaces/cache-events.interface';
import type { Tier } from '../tiers/sourced-read';

/**
 * One kind of request the counters keep apart: an API operation, what its caller got, and, for a
 * value the cache held, the tier that held it. These are the attributes of the OpenTelemetry
 * counter `cache.requests`. @internal
 */
export interface RequestKind {
  readonly operation: string;
  readonly result: string;
  readonly tier?: CacheTierName;
}

const KINDS: RequestKind[] = [];

function kind(operation: string, result: string, tier?: CacheTierName): number {
  KINDS.push(tier === undefined ? { operation, result } : { operation, result, tier });
  return KINDS.length - 1;
}

function byTier(operation: string, result: string): readonly [number, number] {
  return [kind(operation, result, 'l1'), kind(operation, result, 'l2')];
}

function outcome(operation: string): { readonly ok: number; readonly error: number } {
  return { ok: kind(operation, 'ok'), error: kind(operation, 'error') };
}

// The index of each kind in CacheCounters.requests: a constant per call site, so counting is one
// store into a typed array.
/** @internal */
export const GET_HIT = byTier('get', 'hit');
/** @internal */
export const GET_MISS = kind('get', 'miss');
/** @internal */
export const HAS_HIT = byTier('has', 'hit');
/** @internal */
export const HAS_MISS = kind('has', 'miss');
/** @internal */
export const WRAP_HIT = byTier('wrap', 'hit');
/** @internal */
export const WRAP_MISS = kind('wrap', 'miss');
/** @internal */
export const WRAP_SHARED = kind('wrap', 'shared');
/** @internal */
export const WRAP_STALE = byTier('wrap', 'stale');
/** @internal */
export const SET = outcome('set');
/** @internal */
export const DELETE = outcome('delete');
/** @internal */
export const EXPIRE = outcome('expire');
/** @internal */
export const DELETE_BY_PREFIX = outcome('deleteByPrefix');
/** @internal */
export const DELETE_BY_TAG = outcome('deleteByTag');
/** @internal */
export const INVALIDATE = outcome('invalidate');
/** @internal */
export const CLEAR = outcome('clear');

/** Every kind, by index. @internal */
export const REQUEST_KINDS: readonly RequestKind[] = Object.freeze(KINDS.slice());

const HITS = [...GET_HIT, ...HAS_HIT, ...WRAP_HIT];
const MISSES = [GET_MISS, HAS_MISS, WRAP_MISS, WRAP_SHARED];
const DELETES = [DELETE.ok, EXPIRE.ok, DELETE_BY_PREFIX.ok, DELETE_BY_TAG.ok, INVALIDATE.ok];

/**
 * The counters of one cache since it started: plain numbers bumped on the hot path (no event,
 * no allocation), read by `stats()` and by the OpenTelemetry instruments when they are
 * collected. @internal
 */
export class CacheCounters {
  /** Requests by kind (see {@link REQUEST_KINDS}). */
  readonly requests = new Float64Array(REQUEST_KINDS.length);
  /** Loaded values stored (entries written besides `set`). */
  loadsStored = 0;
  /** Backend failures by operation (`GET`, `SET`, `LOCK`, ...). */
  readonly errors = new Map<string, number>();
  loaderRuns = 0;
  loaderErrors = 0;
  loaderTimeouts = 0;
  loaderMs = 0;
  lockWaits = 0;
  lockAcquired = 0;
  lockFound = 0;
  lockTimeouts = 0;
  lockUnavailable = 0;
  busPublished = 0;
  busReceived = 0;
  busGaps = 0;

  /** Counts a backend failure of `operation`. */
  failed(operation: string): void {
    this.errors.set(operation, (this.errors.get(operation) ?? 0) + 1);
  }

  sum(indexes: readonly number[]): number {
    let total = 0;
    for (const index of indexes) total += this.requests[index] ?? 0;
    return total;
  }

  get hits(): number {
    return this.sum(HITS);
  }

  get misses(): number {
    return this.sum(MISSES);
  }

  get stale(): number {
    return this.sum(WRAP_STALE);
  }

  get shared(): number {
    return this.requests[WRAP_SHARED] ?? 0;
  }

  get sets(): number {
    return (this.requests[SET.ok] ?? 0) + this.loadsStored;
  }

  get deletes(): number {
    return this.sum(DELETES);
  }

  get clears(): number {
    return this.requests[CLEAR.ok] ?? 0;
  }

  get errorCount(): number {
    let total = 0;
    for (const count of this.errors.values()) total += count;
    return total;
  }

  /** Reads the tier answered (hits and stale values it held). */
  tierHits(tier: Tier): number {
    return (
      (this.requests[GET_HIT[tier]] ?? 0) +
      (this.requests[HAS_HIT[tier]] ?? 0) +
      (this.requests[WRAP_HIT[tier]] ?? 0) +
      (this.requests[WRAP_STALE[tier]] ?? 0)
    );
  }
}
