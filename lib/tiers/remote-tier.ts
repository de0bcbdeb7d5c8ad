import type { Logger } from '@nestjs/common';
import type { CacheAdapter, CacheAdapterEntry } from '../interfaces/cache-adapter.interface';
import {
  entriesReaderOf,
  entryReaderOf,
  entrySwapOf,
  entryUndoOf,
  type EntriesRead,
  type EntryRead,
  type SharedEntry,
} from '../interfaces/entry-reader';
import { storedWriterOf } from '../interfaces/stored-write';
import { quote } from '../utils/describe-value';
import { CacheLogger, RateLimitedLogger } from '../utils/rate-limited-logger';
import { withTimeout } from '../utils/timeout';
import { keyLockOf, type KeyLock } from '../interfaces/key-lock';
import { tagStoreOf, type TagStore } from '../interfaces/tag-store';
import { CircuitBreaker, type CircuitState, type CircuitStateChange } from './circuit-breaker';
import { OutageJournal, type OutageJournalSnapshot } from './outage-journal';
import { deleteManyOf, getManyOf, setManyOf } from './bulk';
import { CachePartialError } from '../utils/cache.errors';

/** Tuning of a {@link RemoteTier}, in milliseconds. */
export interface RemoteTierSettings {
  /** Consecutive failures that open the circuit. */
  readonly failureThreshold: number;
  /** How long the circuit stays open before a probe. */
  readonly cooldownMs: number;
  /** A call that outlives it counts as failed; `0`: no bound but the client's own. */
  readonly timeoutMs: number;
  /** Keys the outage journal tracks before it falls back to clearing the namespace. */
  readonly maxTrackedKeys: number;
}

/** Counters of a {@link RemoteTier}. */
export interface RemoteTierCounters {
  /** `get` calls the remote store answered with a value. */
  primaryHits: number;
  /** Calls that failed or timed out. */
  primaryFailures: number;
  /** Calls that did not go to the store (circuit not closed, or key not yet reconciled). */
  primarySkipped: number;
  /** Keys and prefixes (a namespace clear counts one) applied to the store on recovery. */
  reconciled: number;
}

const RECONCILE_BATCH = 500;

/** What {@link RemoteTier.read} answers when the store failed or was skipped. @internal */
export const UNAVAILABLE = Symbol('cachekit:unavailable');

/** What recovery deleted from the store: every tier in front of it must drop the same. @internal */
export interface Reconciled {
  readonly keys: readonly string[];
  readonly prefixes: readonly string[];
  /** The namespace was cleared. */
  readonly all: boolean;
}

/**
 * The remote (shared) tier with its resilience: every call bounded by a timeout, a circuit
 * breaker that stops calling a store that keeps failing, an outage journal of the keys changed
 * while the store could not be trusted, and recovery (probe, then replay the journal as deletes
 * before traffic returns). A failure never rejects: it is logged (rate-limited), counted, and
 * answered as "nothing here" (`undefined`, `false`), so the caller's policy decides what serves
 * instead. FailoverCacheAdapter composes it with a fallback store.
 *
 * It relies on the store applying one client's commands in order, as a single Redis connection
 * does (commands a frozen Redis has buffered run before the recovery probe).
 *
 * @internal
 */
export class RemoteTier {
  private readonly logger: Logger = new CacheLogger();
  /** Calls per outcome since the tier was created. */
  readonly counters: RemoteTierCounters = {
    primaryHits: 0,
    primaryFailures: 0,
    primarySkipped: 0,
    reconciled: 0,
  };
  private readonly breaker: CircuitBreaker;
  private readonly journal: OutageJournal;
  private readonly log = new RateLimitedLogger(this.logger);
  private readonly probeLog = new RateLimitedLogger(this.logger, 30_000);
  /** Writes still under way: recovery waits for them before reconciling. */
  private readonly inflightWrites = new Set<Promise<void>>();
  private readonly reconcileListeners = new Set<(reconciled: Reconciled) => void>();
  /** The store's entry read with its remaining TTL (`get` when it offers none). */
  private readonly readEntry: EntryRead;
  /** The store's bulk entry read with the remaining TTLs (`getMany` when it offers none). */
  private readonly readEntries: EntriesRead;
  private task: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  /** Earliest time (ms) of the next reconciliation attempt after one failed. */
  private retryAt = 0;

