import type { TagStore } from '../interfaces/tag-store';

/** Tags whose times a process remembers at most (beyond, the oldest are forgotten or, alone, the store is cleared). */
const MAX_MARKS = 100_000;
/** Times read from the shared store kept at most (an LRU; a forgotten one is read again). */
/** This host's clock: ms since the epoch, sub-millisecond, monotonic. */
const hostClock = (): number => performance.timeOrigin + performance.now();

/** The offset of each local clock from the shared store's (see `TagClock.sync`). */
const offsets = new WeakMap<() => number, number>();

/** A clock reading whose round trip took longer is not trusted (ms). */
const SYNC_MAX_RTT_MS = 100;
/** Readings of the store's clock per alignment (the fastest round trip is kept). */
const SYNC_SAMPLES = 3;
/** Skew from the store's clock left uncorrected (ms). */
const SYNC_MIN_SKEW_MS = 1;

const MAX_FETCHED = 10_000;

/**
 * When each tag was last invalidated (`deleteByTag`), so that an entry carrying a tag is valid
 * only if it was created after: lazy invalidation, whose cost does not depend on how many
 * entries carry the tag. Times are ms since the epoch with sub-millisecond precision, taken by
 * {@link stamp}, which never returns the same time twice in a process: a `set` after a
 * `deleteByTag` is always newer than it.
 *
 * Where the times live:
 * - memory provider (no shared store): here, and only here (`marks`); a mark is kept as long
 *   as an entry that predates it could live (`retention`).
 * - shared store (Redis): there (`TagStore`, one record per tag, expiring after `retention`).
 *   This process keeps its own marks and those it hears on the bus as a floor (they hold while
 *   the store is away, under failover), and caches times it has read while `trusted()` says no
 *   mark can be missed (the bus is live); otherwise a tagged entry is checked against the store
 *   on every read.
 *
 * @internal
 */
export class TagClock {
  /** Marks made or heard here: tag → its time, until when it must be kept (ms). */
  private readonly marks = new Map<string, { at: number; until: number }>();
  /** An overflow clear is under way (no store): the marks wait for it. */
  private clearing = false;
  /** Times read from the store while trusted (0: never invalidated), most recent last. */
  private readonly fetched = new Map<string, number>();
  /** Bumped on every reset: a read that started before it is not cached. */
  private epoch = 0;
  private last = 0;
  /** The longest life the store is known to keep marks for (ms). */
  private published = 0;
  /** How long a mark must be kept (ms): the longest life of an entry carrying tags. */
  private retentionMs: number;

  constructor(
    private readonly store: TagStore | undefined,
    private readonly trusted: () => boolean,
    /** The longest life (ttl + grace, in seconds; 0 = forever) of a tagged entry to expect. */
    lifetime: number,
    /**
     * Called when more marks pile up than kept, with no store to hold them: clear the cache.
     * A promise when the clear takes time: the marks are kept until it has succeeded.
     */
    private readonly overflow: () => Promise<void> | undefined | void,
  ) {
    this.retentionMs = lifetime > 0 ? lifetime * 1000 : Infinity;
  }

  /**
   * This host's clock (ms since the epoch, sub-millisecond, monotonic). Replaceable in tests to
   * model a host whose clock is off.
   * @internal
   */
  local: () => number = hostClock;

  /**
   * What to add to {@link local} to read the shared store's clock (see {@link sync}): one per
   * clock, so every application of a process reading the host's clock adds the same offset and
   * orders its marks exactly against the others'.
   */
  private get offset(): number {
    return offsets.get(this.local) ?? 0;
  }

  private set offset(offset: number) {
    offsets.set(this.local, offset);
  }

  /**
   * A time (ms) later than any this process has taken: creation times and marks. With a shared
   * store, on the store's clock (see {@link sync}), so instances whose clocks disagree still
   * order marks and creation times alike.
   */
  stamp(): number {
    const now = this.local() + this.offset;
    this.last = now > this.last ? now : this.last + 0.001;
    return this.last;
  }

  /**
   * Aligns {@link stamp} on the shared store's clock (Redis `TIME`), compensating half the
   * round trip: marks and creation times of every instance then come from one clock, within a
   * round trip, whatever their hosts' clocks say. Never rejects: on failure (or a round trip
   * too slow to trust) the previous offset stays. Called at startup and every minute. Resolves
   * whether it aligned (`true` too without a shared store: nothing to align on).
   */
  async sync(): Promise<boolean> {
    if (this.store?.time === undefined) return true;
    let best: { rtt: number; offset: number } | undefined;
    try {
      // The reading with the shortest round trip is the most precise (error: half of it).
      for (let i = 0; i < SYNC_SAMPLES; i++) {
        const sent = this.local();
        const remote = await this.store.time();
        const received = this.local();
        const rtt = received - sent;
        if (rtt <= SYNC_MAX_RTT_MS && (best === undefined || rtt < best.rtt)) {
          best = { rtt, offset: remote - (sent + received) / 2 };
        }
      }
    } catch {
      // Kept: the next sync tries again.
      return false;
    }
    if (best === undefined) return false;
    // A skew within the reading's own error (half its round trip, plus a millisecond) is no
    // skew: hosts that agree that well keep their own clocks, so processes of one host order
    // marks exactly even when a busy machine slows the reading, and a correction is never
    // noisier than the skew it corrects.
    const error = best.rtt / 2 + SYNC_MIN_SKEW_MS;
    const offset = Math.abs(best.offset) > error ? best.offset : 0;
    if (Math.abs(offset - this.offset) > error) this.offset = offset;
    return true;
  }

