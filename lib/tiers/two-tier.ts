import type { BusMessage, BusState, CacheBus } from '../bus/cache-bus';
import type { CacheAdapter, CacheAdapterEntry } from '../interfaces/cache-adapter.interface';
import { CachePartialError } from '../utils/cache.errors';
import { deleteManyOf, getManyOf, partialError, setManyOf } from './bulk';
import {
  entriesReaderOf,
  entryReaderOf,
  entrySwapOf,
  entryUndoOf,
  type SharedEntry,
} from '../interfaces/entry-reader';
import type { StoredWrite } from '../interfaces/stored-write';
import { keyLockOf, type KeyLock } from '../interfaces/key-lock';
import { tagStoreOf, type TagStore } from '../interfaces/tag-store';
import type { LocalTier } from './local-tier';
import { UNAVAILABLE, type Reconciled, type RemoteTier } from './remote-tier';
import { L1, L2, type SourcedRead } from './sourced-read';

/**
 * The shared tier (L2) as the two-tier store uses it: a plain remote store, whose failures
 * reject (the stack's error policy answers them), or the failover remote tier, which never
 * rejects and answers {@link UNAVAILABLE} when the L1 must serve as its fallback.
 *
 * @internal
 */
export interface SharedTier {
  read(key: string): Promise<SharedEntry | undefined | typeof UNAVAILABLE>;
  /**
   * {@link read} of many keys, in their order, in one bulk call. A plain store that fails for
   * some keys only rejects with `CachePartialError` (results: entries); the failover tier
   * answers {@link UNAVAILABLE} for those keys instead.
   */
  readMany(keys: readonly string[]): Promise<Array<SharedEntry | undefined | typeof UNAVAILABLE>>;
  /** Writes every entry (values already checked), in one bulk call. */
  writeMany(entries: readonly CacheAdapterEntry[]): Promise<void>;
  /** Deletes every key in one bulk call; how many it had (`0` too when it could not tell). */
  deleteMany(keys: readonly string[]): Promise<number>;
  /**
   * Writes the entry; with `ifAbsent`, only if the key holds nothing. Resolves `false` when it
   * did not write because the key held something (the L1 must not keep this value then).
   */
  write(key: string, value: unknown, ttl: number, ifAbsent: boolean): Promise<boolean>;
  /** `true` if it had the key (`false` too when it could not tell). */
  delete(key: string): Promise<boolean>;
  /**
   * Deletes `key` only while it holds `value` (a loader's write to undo), atomically; resolves
   * whether it did (`false` too when the tier cannot compare: the write then stays).
   */
  deleteIfHolds(key: string, value: unknown): Promise<boolean>;
  /** How many it deleted, `undefined` when it could not tell (unavailable). */
  deleteByPrefix(prefix: string): Promise<number | undefined>;
  clear(): Promise<void>;
  ping(): Promise<unknown>;
  /** The tier's fleet-wide lock (`lock`), if it has one. */
  readonly keyLock: KeyLock | undefined;
  /** The tier's tag records (`deleteByTag`), if it has them. */
  readonly tagStore: TagStore | undefined;
  /**
   * Replaces `key`'s value with `next` only while it holds `expected`; `undefined` when the
   * tier cannot compare (or, failover, is away).
   */
  swapIfHolds(
    key: string,
    expected: unknown,
    next: unknown,
    ttl: number,
  ): Promise<boolean | undefined>;
}