  constructor(
    /** The store (typically the Redis adapter). */
    readonly store: CacheAdapter,
    private readonly settings: RemoteTierSettings,
  ) {
    this.breaker = new CircuitBreaker({
      failureThreshold: settings.failureThreshold,
      cooldownMs: settings.cooldownMs,
    });
    this.journal = new OutageJournal(settings.maxTrackedKeys, (what) =>
      this.log.warn(
        'journal-overflow',
        `Primary cache: ${what} changed while it was unavailable; its whole namespace will be ` +
          `cleared on recovery instead of key by key`,
      ),
    );
    this.breaker.onStateChange((change) => this.stateChanged(change));
    const entryRead = entryReaderOf(store);
    this.readEntry =
      entryRead ??
      ((key) =>
        store
          .get(key)
          .then((value) => (value === undefined ? undefined : { value, ttlMs: undefined })));
    this.readEntries =
      entriesReaderOf(store) ??
      ((keys) =>
        getManyOf(store, keys).then(
          (values) => values.map(asEntry),
          (error: unknown) => {
            if (!(error instanceof CachePartialError)) throw error;
            const partial = error as CachePartialError;
            throw new CachePartialError(
              partial.message,
              partial.results.map(asEntry),
              partial.failed,
              partial.cause,
            );
          },
        ));
  }

  /** The circuit state: `closed` (in use), `open` (skipped) or `half-open` (probing). */
  get state(): CircuitState {
    return this.breaker.state;
  }

  /** Keys and prefixes waiting to be reconciled. */
  get pendingReconciliation(): number {
    return this.journal.size;
  }

  /** Reports each failed call of the store (after it is counted and logged). */
  onFailure(listener: (operation: string, target: string, error: unknown) => void): void {
    this.failureListener = listener;
  }

  private failureListener:
    ((operation: string, target: string, error: unknown) => void) | undefined;

  /** Calls `listener` on every circuit state change; returns the function that removes it. */
  onStateChange(listener: (change: CircuitStateChange) => void): () => void {
    return this.breaker.onStateChange(listener);
  }

  /** The store's value; `undefined` when it misses, fails or is skipped. */
  async get<T>(key: string): Promise<T | undefined> {
    if (!this.routes(key)) return undefined;
    const epoch = this.breaker.epoch;
    try {
      const value = await this.timed(() => this.store.get<T>(key));
      this.breaker.recordSuccess(epoch);
      if (value !== undefined) this.counters.primaryHits++;
      return value;
    } catch (error) {
      this.failed('GET', quote(key), 'falling back', error, epoch);
      return undefined;
    }
  }

  /**
   * The store's entry with its remaining TTL, `undefined` on a miss, or {@link UNAVAILABLE} when
   * the store failed or was skipped (the caller's fallback answers).
   */
  async read(key: string): Promise<SharedEntry | undefined | typeof UNAVAILABLE> {
    if (!this.routes(key)) return UNAVAILABLE;
    const epoch = this.breaker.epoch;
    try {
      const entry = await this.timed(() => this.readEntry(key));
      this.breaker.recordSuccess(epoch);
      if (entry !== undefined) this.counters.primaryHits++;
      return entry;
    } catch (error) {
      this.failed('GET', quote(key), 'falling back', error, epoch);
      return UNAVAILABLE;
    }
  }

  /**
   * The store's values of `keys`, in their order (one bulk call of the store for the keys it may
   * be asked for, through the timeout and the circuit); `undefined` for a key that misses, is
   * skipped (circuit not closed, key not reconciled) or whose read failed (the caller's
   * fallback answers, as with {@link get}). Never rejects.
   */
  async getMany<T>(keys: readonly string[]): Promise<Array<T | undefined>> {
    const reads = await this.readMany(keys);
    return reads.map((read) => (read === UNAVAILABLE ? undefined : (read?.value as T | undefined)));
  }

