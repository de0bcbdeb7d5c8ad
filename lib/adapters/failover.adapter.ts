import { Logger } from '@nestjs/common';
import type { CacheAdapter } from '../interfaces/cache-adapter.interface';
import type { CacheFailoverOptions } from '../interfaces/cache-module-options.interface';
import { quote } from '../utils/describe-value';
import { CacheLogger, RateLimitedLogger } from '../utils/rate-limited-logger';
import {
  CircuitBreaker,
  type CircuitState,
  type CircuitStateChange,
} from '../tiers/circuit-breaker';
import { OutageJournal, type OutageJournalSnapshot } from '../tiers/outage-journal';

/**
 * The defaults of {@link CacheFailoverOptions}, used by `failover: true` and by a
 * {@link FailoverCacheAdapter} built without options.
 */
export const FAILOVER_DEFAULTS: Readonly<Required<CacheFailoverOptions>> = Object.freeze({
  failureThreshold: 5,
  cooldown: 5,
  timeout: 0.5,
  maxTrackedKeys: 10_000,
});

/** Options of {@link FailoverCacheAdapter}: the same as the module's `failover: { ... }`. */
export type FailoverCacheAdapterOptions = CacheFailoverOptions;

/** Counters of a {@link FailoverCacheAdapter} since it was created. */
export interface FailoverStats {
  /** `get` calls answered by the primary. */
  primaryHits: number;
  /** `get` calls answered by the fallback (primary failed, skipped, or missed). */
  fallbackHits: number;
  /** `get` calls that found nothing in either tier. */
  misses: number;
  /** Primary calls that failed or timed out. */
  primaryFailures: number;
  /** Calls that did not go to the primary (circuit not closed, or key not yet reconciled). */
  primarySkipped: number;
  /** Keys and prefixes (a namespace clear counts one) applied to the primary on recovery. */
  reconciled: number;
  /** Keys and prefixes (a pending namespace clear counts one) waiting to be reconciled. */
  pendingReconciliation: number;
}

/** Thrown internally when a primary call outlives the `timeout` option. */
class PrimaryTimeoutError extends Error {
  constructor(ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'PrimaryTimeoutError';
  }
}

/** An adapter that can say whether its backend answers (the Redis adapter's `PING`). */
type Pingable = { ping(): Promise<unknown> };

const RECONCILE_BATCH = 500;

/**
 * Redis-primary, memory-fallback failover: the PyFly `CacheManager` semantics plus a circuit
 * breaker, fail-fast timeouts, self-recovery and protection against stale reads.
 *
 * - `get`: the primary answers; if it fails, a WARN is logged and the fallback answers; if the
 *   primary misses, the fallback is checked too. `has` works the same way.
 * - `set`: always written to the fallback (kept warm) and to the primary, whose failure is
 *   logged and swallowed. `delete` hits both and resolves `true` if either had the key;
 *   `clear` and `deleteByPrefix` hit both.
 * - Failures are logged at WARN through Nest's `Logger` in the seed's words ("Primary cache
 *   failed for GET 'user:123', falling back: ..."), at most once per operation every 10 s.
 * - Fail fast: a primary call that takes longer than `timeout` counts as failed and the
 *   fallback answers. After `failureThreshold` consecutive failures the circuit opens and the
 *   primary is not called at all; after `cooldown` seconds it is probed (`PING`) in the
 *   background, and when it answers, traffic returns to it by itself.
 * - No stale reads: every key written or deleted while the primary could not be trusted (the
 *   circuit was open, or the write failed or timed out, so the primary may or may not have
 *   applied it, maybe later) is remembered, and deleted from the primary before reads of it go
 *   back there. Until then it is served by the fallback only. More than `maxTrackedKeys`
 *   such keys, or a `clear()` during the outage, clears the primary's namespace instead.
 *   This relies on the primary applying one client's commands in order, as a single Redis
 *   connection does (commands a frozen Redis has buffered run before the recovery probe).
 *
 * The fallback is per process: in a fleet, an entry another instance deletes from Redis is
 * still served from this instance's fallback when Redis misses (as in the seed).
 *
 * Its state is observable through {@link FailoverCacheAdapter.state},
 * {@link FailoverCacheAdapter.onStateChange} and {@link FailoverCacheAdapter.stats}, and every
 * change is logged.
 *
 * @example
 * ```ts
 * CacheModule.forRoot({ provider: 'redis', redis: { url }, failover: true });
 * // or by hand:
 * const adapter = new FailoverCacheAdapter(
 *   new RedisCacheAdapter({ redis: { url } }),
 *   new MemoryCacheAdapter(),
 *   { failureThreshold: 3, cooldown: 10 },
 * );
 * adapter.onStateChange(({ from, to }) => metrics.gauge('cache.circuit', to));
 * ```
 */