/** A plain remote store (no failover) as a {@link SharedTier}. @internal */
export function plainShared(store: CacheAdapter, write?: StoredWrite): SharedTier {
  const undo = entryUndoOf(store);
  const swap = entrySwapOf(store);
  const read =
    entryReaderOf(store) ??
    ((key: string) =>
      store
        .get(key)
        .then((value) => (value === undefined ? undefined : { value, ttlMs: undefined })));
  const readMany =
    entriesReaderOf(store) ??
    ((keys: readonly string[]) =>
      getManyOf(store, keys).then(
        (values) => values.map(asEntry),
        (error: unknown) => {
          if (!(error instanceof CachePartialError)) throw error;
          const partial = error as CachePartialError;
          throw partialError(partial.results.map(asEntry), partial.failed, partial.cause);
        },
      ));
  // The store is the CacheAdapter provider: Nest starts and stops it.
  return {
    read,
    readMany,
    writeMany: (entries) => setManyOf(store, entries),
    deleteMany: (keys) => deleteManyOf(store, keys),
    write: write
      ? (key, value, ttl, ifAbsent) =>
          write(key, value, ttl, ifAbsent).then((reply) => reply !== null)
      : (key, value, ttl) => store.set(key, value, ttl).then(() => true),
    delete: (key) => store.delete(key),
    deleteIfHolds: (key, value) => undo?.(key, value) ?? Promise.resolve(false),
    deleteByPrefix: (prefix) => store.deleteByPrefix(prefix),
    clear: () => store.clear(),
    ping: () => (store.ping ? store.ping() : store.has('__cachekit:probe__')),
    keyLock: keyLockOf(store),
    tagStore: tagStoreOf(store),
    swapIfHolds: (key, expected, next, ttl) =>
      swap ? swap(key, expected, next, ttl) : Promise.resolve(undefined),
  };
}

/** The failover remote tier as a {@link SharedTier} (its lifecycle is its adapter's). @internal */
export function failoverShared(remote: RemoteTier): SharedTier {
  return {
    read: (key) => remote.read(key),
    readMany: (keys) => remote.readMany(keys),
    writeMany: (entries) => remote.setMany(entries),
    deleteMany: (keys) => remote.deleteMany(keys),
    write: (key, value, ttl, ifAbsent) => remote.set(key, value, ttl, ifAbsent),
    delete: (key) => remote.delete(key),
    deleteIfHolds: (key, value) => remote.deleteIfHolds(key, value),
    deleteByPrefix: (prefix) => remote.deleteByPrefix(prefix),
    clear: () => remote.clear(),
    ping: () => remote.ping(),
    keyLock: remote.keyLock,
    tagStore: remote.tagStore,
    swapIfHolds: (key, expected, next, ttl) => remote.swapIfHolds(key, expected, next, ttl),
  };
}

function asEntry(value: unknown): SharedEntry | undefined {
  return value === undefined ? undefined : { value, ttlMs: undefined };
}

/** Why an L1 fill must not happen: the entry changed here, or elsewhere, while it was read. */
type Staleness = false | 'local' | 'remote';

/** A read or write of the shared tier in flight, whose result would fill the L1. */
interface Ticket {
  readonly key: string;
  stale: Staleness;
}

/**
 * The L1 fills in flight: a change of a key (here, or heard on the bus) while its shared-tier
 * read or write is in flight marks it stale, so a value read before an invalidation is never
 * put into the L1 after it.
 */
class FillGuard {
  private readonly open = new Map<string, Set<Ticket>>();

  begin(key: string): Ticket {
    const ticket: Ticket = { key, stale: false };
    let tickets = this.open.get(key);
    if (!tickets) this.open.set(key, (tickets = new Set()));
    tickets.add(ticket);
    return ticket;
  }

  end(ticket: Ticket): void {
    const tickets = this.open.get(ticket.key);
    if (tickets?.delete(ticket) && tickets.size === 0) this.open.delete(ticket.key);
  }

  key(key: string, why: Exclude<Staleness, false>): void {
    this.open.get(key)?.forEach((ticket) => stale(ticket, why));
  }

  prefix(prefix: string, why: Exclude<Staleness, false>): void {
    for (const [key, tickets] of this.open) {
      if (key.startsWith(prefix)) tickets.forEach((ticket) => stale(ticket, why));
    }
  }

  all(why: Exclude<Staleness, false>): void {
    for (const tickets of this.open.values()) tickets.forEach((ticket) => stale(ticket, why));
  }
}

function stale(ticket: Ticket, why: Exclude<Staleness, false>): void {
  // A remote change wins: it is the one that may need the shared entry deleted again.
  if (ticket.stale !== 'remote') ticket.stale = why;
}

/**
 * How long after a loader's value was written a change of its key heard from another instance
 * still deletes it from L2: a message takes well under this to arrive on a healthy bus, so the
 * other instance's write may have reached Redis before this one.
 */
const RECENT_LOAD_MS = 1000;

/** The loaded values written in the last {@link RECENT_LOAD_MS}, by key, oldest first. */
class RecentLoads {
  private readonly loads = new Map<string, { at: number; value: unknown }>();