  /**
   * {@link read} of many keys, in their order: each key's entry, `undefined` on a miss, or
   * {@link UNAVAILABLE} when it was skipped or its read failed (a partial failure of the store
   * — a Cluster node down — makes only the failed keys unavailable). Never rejects.
   */
  async readMany(
    keys: readonly string[],
  ): Promise<Array<SharedEntry | undefined | typeof UNAVAILABLE>> {
    const answers = new Array<SharedEntry | undefined | typeof UNAVAILABLE>(keys.length);
    const routed: number[] = [];
    keys.forEach((key, i) => {
      if (this.routes(key)) routed.push(i);
      else answers[i] = UNAVAILABLE;
    });
    if (routed.length === 0) return answers;
    const asked = routed.map((i) => keys[i]);
    const epoch = this.breaker.epoch;
    let entries: Array<SharedEntry | undefined>;
    const failed = new Set<number>();
    try {
      entries = await this.timed(() => this.readEntries(asked));
      this.breaker.recordSuccess(epoch);
    } catch (error) {
      const partial = error instanceof CachePartialError ? (error as CachePartialError) : undefined;
      entries = partial
        ? (partial.results as Array<SharedEntry | undefined>)
        : asked.map(() => undefined);
      if (partial) partial.failed.forEach((j) => failed.add(j));
      else asked.forEach((_, j) => failed.add(j));
      const target = partial ? `${failed.size} of ${asked.length} keys` : `${asked.length} keys`;
      this.failed('GET', target, 'falling back', partial ? partial.cause : error, epoch);
    }
    routed.forEach((index, j) => {
      if (failed.has(j)) {
        answers[index] = UNAVAILABLE;
        return;
      }
      const entry = entries[j];
      if (entry !== undefined) this.counters.primaryHits++;
      answers[index] = entry;
    });
    return answers;
  }

  /**
   * Writes every entry (one bulk call of the store for the keys it may be written to); the keys
   * skipped, or of a failed call, are journaled (untrusted until recovery), as {@link set} does.
   */
  async setMany(entries: readonly CacheAdapterEntry[]): Promise<void> {
    const routed = entries.filter(({ key }) => {
      if (this.routes(key)) return true;
      this.journal.recordKey(key);
      return false;
    });
    if (routed.length === 0) return;
    await this.writeMany(
      'SET',
      routed.map(({ key }) => key),
      () => setManyOf(this.store, routed),
    );
  }

  /**
   * Deletes every key (one bulk call of the store); resolves how many the store had. The keys
   * skipped, or of a failed call, are journaled, as {@link delete} does.
   */
  async deleteMany(keys: readonly string[]): Promise<number> {
    const routed = keys.filter((key) => {
      if (this.routes(key)) return true;
      this.journal.recordKey(key);
      return false;
    });
    if (routed.length === 0) return 0;
    let existed = 0;
    await this.writeMany('DELETE', routed, async () => {
      existed = await deleteManyOf(this.store, routed);
    });
    return existed;
  }

  /**
   * Deletes `key` only while the store holds `value` (see `ENTRY_UNDO`); `false` when it holds
   * something else, the store cannot compare, fails or is skipped.
   */
  async deleteIfHolds(key: string, value: unknown): Promise<boolean> {
    const undo = entryUndoOf(this.store);
    if (!undo || !this.routes(key)) return false;
    const epoch = this.breaker.epoch;
    try {
      const deleted = await this.timed(() => undo(key, value));
      this.breaker.recordSuccess(epoch);
      return deleted;
    } catch (error) {
      this.failed('DELETE', quote(key), 'left to its TTL', error, epoch);
      return false;
    }
  }