export class FailoverCacheAdapter implements CacheAdapter {
  private readonly breaker: CircuitBreaker;
  private readonly journal: OutageJournal;
  private readonly timeoutMs: number;
  private readonly logger: Logger = new CacheLogger();
  private readonly log = new RateLimitedLogger(this.logger);
  private readonly probeLog = new RateLimitedLogger(this.logger, 30_000);
  private readonly counters = {
    primaryHits: 0,
    fallbackHits: 0,
    misses: 0,
    primaryFailures: 0,
    primarySkipped: 0,
    reconciled: 0,
  };
  /** Primary writes still under way: recovery waits for them before reconciling. */
  private readonly inflightWrites = new Set<Promise<void>>();
  private task: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Earliest time (ms) of the next reconciliation attempt after one failed. */
  private retryAt = 0;

  constructor(
    /** The authoritative, shared tier (typically {@link RedisCacheAdapter}). */
    readonly primary: CacheAdapter,
    /** The in-process tier that keeps serving when the primary cannot (typically memory). */
    readonly fallback: CacheAdapter,
    options: FailoverCacheAdapterOptions = {},
  ) {
    const settings = { ...FAILOVER_DEFAULTS, ...stripUndefined(options) };
    this.breaker = new CircuitBreaker({
      failureThreshold: settings.failureThreshold,
      cooldownMs: settings.cooldown * 1000,
    });
    this.timeoutMs = Math.round(settings.timeout * 1000);
    this.journal = new OutageJournal(settings.maxTrackedKeys, (what) =>
      this.log.warn(
        'journal-overflow',
        `Primary cache: ${what} changed while it was unavailable; its whole namespace will be ` +
          `cleared on recovery instead of key by key`,
      ),
    );
    this.breaker.onStateChange((change) => this.stateChanged(change));
  }

  /** The circuit state: `closed` (primary in use), `open` (skipped) or `half-open` (probing). */
  get state(): CircuitState {
    return this.breaker.state;
  }

  /** A snapshot of the counters (calls per tier, failures, reconciled keys). */
  get stats(): FailoverStats {
    return { ...this.counters, pendingReconciliation: this.journal.size };
  }

  /**
   * Calls `listener` on every circuit state change (`closed` → `open` → `half-open` →
   * `closed`). Returns a function that removes the listener.
   */
  onStateChange(listener: (change: CircuitStateChange) => void): () => void {
    return this.breaker.onStateChange(listener);
  }

  /** The primary's value; the fallback's when the primary fails, is skipped or misses. */
  async get<T = unknown>(key: string): Promise<T | undefined> {
    if (this.routeToPrimary(key)) {
      const epoch = this.breaker.epoch;
      try {
        const value = await this.guard(() => this.primary.get<T>(key));
        this.breaker.recordSuccess(epoch);
        if (value !== undefined) {
          this.counters.primaryHits++;
          return value;
        }
      } catch (error) {
        this.primaryFailed('GET', quote(key), 'falling back', error, epoch);
      }
    }
    const value = await this.fallback.get<T>(key);
    if (value === undefined) this.counters.misses++;
    else this.counters.fallbackHits++;
    return value;
  }

  /** `true` if the primary has the key, else (or when it fails) if the fallback has it. */
  async has(key: string): Promise<boolean> {
    if (this.routeToPrimary(key)) {
      const epoch = this.breaker.epoch;
      try {
        const found = await this.guard(() => this.primary.has(key));
        this.breaker.recordSuccess(epoch);
        if (found) return true;
      } catch (error) {
        this.primaryFailed('HAS', quote(key), 'falling back', error, epoch);
      }
    }
    return this.fallback.has(key);
  }

  /** Writes the fallback, then the primary; a primary failure is logged, never thrown. */
  async set(key: string, value: unknown, ttl: number): Promise<void> {
    // The fallback first: its TTL then never outlasts the primary's.
    await this.fallback.set(key, value, ttl);
    if (!this.routeToPrimary(key)) {
      this.journal.recordKey(key);
      return;
    }
    await this.writePrimary('SET', key, () => this.primary.set(key, value, ttl));
  }

  /** Deletes from both tiers; `true` if either had the key. */
  async delete(key: string): Promise<boolean> {
    const inFallback = await this.fallback.delete(key);
    if (!this.routeToPrimary(key)) {
      this.journal.recordKey(key);
      return inFallback;
    }
    let inPrimary = false;
    await this.writePrimary('DELETE', key, async () => {
      inPrimary = await this.primary.delete(key);
    });
    return inPrimary || inFallback;
  }