  remember(key: string, value: unknown): void {
    const now = Date.now();
    this.loads.delete(key);
    this.loads.set(key, { at: now, value });
    for (const [oldest, load] of this.loads) {
      if (now - load.at <= RECENT_LOAD_MS) break;
      this.loads.delete(oldest);
    }
  }

  /** The recent loads whose key matches, forgotten: `[key, value]` pairs. */
  take(matches: (key: string) => boolean): Array<[string, unknown]> {
    const now = Date.now();
    const taken: Array<[string, unknown]> = [];
    for (const [key, load] of this.loads) {
      if (!matches(key)) continue;
      this.loads.delete(key);
      if (now - load.at <= RECENT_LOAD_MS) taken.push([key, load.value]);
    }
    return taken;
  }

  /** The recent load of `key`, forgotten. */
  takeKey(key: string): Array<[string, unknown]> {
    const load = this.loads.get(key);
    if (load === undefined) return [];
    this.loads.delete(key);
    return Date.now() - load.at <= RECENT_LOAD_MS ? [[key, load.value]] : [];
  }
}

/** Tuning of a {@link TwoTier}. @internal */
export interface TwoTierSettings {
  /** Longest life of an L1 copy, in seconds (never longer than the shared entry's). */
  readonly l1Ttl: number;
}

/**
 * Two tiers: an in-process L1 in front of a shared L2 (Redis), kept coherent across instances
 * by a bus. Reads go L1 → L2 (an L2 hit fills the L1 for at most `l1Ttl` and never longer than
 * the entry has left); writes go to L2, then L1, then the bus; deletes, prefix deletes and
 * clears drop the L1 entries before and after the L2 call and are published. Messages of other
 * instances drop their keys from the L1 and are passed on (`onInvalidated`) so the stack
 * discards loads in flight for them.
 *
 * While the bus is not live (not yet subscribed, disconnected, stalled), the L1 is not read:
 * messages may be missed. When it is live again the whole L1 is dropped. With failover, the L1
 * is also the fallback: it answers while the shared tier is unavailable, and what recovery
 * deletes from the shared tier (keys changed during the outage) is dropped from it and published.
 *
 * @internal
 */
/** What the two-tier store reports of its bus. @internal */
export interface BusObserver {
  /** A message reached the other instances (decoded on demand). */
  published?(message: () => BusMessage): void;
  received?(message: BusMessage): void;
  state?(state: 'live' | 'deaf', reason: string): void;
  /** The bus hears again after a gap of `ms` milliseconds. */
  gap?(ms: number): void;
}

export class TwoTier implements CacheAdapter {
  private readonly guard = new FillGuard();
  private readonly recentLoads = new RecentLoads();
  private readonly detach: Array<() => void> = [];
  private onInvalidated: (message: BusMessage) => void = () => undefined;

  constructor(
    /** The in-process tier (with failover: the failover fallback itself, one copy). */
    readonly l1: LocalTier,
    readonly shared: SharedTier,
    /** The bus; `undefined` for one instance (`bus: false`). */
    readonly bus: CacheBus | undefined,
    private readonly settings: TwoTierSettings,
    /** The failover remote tier, when there is one (its recoveries are relayed). */
    readonly remote?: RemoteTier,
  ) {
    bus?.listen({
      message: (message) => {
        this.observer.received?.(message);
        this.heard(message);
      },
      deaf: (reason) => {
        this.deafSince ??= Date.now();
        this.guard.all('remote');
        this.observer.state?.('deaf', reason);
      },
      sent: (message) => this.observer.published?.(message),
      live: (afterGap) => {
        const since = this.deafSince;
        this.deafSince = undefined;
        this.heard({ clear: true });
        this.observer.state?.('live', afterGap ? 'subscribed again' : 'subscribed');
        if (afterGap) this.observer.gap?.(since === undefined ? 0 : Date.now() - since);
      },
    });
    if (remote) this.detach.push(remote.onReconciled((reconciled) => this.reconciled(reconciled)));
  }

  /** What the bus did, for the stack's counters and events. */
  private observer: BusObserver = {};
  /** When the bus went deaf (ms), while it is. */
  private deafSince: number | undefined;

