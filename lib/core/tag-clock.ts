import type { TagStore } from '../interfaces/tag-store';

/** Tags whose times a process remembers at most (beyond, the oldest are forgotten or, alone, the store is cleared). */
const MAX_MARKS = 100_000;
/** Times read from the shared store kept at most (an LRU; a forgotten one is read again). */
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
    /** Called when more marks pile up than kept, with no store to hold them: clear the cache. */
    private readonly overflow: () => void,
  ) {
    this.retentionMs = lifetime > 0 ? lifetime * 1000 : Infinity;
  }

  /** A time (ms) later than any this process has taken: creation times and marks. */
  stamp(): number {
    const now = performance.timeOrigin + performance.now();
    this.last = now > this.last ? now : this.last + 0.001;
    return this.last;
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
      if (cache && epoch === this.epoch && this.trusted()) this.remember(tag, at);
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
      this.marks.clear();
      this.overflow();
      return;
    }
    for (const tag of this.marks.keys()) {
      if (this.marks.size <= MAX_MARKS / 2) break;
      this.marks.delete(tag);
    }
  }
}