  /** Clears both tiers (the primary's namespace only). */
  async clear(): Promise<void> {
    await this.fallback.clear();
    if (!this.namespaceToPrimary()) {
      this.journal.recordClear();
      return;
    }
    const epoch = this.breaker.epoch;
    try {
      await this.trackWrite(this.guard(() => this.primary.clear(), false));
      this.breaker.recordSuccess(epoch);
    } catch (error) {
      this.journal.recordClear();
      this.primaryFailed('CLEAR', 'of the namespace', 'using fallback only', error, epoch);
    }
  }

  /** Deletes from both tiers; resolves the larger of the two counts. */
  async deleteByPrefix(prefix: string): Promise<number> {
    const inFallback = await this.fallback.deleteByPrefix(prefix);
    if (!this.namespaceToPrimary()) {
      this.journal.recordPrefix(prefix);
      return inFallback;
    }
    const epoch = this.breaker.epoch;
    try {
      const inPrimary = await this.trackWrite(
        this.guard(() => this.primary.deleteByPrefix(prefix), false),
      );
      this.breaker.recordSuccess(epoch);
      return Math.max(inPrimary, inFallback);
    } catch (error) {
      this.journal.recordPrefix(prefix);
      this.primaryFailed(
        'DELETE_BY_PREFIX',
        `${quote(prefix)}*`,
        'using fallback only',
        error,
        epoch,
      );
      return inFallback;
    }
  }

  /** Checks the primary: `ping()` when it has one, else a `has` on a reserved key. */
  async ping(): Promise<void> {
    await this.guard(() => this.probePrimary());
  }

  /**
   * Starts both tiers. A primary that is unreachable does not fail startup (unless it throws
   * itself, as `RedisCacheAdapter` does with `strict: true`): the circuit opens at once, the
   * fallback serves, and the primary is probed every `cooldown` seconds.
   */
  async onModuleInit(): Promise<void> {
    this.stopped = false;
    await this.fallback.onModuleInit?.();
    await this.primary.onModuleInit?.();
    try {
      await this.ping();
    } catch (error) {
      this.breaker.open(`unreachable at startup: ${describe(error)}`);
    }
  }