  /**
   * Notes a tagged entry written to live `seconds` (0: forever): marks must outlive it, this
   * process's and, through the store, every instance's. A promise when the store must learn it
   * first (write the entry once it settles; it never rejects), else `undefined`.
   */
  lives(seconds: number): Promise<void> | undefined {
    const ms = seconds > 0 ? seconds * 1000 : Infinity;
    if (ms > this.retentionMs) this.retentionMs = ms;
    if (this.store === undefined || ms <= this.published) return undefined;
    return this.store.lives(ms === Infinity ? 0 : ms).then(
      () => {
        if (ms > this.published) this.published = ms;
      },
      () => undefined, // tried again with the next tagged write
    );
  }

  /**
   * Whether an entry created at `created` carrying `tags` is still valid, when this process
   * can tell without asking the store: `true`, `false`, or `undefined` (ask {@link check}).
   */
  judge(tags: readonly string[], created: number): boolean | undefined {
    let unknown = false;
    const trusted = this.store !== undefined && this.trusted();
    for (const tag of tags) {
      const mark = this.marks.get(tag);
      if (mark !== undefined && mark.at >= created) {
        if (mark.until > Date.now()) return false;
        this.marks.delete(tag);
      }
      if (this.store === undefined) continue;
      const known = trusted ? this.fetched.get(tag) : undefined;
      if (known === undefined) unknown = true;
      else if (known >= created) return false;
    }
    return unknown ? undefined : true;
  }

  /** {@link judge}, asking the store for the times it does not know. A store failure: the local marks decide. */
  async check(tags: readonly string[], created: number): Promise<boolean> {
    const sync = this.judge(tags, created);
    if (sync !== undefined || this.store === undefined) return sync ?? true;
    const epoch = this.epoch;
    const cache = this.trusted();
    let times: Array<number | undefined>;
    try {
      times = await this.store.read(tags);
    } catch {
      return true;
    }
    let valid = true;
    tags.forEach((tag, i) => {
      const at = times[i] ?? 0;
      if (at >= created) valid = false;
      // A mark made or heard while the read was in flight is newer than what it returned.
      const mark = this.marks.get(tag)?.at ?? 0;
      if (cache && epoch === this.epoch && this.trusted()) this.remember(tag, Math.max(at, mark));
    });
    return valid;
  }

  /**
   * Records that `tags` were invalidated at `at` here (and, with a store, there). Rejects when
   * the store fails: the local mark holds meanwhile.
   */
  async mark(tags: readonly string[], at: number): Promise<void> {
    this.heard(tags, at);
    if (this.store)
      await this.store.mark(tags, at, this.retentionMs === Infinity ? 0 : this.retentionMs);
  }

  /** Another instance invalidated `tags` at `at` (heard on the bus). */
  heard(tags: readonly string[], at: number): void {
    const until = Date.now() + this.retentionMs;
    for (const tag of tags) {
      const mark = this.marks.get(tag);
      if (mark === undefined || mark.at < at) {
        this.marks.delete(tag);
        this.marks.set(tag, { at, until });
      }
      const known = this.fetched.get(tag);
      if (known !== undefined && known < at) this.fetched.set(tag, at);
    }
    if (this.marks.size > MAX_MARKS) this.trim();
  }

  /** The bus had a gap (or the cache was cleared): times read from the store may be stale. */
  reset(): void {
    this.epoch++;
    this.fetched.clear();
  }

  private remember(tag: string, at: number): void {
    this.fetched.delete(tag);
    this.fetched.set(tag, at);
    if (this.fetched.size > MAX_FETCHED) {
      const oldest = this.fetched.keys().next().value;
      if (oldest !== undefined) this.fetched.delete(oldest);
    }
  }

  /**
   * Too many marks: expired ones go; if that is not enough, with a store the oldest go (the
   * store holds them), and without one the cache is cleared (every entry a mark could cover
   * goes with it) and so are the marks.
   */
  private trim(): void {
    const now = Date.now();
    for (const [tag, mark] of this.marks) if (mark.until <= now) this.marks.delete(tag);
    if (this.marks.size <= MAX_MARKS) return;
    if (this.store === undefined) {
      if (this.clearing) return;
      const covered = new Map(this.marks);
      // Only the marks the clear covers go (a newer mark of a tag stays).
      const forget = (): void => {
        for (const [tag, mark] of covered) {
          if (this.marks.get(tag) === mark) this.marks.delete(tag);
        }
      };
      const cleared = this.overflow();
      if (!cleared) {
        forget();
        return;
      }
      this.clearing = true;
      cleared
        .then(forget, () => undefined)
        .finally(() => {
          this.clearing = false;
        });
      return;
    }
    for (const tag of this.marks.keys()) {
      if (this.marks.size <= MAX_MARKS / 2) break;
      this.marks.delete(tag);
    }
  }
}