  /**
   * The store's fleet-wide lock (see `KEY_LOCK`) through the circuit: `undefined` (fail open)
   * while the circuit is not closed or the key not reconciled, or when the attempt fails or
   * times out (which counts as a failure of the store). `undefined` when the store has none.
   */
  get keyLock(): KeyLock | undefined {
    const lock = keyLockOf(this.store);
    if (lock === undefined) return undefined;
    return {
      acquire: async (key, token, ttlMs) => {
        // Also while failures count up to the threshold: the call that just failed cost its
        // caller one timeout; the lock must not cost another.
        if (!this.routes(key) || this.breaker.failures > 0) return undefined;
        const epoch = this.breaker.epoch;
        try {
          const taken = await this.timed(() => lock.acquire(key, token, ttlMs));
          this.breaker.recordSuccess(epoch);
          return taken;
        } catch (error) {
          this.failed('LOCK', quote(key), 'loading without the lock', error, epoch);
          return undefined;
        }
      },
      release: (key, token) => this.timed(() => lock.release(key, token)),
    };
  }

  /**
   * The store's tag records (see `TAG_STORE`) through the circuit: reads answer "never
   * invalidated" while the store is away (this process's own marks still decide), marks that
   * cannot be applied are journaled and applied on recovery, so a tag invalidated during an
   * outage still holds afterwards. `undefined` when the store has none.
   */
  get tagStore(): TagStore | undefined {
    const store = tagStoreOf(this.store);
    if (store === undefined) return undefined;
    return {
      read: async (tags) => {
        if (!this.available) return tags.map(() => undefined);
        const epoch = this.breaker.epoch;
        try {
          const times = await this.timed(() => store.read(tags));
          this.breaker.recordSuccess(epoch);
          return times;
        } catch (error) {
          this.failed('GET', 'tags', 'checked against local marks only', error, epoch);
          return tags.map(() => undefined);
        }
      },
      mark: async (tags, at, ttlMs) => {
        if (!this.namespaceRoutes()) {
          this.journal.recordTags(tags, at, ttlMs);
          return;
        }
        const epoch = this.breaker.epoch;
        try {
          await this.timed(() => store.mark(tags, at, ttlMs));
          this.breaker.recordSuccess(epoch);
        } catch (error) {
          this.journal.recordTags(tags, at, ttlMs);
          this.failed('SET', 'tags', 'applied on recovery', error, epoch);
        }
      },
      time: async () => {
        if (!this.available) throw new Error('primary unavailable');
        if (store.time === undefined) throw new Error('no clock');
        return this.timed(() =>
          store.time ? store.time() : Promise.reject(new Error('no clock')),
        );
      },
      // Rejected while the store is away: the caller tries again with its next tagged write.
      lives: async (ttlMs) => {
        if (!this.available) throw new Error('primary unavailable');
        const epoch = this.breaker.epoch;
        await this.timed(() => store.lives(ttlMs));
        this.breaker.recordSuccess(epoch);
      },
    };
  }

  /**
   * Replaces `key`'s value with `next` only while the store holds `expected` (see
   * `ENTRY_SWAP`); `undefined` when the store cannot compare, fails or is skipped (the caller
   * then writes as usual, which journals the key when the store is away).
   */
  async swapIfHolds(
    key: string,
    expected: unknown,
    next: unknown,
    ttl: number,
  ): Promise<boolean | undefined> {
    const swap = entrySwapOf(this.store);
    if (!swap || !this.routes(key)) return undefined;
    const epoch = this.breaker.epoch;
    try {
      const swapped = await this.timed(() => swap(key, expected, next, ttl));
      this.breaker.recordSuccess(epoch);
      return swapped;
    } catch (error) {
      this.failed('SET', quote(key), 'written as usual', error, epoch);
      return undefined;
    }
  }

  /** Whether calls go to the store now (circuit closed). */
  get available(): boolean {
    return this.breaker.state === 'closed';
  }

  /**
   * Calls `listener` after recovery deleted keys changed during an outage from the store; returns
   * the function that removes it.
   */
  onReconciled(listener: (reconciled: Reconciled) => void): () => void {
    this.reconcileListeners.add(listener);
    return () => this.reconcileListeners.delete(listener);
  }