  /** Stops the probe timer and both tiers (closing the Redis connection). */
  async onApplicationShutdown(signal?: string): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await Promise.all([
      this.primary.onApplicationShutdown?.(signal),
      this.fallback.onApplicationShutdown?.(signal),
    ]);
  }

  /** Whether a call on `key` may use the primary: circuit closed and key reconciled. */
  private routeToPrimary(key: string): boolean {
    if (this.breaker.state !== 'closed') {
      this.counters.primarySkipped++;
      this.schedule();
      return false;
    }
    if (this.journal.covers(key)) {
      this.counters.primarySkipped++;
      return false;
    }
    return true;
  }

  /** Deletions of many keys may always go to a closed primary: deleting is never stale. */
  private namespaceToPrimary(): boolean {
    if (this.breaker.state === 'closed') return true;
    this.counters.primarySkipped++;
    this.schedule();
    return false;
  }

  private async writePrimary(
    operation: string,
    key: string,
    write: () => Promise<void>,
  ): Promise<void> {
    const epoch = this.breaker.epoch;
    try {
      await this.trackWrite(this.guard(write));
      this.breaker.recordSuccess(epoch);
    } catch (error) {
      // The primary may still apply this write later (a frozen Redis runs what it buffered),
      // so the key is untrusted until recovery deletes it there.
      this.journal.recordKey(key);
      this.primaryFailed(operation, quote(key), 'using fallback only', error, epoch);
    }
  }

  private trackWrite<T>(promise: Promise<T>): Promise<T> {
    const settled = promise.then(
      () => undefined,
      () => undefined,
    );
    this.inflightWrites.add(settled);
    void settled.then(() => this.inflightWrites.delete(settled));
    return promise;
  }

  private primaryFailed(
    operation: string,
    target: string,
    outcome: string,
    error: unknown,
    epoch: number,
  ): void {
    this.counters.primaryFailures++;
    this.log.warn(
      `primary:${operation}`,
      `Primary cache failed for ${operation} ${target}, ${outcome}: ${describe(error)}`,
    );
    this.breaker.recordFailure(describe(error), epoch);
    if (this.breaker.state === 'closed' && !this.journal.empty) this.schedule();
  }

  /**
   * Runs `call` against the primary, rejecting after `timeout` (fail fast) unless `timed` is
   * false (multi-command scans), and turning a synchronous throw into a rejection.
   */
  private guard<T>(call: () => Promise<T>, timed = true): Promise<T> {
    let promise: Promise<T>;
    try {
      promise = call();
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
    if (!timed || this.timeoutMs <= 0) return promise;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new PrimaryTimeoutError(this.timeoutMs)),
        this.timeoutMs,
      );
      timer.unref();
      promise.then(
        (value) => {
          clearTimeout(timer);
          resolve(value);
        },
        (error: unknown) => {
          clearTimeout(timer);
          reject(error instanceof Error ? error : new Error(String(error)));
        },
      );
    });
  }

  private async probePrimary(): Promise<void> {
    const pingable = this.primary as Partial<Pingable>;
    if (typeof pingable.ping === 'function') {
      await pingable.ping();
      return;
    }
    await this.primary.has('__cachekit:probe__');
  }

  /**
   * Makes sure background work is scheduled: a probe when the circuit is open (after the rest
   * of the cool-down), a reconciliation when the circuit is closed but keys are untrusted.
   */
  private schedule(): void {
    if (this.stopped || this.task || this.timer) return;
    const state = this.breaker.state;
    if (state === 'half-open') return;
    if (state === 'closed' && this.journal.empty) return;
    const delay =
      state === 'open' ? this.breaker.cooldownRemaining : Math.max(0, this.retryAt - Date.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.stopped) return;
      this.task = (this.breaker.state === 'open' ? this.recover() : this.reconcileClosed()).finally(
        () => {
          this.task = undefined;
          this.schedule();
        },
      );
    }, delay);
    this.timer.unref();
  }

  /** Open → half-open → probe → reconcile → closed, or back to open. */
  private async recover(): Promise<void> {
    if (!this.breaker.tryHalfOpen()) return;
    try {
      // Writes sent before the circuit opened must settle (and be journaled if they failed)
      // before the journal is replayed; the timeout bounds this wait.
      await Promise.all([...this.inflightWrites]);
      await this.ping();
      const applied = await this.drainJournal();
      this.breaker.close(
        applied === 0
          ? 'primary answers again'
          : `primary answers again; ${applied === 1 ? '1 key' : `${applied} keys`} changed ` +
              `during the outage ${applied === 1 ? 'was' : 'were'} deleted from it first`,
      );
    } catch (error) {
      if (!this.stopped) this.breaker.open(`probe failed: ${describe(error)}`);
    }
  }

  /** Circuit closed but some keys untrusted (a write failed below the threshold). */
  private async reconcileClosed(): Promise<void> {
    if (this.breaker.state !== 'closed') return;
    const epoch = this.breaker.epoch;
    try {
      const applied = await this.drainJournal();
      if (applied > 0) {
        this.logger.log(
          `Primary cache: ${applied === 1 ? '1 key' : `${applied} keys`} whose write had failed ` +
            `deleted from it; reads of them use it again`,
        );
      }
    } catch (error) {
      this.counters.primaryFailures++;
      // Retry after a cool-down rather than hammering a struggling primary.
      this.retryAt = Date.now() + this.breaker.cooldownMs;
      this.breaker.recordFailure(`reconciliation failed: ${describe(error)}`, epoch);
    }
  }

  /** Applies the journal to the primary until it is empty; resolves how many entries. */
  private async drainJournal(): Promise<number> {
    let applied = 0;
    while (!this.journal.empty && !this.stopped) {
      const snapshot = this.journal.snapshot();
      await this.apply(snapshot);
      this.journal.settle(snapshot);
      const count = snapshot.keys.length + snapshot.prefixes.length + (snapshot.all ? 1 : 0);
      applied += count;
      this.counters.reconciled += count;
    }
    return applied;
  }

  private async apply(snapshot: OutageJournalSnapshot): Promise<void> {
    if (snapshot.all) {
      await this.guard(() => this.primary.clear(), false);
      return;
    }
    for (const prefix of snapshot.prefixes) {
      await this.guard(() => this.primary.deleteByPrefix(prefix), false);
    }
    for (let i = 0; i < snapshot.keys.length; i += RECONCILE_BATCH) {
      const batch = snapshot.keys.slice(i, i + RECONCILE_BATCH);
      await Promise.all(batch.map((key) => this.guard(() => this.primary.delete(key))));
    }
  }

  private stateChanged({ from, to, reason }: CircuitStateChange): void {
    const cooldown = `${this.breaker.cooldownMs / 1000} s`;
    if (to === 'open' && from === 'half-open') {
      this.probeLog.warn(
        'circuit:probe',
        `Primary cache still unavailable (${reason}); serving from the fallback, next probe in ${cooldown}`,
      );
    } else if (to === 'open') {
      this.logger.warn(
        `Primary cache circuit opened (${reason}); serving from the fallback only, next probe in ${cooldown}`,
      );
    } else if (to === 'half-open') {
      this.logger.debug('Primary cache circuit half-open: probing the primary');
    } else {
      this.logger.log(`Primary cache circuit closed: ${reason}; reads and writes use it again`);
    }
    this.schedule();
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function stripUndefined<T extends object>(options: T): Partial<T> {
  return Object.fromEntries(
    Object.entries(options).filter(([, value]) => value !== undefined),
  ) as Partial<T>;
}