  /** Sets the one observer of the bus (messages sent and heard, state changes, gaps). */
  observe(observer: BusObserver): void {
    this.observer = observer;
  }

  /** Messages waiting to be sent (held while the bus connection is down). */
  get busBuffered(): number {
    return this.bus?.bufferedMessages ?? 0;
  }

  /** Sets the one listener of changes heard from other instances (and of gaps, as a clear). */
  onRemoteChange(listener: (message: BusMessage) => void): void {
    this.onInvalidated = listener;
  }

  /**
   * The shared tier's tag records, whose marks are also published: the other instances learn
   * the times at once (their L1 entries carrying the tags stop answering), and, while the bus
   * is live, keep what they read of the records instead of reading them on every hit.
   */
  get tagStore(): TagStore | undefined {
    const store = this.shared.tagStore;
    if (store === undefined) return undefined;
    return {
      read: (tags) => store.read(tags),
      mark: async (tags, at, ttlMs) => {
        try {
          await store.mark(tags, at, ttlMs);
        } finally {
          this.publish({ tags: tags.map((tag) => [tag, at] as const) });
        }
      },
      lives: (ttlMs) => store.lives(ttlMs),
      time:
        store.time && (() => (store.time ? store.time() : Promise.reject(new Error('no clock')))),
    };
  }

  /** The shared tier's fleet-wide lock (`lock`), if it has one. */
  get keyLock(): KeyLock | undefined {
    return this.shared.keyLock;
  }

  /** Whether the bus hears the other instances (`off` without a bus). */
  get busState(): BusState {
    return this.bus ? this.bus.state : 'off';
  }

  /** The L1 copy of `key` when the L1 may be trusted, else `undefined`. */
  peek<T>(key: string): T | undefined {
    return this.trusted() ? this.l1.get<T>(key) : undefined;
  }

  /** Drops this process's L1 copy of `key` (no bus message: the shared entry is untouched). */
  forget(key: string): void {
    this.l1.drop(key);
  }

  async get<T = unknown>(key: string): Promise<T | undefined> {
    return (await this.read(key)).value as T | undefined;
  }

  /** {@link get}, telling which tier answered: the shared one (`l2`) or the L1. */
  async read(key: string): Promise<SourcedRead> {
    if (this.trusted()) {
      const cached = this.l1.get(key);
      if (cached !== undefined) return { value: cached, tier: L1 };
    }
    const ticket = this.guard.begin(key);
    try {
      const read = await this.shared.read(key);
      // The shared tier is down (failover): the L1, which is its fallback, answers.
      if (read === UNAVAILABLE) return { value: this.l1.get(key), tier: L1 };
      if (read === undefined) {
        // The shared tier says it is gone: an L1 copy (read while deaf, say) must not outlive it.
        if (!ticket.stale) this.l1.drop(key);
        return { value: undefined, tier: L2 };
      }
      if (!ticket.stale) this.fill(key, read.value, read.ttlMs);
      return { value: read.value, tier: L2 };
    } finally {
      this.guard.end(ticket);
    }
  }