  /** `true` if the store has `key`; `false` when it has not, fails or is skipped. */
  async has(key: string): Promise<boolean> {
    if (!this.routes(key)) return false;
    const epoch = this.breaker.epoch;
    try {
      const found = await this.timed(() => this.store.has(key));
      this.breaker.recordSuccess(epoch);
      return found;
    } catch (error) {
      this.failed('HAS', quote(key), 'falling back', error, epoch);
      return false;
    }
  }

  /**
   * Writes `key`; when skipped or failed, the key is journaled (untrusted until recovery).
   * With `ifAbsent` (a loader's value, already in its stored form, on a store with the cache's
   * own write), only when the key holds nothing: resolves `false` when it held something.
   */
  async set(key: string, value: unknown, ttl: number, ifAbsent = false): Promise<boolean> {
    if (!this.routes(key)) {
      this.journal.recordKey(key);
      return true;
    }
    const conditional = ifAbsent ? storedWriterOf(this.store) : undefined;
    if (!conditional) {
      await this.write('SET', key, () => this.store.set(key, value, ttl));
      return true;
    }
    let written = true;
    await this.write('SET', key, async () => {
      written = (await conditional(key, value, ttl, true)) !== null;
    });
    return written;
  }

  /** Deletes `key`; `true` if the store had it (`false` when skipped or failed: journaled). */
  async delete(key: string): Promise<boolean> {
    if (!this.routes(key)) {
      this.journal.recordKey(key);
      return false;
    }
    let existed = false;
    await this.write('DELETE', key, async () => {
      existed = await this.store.delete(key);
    });
    return existed;
  }

  /** Clears the store's namespace; when skipped or failed, the clear is journaled. */
  async clear(): Promise<void> {
    if (!this.namespaceRoutes()) {
      this.journal.recordClear();
      return;
    }
    const epoch = this.breaker.epoch;
    try {
      await this.track(this.untimed(() => this.store.clear()));
      this.breaker.recordSuccess(epoch);
    } catch (error) {
      this.journal.recordClear();
      this.failed('CLEAR', 'of the namespace', 'using fallback only', error, epoch);
    }
  }

  /** Deletes under `prefix`; resolves the count, or `undefined` when skipped or failed. */
  async deleteByPrefix(prefix: string): Promise<number | undefined> {
    if (!this.namespaceRoutes()) {
      this.journal.recordPrefix(prefix);
      return undefined;
    }
    const epoch = this.breaker.epoch;
    try {
      const count = await this.track(this.untimed(() => this.store.deleteByPrefix(prefix)));
      this.breaker.recordSuccess(epoch);
      return count;
    } catch (error) {
      this.journal.recordPrefix(prefix);
      this.failed('DELETE_BY_PREFIX', `${quote(prefix)}*`, 'using fallback only', error, epoch);
      return undefined;
    }
  }

  /** Checks the store (`ping()` when it has one, else a `has` on a reserved key), timed. */
  async ping(): Promise<void> {
    await this.timed(() => this.probe());
  }

  /**
   * Starts the store. One that is unreachable does not fail startup (unless it throws itself, as
   * `RedisCacheAdapter` does with `strict: true`): the circuit opens at once and it is probed
   * every cool-down.
   */
  async start(): Promise<void> {
    await this.store.onModuleInit?.();
    try {
      await this.ping();
    } catch (error) {
      this.breaker.open(`unreachable at startup: ${describe(error)}`);
    }
  }

  /** Allows background work again (after a {@link stop}). */
  resume(): void {
    this.stopped = false;
  }

