import type { Tier } from '../tiers/sourced-read';
/** One load in flight for a key. */
export interface Flight {
  readonly promise: Promise<unknown>;
  /** Set when the key was written, deleted or cleared while the load ran: its result is stale. */
  superseded: boolean;
  /**
   * With `timeouts.hard`: from this time (`Date.now()` ms) the load is no longer joined (a
   * loader that hangs must not hold its key); it goes on and is stored if it resolves.
   */
  overdueAt?: number;
  /**
   * Set once the value is loaded and its write is pending: until then (`Date.now()` ms), callers
   * of the key get {@link stored} (as a hit) instead of reading a backend that may not have
   * stored it yet.
   */
  sharedUntil?: number;
  /** What is being written: the loaded value's JSON form, as a read will return it. */
  stored?: unknown;
  /** An expired value kept by `grace` that the load's callers fall back on. */
  stale?: { readonly value: unknown; readonly tier: Tier };
  /**
   * Set when the load ended without running the loader: another instance holding the lock
   * stored the value, which {@link stored} holds (its callers answer a hit).
   */
  found?: boolean;
  /** A refresh-ahead: callers read the cached entry instead of joining it. */
  background?: boolean;
  /** The load replaces an entry the store holds: its write must not be `NX` (l1). */
  replaces?: boolean;
  /** The tags the loaded value will carry: `deleteByTag` of one supersedes the load. */
  tags?: readonly string[];
  /** With tags: when the load started (the creation time its value is stored with). */
  created?: number;
}

/**
 * Single-flight with supersession: at most one load per key in this process, and a write,
 * delete or clear of a key marks its load stale (its result is returned to its waiters but not
 * stored) and lets the next caller start afresh.
 */
export class SingleFlight {
  private readonly flights = new Map<string, Flight>();

  /** Loads in flight now (for tests and diagnostics). */
  get size(): number {
    return this.flights.size;
  }

  /**
   * Registers a new load of `key` and returns its flight, whose `promise` the caller sets once
   * the load has started. Registered first: a loader that throws at once must find it to land.
   */
  begin(key: string): Flight {
    const flight: Flight = {
      promise: undefined as unknown as Promise<unknown>,
      superseded: false,
    };
    this.flights.set(key, flight);
    return flight;
  }

  /**
   * The load of `key` a caller may join, dropping one whose shared window has passed or that is
   * overdue (see {@link Flight.overdueAt}).
   */
  joinable(key: string): Flight | undefined {
    const flight = this.flights.get(key);
    if (flight === undefined) return undefined;
    const until = flight.sharedUntil ?? flight.overdueAt;
    if (until !== undefined && Date.now() > until) {
      this.flights.delete(key);
      return undefined;
    }
    return flight;
  }

  /** Ends the load of `key`, unless a newer one has taken its place. */
  land(key: string, flight: Flight): void {
    if (this.flights.get(key) === flight) this.flights.delete(key);
  }

  /** Marks loads whose value carries one of `tags` as stale. */
  supersedeTags(tags: readonly string[]): void {
    if (this.flights.size === 0) return;
    for (const [key, flight] of this.flights) {
      if (flight.tags?.some((tag) => tags.includes(tag))) {
        flight.superseded = true;
        this.flights.delete(key);
      }
    }
  }

  /** Marks loads of `key` (or, not `exact`, of every key under it) as stale. */
  supersede(key: string, exact: boolean): void {
    if (this.flights.size === 0) return;
    if (exact) {
      const flight = this.flights.get(key);
      if (flight) {
        flight.superseded = true;
        this.flights.delete(key);
      }
      return;
    }
    for (const [candidate, flight] of this.flights) {
      if (candidate.startsWith(key)) {
        flight.superseded = true;
        this.flights.delete(candidate);
      }
    }
  }
}