  /** The values of `keys`, in their order: {@link getMany} without the tiers. */
  async getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    try {
      return (await this.readMany(keys)).map((read) => read.value as T | undefined);
    } catch (error) {
      if (!(error instanceof CachePartialError)) throw error;
      const partial = error as CachePartialError<SourcedRead>;
      throw partialError(
        partial.results.map((read) => read?.value as T | undefined),
        partial.failed,
        partial.cause,
      );
    }
  }

  /**
   * {@link read} of many keys, in their order: the L1 answers the keys it holds (when it may be
   * trusted, as for {@link read}) without touching the shared tier; the others are read in one
   * bulk call of the shared tier, and its hits fill the L1 under the same fill guard as a
   * single read. A plain shared tier that fails for some keys only: the others are answered
   * (and filled), then the call rejects with `CachePartialError` (results: these reads,
   * `undefined` for the failed keys); one that fails for all rejects with its error.
   */
  async readMany(keys: readonly string[]): Promise<SourcedRead[]> {
    const answers = new Array<SourcedRead>(keys.length);
    // The keys the L1 does not answer, each once, with the indexes that asked for it.
    const wanted = new Map<string, number[]>();
    const trusted = this.trusted();
    keys.forEach((key, i) => {
      const cached = trusted ? this.l1.get(key) : undefined;
      if (cached !== undefined) {
        answers[i] = { value: cached, tier: L1 };
        return;
      }
      const indexes = wanted.get(key);
      if (indexes) indexes.push(i);
      else wanted.set(key, [i]);
    });
    if (wanted.size === 0) return answers;
    const asked = [...wanted.keys()];
    const tickets = asked.map((key) => this.guard.begin(key));
    let reads: Array<SharedEntry | undefined | typeof UNAVAILABLE>;
    let partial: CachePartialError | undefined;
    try {
      try {
        reads = await this.shared.readMany(asked);
      } catch (error) {
        if (!(error instanceof CachePartialError)) throw error;
        partial = error as CachePartialError;
        reads = partial.results as Array<SharedEntry | undefined>;
      }
      const failed = new Set(partial?.failed);
      asked.forEach((key, j) => {
        const indexes = wanted.get(key) as number[];
        let answer: SourcedRead | undefined;
        const read = reads[j];
        if (failed.has(j)) {
          answer = undefined;
        } else if (read === UNAVAILABLE) {
          // The shared tier is down (failover): the L1, which is its fallback, answers.
          answer = { value: this.l1.get(key), tier: L1 };
        } else if (read === undefined) {
          // The shared tier says it is gone: an L1 copy must not outlive it.
          if (!tickets[j].stale) this.l1.drop(key);
          answer = { value: undefined, tier: L2 };
        } else {
          if (!tickets[j].stale) this.fill(key, read.value, read.ttlMs);
          answer = { value: read.value, tier: L2 };
        }
        for (const index of indexes) answers[index] = answer as SourcedRead;
      });
    } finally {
      tickets.forEach((ticket) => this.guard.end(ticket));
    }
    if (partial === undefined) return answers;
    const failedIndexes = partial.failed.flatMap((j) => wanted.get(asked[j]) as number[]);
    throw partialError<SourcedRead>(
      answers,
      failedIndexes.sort((a, b) => a - b),
      partial.cause,
    );
  }

  /**
   * `key`'s entry with the milliseconds it has left, from the shared tier (the L1 while the
   * shared tier is down under failover); `undefined` on a miss.
   */
  async entry(key: string): Promise<SharedEntry | undefined> {
    const read = await this.shared.read(key);
    return read === UNAVAILABLE ? this.l1.entry(key) : read;
  }

  /** Agrees with {@link get}: reads the entry. */
  async has(key: string): Promise<boolean> {
    return (await this.get(key)) !== undefined;
  }

  /** A write of the application (last writer wins). */
  set(key: string, value: unknown, ttl: number): Promise<void> {
    return this.write(key, value, ttl, false);
  }

  /**
   * Writes `value` to L2, then L1, then tells the bus. Rejects when a plain shared tier fails
   * (the L1 copy is dropped: this instance then agrees with the others).
   *
   * `derived`: a loader's value, started on a miss. It is written only if the key still holds
   * nothing (a write made meanwhile, here or elsewhere, wins), and a change of the key heard from
   * another instance while it is written, or within {@link RECENT_LOAD_MS} after, deletes it
   * from L2 again: the other instance's change may have reached Redis first.
   */
  async write(
    key: string,
    value: unknown,
    ttl: number,
    derived: boolean,
    ifAbsent = derived,
  ): Promise<void> {
    const started = Date.now();
    // A read of the key already in flight was sent before this write: what it brings back is
    // older, and its fill may run after this one (its reply takes more steps to settle).
    this.guard.key(key, 'local');
    // This write supersedes an earlier load of the key: another instance's later change must not
    // undo it.
    this.recentLoads.takeKey(key);
    const ticket = this.guard.begin(key);
    // On one connection the message goes right behind the write: it reaches the others after
    // the write is applied, a round trip sooner than after its reply.
    const early = this.bus?.ordered === true;
    let written: boolean;
    try {
      const writing = this.shared.write(key, value, ttl, ifAbsent);
      if (early) this.publish({ keys: [key] });
      written = await writing;
    } catch (error) {
      this.l1.drop(key);
      if (!early) this.publish({ keys: [key] });
      throw error;
    } finally {
      this.guard.end(ticket);
    }
    if (!written && ifAbsent && ticket.stale === false) {
      // Refused: the key holds something. Another instance's value wins; but data this cache
      // cannot read (corrupt, another Redis type) would make every read miss until it expires,
      // so a load replaces it — unless the key changed meanwhile.
      const held = await this.shared.read(key).catch(() => UNAVAILABLE);
      if (held === undefined && ticket.stale === false) {
        return this.write(key, value, ttl, derived, false);
      }
    }
    if (!written) return;
    if (ticket.stale === false) {
      this.fill(key, value, ttl > 0 ? ttl * 1000 - (Date.now() - started) : undefined);
      if (derived) this.recentLoads.remember(key, value);
    } else {
      this.l1.drop(key);
      if (derived && ticket.stale === 'remote') await this.undoLoad(key, value);
    }
    if (!early) this.publish({ keys: [key] });
  }

  /**
   * {@link set} of every entry (last writer wins), the values in their stored form (the stack
   * checked them, as for {@link set}): one bulk write of L2, then the L1, then one bus message
   * for all the keys. Rejects when a plain shared tier fails (the L1 copies
   * are dropped, as {@link write} does).
   */
  async setMany(entries: readonly CacheAdapterEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const stored = entries;
    const keys = [...new Set(stored.map(({ key }) => key))];
    const started = Date.now();
    const tickets = keys.map((key) => {
      // As in `write`: reads in flight are older, and earlier loads are superseded.
      this.guard.key(key, 'local');
      this.recentLoads.takeKey(key);
      return this.guard.begin(key);
    });
    const stale = new Map<string, boolean>();
    const early = this.bus?.ordered === true;
    try {
      const writing = this.shared.writeMany(stored);
      if (early) this.publish({ keys });
      await writing;
    } catch (error) {
      keys.forEach((key) => this.l1.drop(key));
      if (!early) this.publish({ keys });
      throw error;
    } finally {
      tickets.forEach((ticket) => {
        stale.set(ticket.key, ticket.stale !== false);
        this.guard.end(ticket);
      });
    }
    const elapsed = Date.now() - started;
    for (const { key, value, ttl } of stored) {
      if (stale.get(key)) this.l1.drop(key);
      else this.fill(key, value, ttl > 0 ? ttl * 1000 - elapsed : undefined);
    }
    if (!early) this.publish({ keys });
  }

  /**
   * {@link delete} of every key: the L1 copies dropped before and after one bulk delete of L2,
   * one bus message for all. Resolves how many existed (the larger of the L2 count and the
   * number of keys the L1 held).
   */
  async deleteMany(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0;
    const distinct = [...new Set(keys)];
    const inL1 = distinct.filter((key) => this.l1.get(key) !== undefined).length;
    distinct.forEach((key) => this.invalidateKey(key));
    try {
      return Math.max(await this.shared.deleteMany(distinct), inL1);
    } finally {
      distinct.forEach((key) => this.invalidateKey(key));
      this.publish({ keys: distinct });
    }
  }

  /**
   * Replaces `key`'s L2 value with `next` only while it holds `expected` (`expire`), dropping
   * the L1 copy here and, through the bus, everywhere. `undefined` when L2 cannot compare (or
   * is away): the caller then writes as usual.
   */
  async swap(
    key: string,
    expected: unknown,
    next: unknown,
    ttl: number,
  ): Promise<boolean | undefined> {
    this.invalidateKey(key);
    try {
      return await this.shared.swapIfHolds(key, expected, next, ttl);
    } finally {
      this.invalidateKey(key);
      this.publish({ keys: [key] });
    }
  }

  async delete(key: string): Promise<boolean> {
    const inL1 = this.l1.get(key) !== undefined;
    this.invalidateKey(key);
    try {
      return (await this.shared.delete(key)) || inL1;
    } finally {
      this.invalidateKey(key);
      this.publish({ keys: [key] });
    }
  }

  async deleteByPrefix(prefix: string): Promise<number> {
    this.guard.prefix(prefix, 'local');
    this.recentLoads.take((key) => key.startsWith(prefix));
    const inL1 = await this.l1.store.deleteByPrefix(prefix).catch(() => 0);
    try {
      const inL2 = await this.shared.deleteByPrefix(prefix);
      return inL2 === undefined ? inL1 : Math.max(inL1, inL2);
    } finally {
      this.invalidatePrefix(prefix);
      this.publish({ prefixes: [prefix] });
    }
  }

  async clear(): Promise<void> {
    this.invalidateAll();
    try {
      await this.shared.clear();
    } finally {
      this.invalidateAll();
      this.publish({ clear: true });
    }
  }

  ping(): Promise<unknown> {
    return this.shared.ping();
  }

  /** Starts the L1 (when it is its own) and the bus; never fails startup for the bus. */
  async start(ownL1: boolean): Promise<void> {
    if (ownL1) await this.l1.store.onModuleInit?.();
    await this.bus?.start();
  }

  /** Stops the bus (after a bounded flush) and the L1 when it is its own. */
  async stop(ownL1: boolean, signal?: string): Promise<void> {
    this.detach.forEach((detach) => detach());
    await this.bus?.stop();
    if (ownL1) await this.l1.store.onApplicationShutdown?.(signal);
  }

  private trusted(): boolean {
    return this.bus === undefined || this.bus.state === 'live';
  }

  private fill(key: string, value: unknown, ttlMs: number | undefined): void {
    const limit = this.settings.l1Ttl;
    const seconds = ttlMs === undefined ? limit : Math.min(limit, ttlMs / 1000);
    if (!(seconds > 0)) {
      this.l1.drop(key);
      return;
    }
    try {
      this.l1.set(key, value, seconds);
    } catch {
      // An L1 that refuses the entry (too large for its bound) keeps none: never an older one.
      this.l1.drop(key);
    }
  }

  private publish(message: BusMessage): void {
    this.bus?.publish(message);
  }

  /** This instance changes `key`: its L1 copy, fills in flight and a recent load are void. */
  private invalidateKey(key: string): void {
    this.l1.drop(key);
    this.guard.key(key, 'local');
    this.recentLoads.takeKey(key);
  }

  private invalidatePrefix(prefix: string): void {
    this.l1.dropPrefix(prefix);
    this.guard.prefix(prefix, 'local');
    this.recentLoads.take((key) => key.startsWith(prefix));
  }

  private invalidateAll(): void {
    this.l1.dropAll();
    this.guard.all('local');
    this.recentLoads.take(() => true);
  }

  /** A change made by another instance (or a gap, as a clear). */
  private heard(message: BusMessage): void {
    if (message.clear) {
      this.l1.dropAll();
      this.guard.all('remote');
      this.undoLoads(this.recentLoads.take(() => true));
    } else {
      message.keys?.forEach((key) => {
        this.l1.drop(key);
        this.guard.key(key, 'remote');
        this.undoLoads(this.recentLoads.takeKey(key));
      });
      message.prefixes?.forEach((prefix) => {
        this.l1.dropPrefix(prefix);
        this.guard.prefix(prefix, 'remote');
        this.undoLoads(this.recentLoads.take((key) => key.startsWith(prefix)));
      });
    }
    this.onInvalidated(message);
  }

  private undoLoads(loads: Array<[string, unknown]>): void {
    for (const [key, value] of loads) void this.undoLoad(key, value);
  }

  /**
   * Deletes a loaded value from L2 that another instance's change may have overtaken — only if
   * L2 still holds it (compare-and-delete: a newer write stays) — and tells every instance,
   * which may hold it in L1.
   */
  private async undoLoad(key: string, value: unknown): Promise<void> {
    let deleted = false;
    try {
      deleted = await this.shared.deleteIfHolds(key, value);
    } catch {
      // A plain shared tier that fails: the entry is left to its TTL.
    }
    if (!deleted) return;
    this.invalidateKey(key);
    this.publish({ keys: [key] });
  }

  /** Recovery deleted these from the shared tier: so must this L1 and every other one. */
  private reconciled({ keys, prefixes, all }: Reconciled): void {
    if (all) {
      this.invalidateAll();
      this.publish({ clear: true });
      return;
    }
    keys.forEach((key) => this.invalidateKey(key));
    prefixes.forEach((prefix) => this.invalidatePrefix(prefix));
    this.publish({ keys, prefixes });
  }
}