  /** Stops the probe and reconciliation timer (the store itself is closed by its owner). */
  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Whether a call on `key` may use the store: circuit closed and key reconciled. */
  private routes(key: string): boolean {
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

  /** Deletions of many keys may always go to a closed store: deleting is never stale. */
  private namespaceRoutes(): boolean {
    if (this.breaker.state === 'closed') return true;
    this.counters.primarySkipped++;
    this.schedule();
    return false;
  }

  private async write(operation: string, key: string, write: () => Promise<void>): Promise<void> {
    const epoch = this.breaker.epoch;
    try {
      await this.track(this.timed(write));
      this.breaker.recordSuccess(epoch);
    } catch (error) {
      // The store may still apply this write later (a frozen Redis runs what it buffered), so
      // the key is untrusted until recovery deletes it there.
      this.journal.recordKey(key);
      this.failed(operation, quote(key), 'using fallback only', error, epoch);
    }
  }

  /** {@link write} of many keys in one call: a failure journals every one of them. */
  private async writeMany(
    operation: string,
    keys: readonly string[],
    write: () => Promise<void>,
  ): Promise<void> {
    const epoch = this.breaker.epoch;
    try {
      await this.track(this.timed(write));
      this.breaker.recordSuccess(epoch);
    } catch (error) {
      keys.forEach((key) => this.journal.recordKey(key));
      const target = keys.length === 1 ? quote(keys[0]) : `${keys.length} keys`;
      this.failed(operation, target, 'using fallback only', error, epoch);
    }
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    const settled = promise.then(
      () => undefined,
      () => undefined,
    );
    this.inflightWrites.add(settled);
    void settled.then(() => this.inflightWrites.delete(settled));
    return promise;
  }

  private failed(
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
    this.failureListener?.(operation, target, error);
  }

  /** `call`, failing after the timeout (fail fast); a synchronous throw becomes a rejection. */
  private timed<T>(call: () => Promise<T>): Promise<T> {
    return withTimeout(call, this.settings.timeoutMs);
  }

  /** `call` without the timeout (multi-command scans); a synchronous throw becomes a rejection. */
  private untimed<T>(call: () => Promise<T>): Promise<T> {
    return withTimeout(call, 0);
  }

  private async probe(): Promise<void> {
    const store = this.store;
    if (typeof store.ping === 'function') {
      await store.ping();
      return;
    }
    await store.has('__cachekit:probe__');
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
      // Retry after a cool-down rather than hammering a struggling store.
      this.retryAt = Date.now() + this.breaker.cooldownMs;
      this.breaker.recordFailure(`reconciliation failed: ${describe(error)}`, epoch);
    }
  }

  /** Applies the journal to the store until it is empty; resolves how many entries. */
  private async drainJournal(): Promise<number> {
    let applied = 0;
    while (!this.journal.empty && !this.stopped) {
      const snapshot = this.journal.snapshot();
      await this.apply(snapshot);
      this.journal.settle(snapshot);
      const reconciled = { keys: snapshot.keys, prefixes: snapshot.prefixes, all: snapshot.all };
      this.reconcileListeners.forEach((listener) => listener(reconciled));
      const count = snapshot.keys.length + snapshot.prefixes.length + (snapshot.all ? 1 : 0);
      applied += count;
      this.counters.reconciled += count;
    }
    return applied;
  }

  private async apply(snapshot: OutageJournalSnapshot): Promise<void> {
    if (snapshot.all) {
      await this.untimed(() => this.store.clear());
      return;
    }
    for (const prefix of snapshot.prefixes) {
      await this.untimed(() => this.store.deleteByPrefix(prefix));
    }
    for (let i = 0; i < snapshot.keys.length; i += RECONCILE_BATCH) {
      const batch = snapshot.keys.slice(i, i + RECONCILE_BATCH);
      await Promise.all(batch.map((key) => this.timed(() => this.store.delete(key))));
    }
    const tags = tagStoreOf(this.store);
    if (tags === undefined) return;
    const marks = [...snapshot.tags];
    for (let i = 0; i < marks.length; i += RECONCILE_BATCH) {
      const batch = marks.slice(i, i + RECONCILE_BATCH);
      await Promise.all(
        batch.map(([tag, { at, ttlMs }]) => this.timed(() => tags.mark([tag], at, ttlMs))),
      );
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

function asEntry(value: unknown): SharedEntry | undefined {
  return value === undefined ? undefined : { value, ttlMs: undefined };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
