import { OUTAGE_JOURNAL_MAX_PREFIXES } from '../config/defaults';
/** What an {@link OutageJournal} held at one moment; handed back to `settle` once applied. */
export interface OutageJournalSnapshot {
  /** The whole namespace must be cleared (a `clear()`, or more keys than the journal keeps). */
  readonly all: boolean;
  /** Prefixes passed to `deleteByPrefix`. */
  readonly prefixes: readonly string[];
  /** Keys written or deleted. */
  readonly keys: readonly string[];
  /** Tags invalidated (`deleteByTag`): tag → its time and how long its record lives (ms). */
  readonly tags: ReadonlyMap<string, { readonly at: number; readonly ttlMs: number }>;
}

/**
 * The keys (and prefixes, and namespace clears) changed while the primary cache could not be
 * trusted: skipped because the circuit was open, or a write whose outcome is unknown because
 * the call failed or timed out. Until the change has been applied to the primary (the key
 * deleted there), the primary may hold a stale value for it, so reads of a covered key must
 * not go to the primary.
 *
 * Bounded: beyond `maxKeys` keys (or `maxPrefixes` prefixes) the journal collapses into "clear
 * the whole namespace", which covers everything.
 */
export class OutageJournal {
  private clearAll = false;
  private readonly prefixes = new Set<string>();
  private readonly keys = new Set<string>();
  private readonly tags = new Map<string, { at: number; ttlMs: number }>();

  constructor(
    private readonly maxKeys: number,
    private readonly onOverflow: (what: string) => void = () => undefined,
    private readonly maxPrefixes = OUTAGE_JOURNAL_MAX_PREFIXES,
  ) {}

  /** `true` when nothing is waiting to be applied to the primary. */
  get empty(): boolean {
    return (
      !this.clearAll && this.prefixes.size === 0 && this.keys.size === 0 && this.tags.size === 0
    );
  }

  /** `true` when the whole namespace is to be cleared. */
  get clearsAll(): boolean {
    return this.clearAll;
  }

  /** Number of keys and prefixes recorded; a pending namespace clear counts one. */
  get size(): number {
    return this.keys.size + this.prefixes.size + this.tags.size + (this.clearAll ? 1 : 0);
  }

  /** `true` if the primary may hold a stale value for `key`. */
  covers(key: string): boolean {
    if (this.clearAll || this.keys.has(key)) return true;
    for (const prefix of this.prefixes) if (key.startsWith(prefix)) return true;
    return false;
  }

  recordKey(key: string): void {
    if (this.covers(key)) return;
    if (this.keys.size >= this.maxKeys) {
      this.onOverflow(`more than ${this.maxKeys} keys`);
      this.recordClear();
      return;
    }
    this.keys.add(key);
  }

  recordPrefix(prefix: string): void {
    if (this.clearAll || this.prefixes.has(prefix)) return;
    if (this.prefixes.size >= this.maxPrefixes) {
      this.onOverflow(`more than ${this.maxPrefixes} prefixes`);
      this.recordClear();
      return;
    }
    this.prefixes.add(prefix);
  }

  /**
   * Records tags invalidated while the primary could not take their marks. Bounded like the
   * keys: beyond `maxKeys` the journal collapses into a namespace clear (which drops every
   * entry the marks would have covered).
   */
  recordTags(tags: readonly string[], at: number, ttlMs: number): void {
    if (this.clearAll) return;
    for (const tag of tags) {
      const known = this.tags.get(tag);
      if (known !== undefined && known.at >= at) continue;
      if (known === undefined && this.tags.size >= this.maxKeys) {
        this.onOverflow(`more than ${this.maxKeys} tags`);
        this.recordClear();
        return;
      }
      this.tags.set(tag, { at, ttlMs });
    }
  }

  recordClear(): void {
    this.clearAll = true;
    // A namespace clear subsumes every key and prefix.
    this.keys.clear();
    this.prefixes.clear();
    this.tags.clear();
  }

  snapshot(): OutageJournalSnapshot {
    return {
      all: this.clearAll,
      prefixes: [...this.prefixes],
      keys: [...this.keys],
      tags: new Map(this.tags),
    };
  }

  /**
   * Forgets what `snapshot` held, once it has been applied to the primary. Entries recorded
   * after the snapshot stay (they are applied in the next round).
   */
  settle(snapshot: OutageJournalSnapshot): void {
    if (snapshot.all) this.clearAll = false;
    for (const prefix of snapshot.prefixes) this.prefixes.delete(prefix);
    for (const key of snapshot.keys) this.keys.delete(key);
    for (const [tag, { at }] of snapshot.tags) {
      if (this.tags.get(tag)?.at === at) this.tags.delete(tag);
    }
  }
}
