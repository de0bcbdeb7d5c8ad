/**
 * The stored form of an entry that carries metadata (a logical expiry for `grace`, a refresh
 * point for `refreshAhead`): `{ "\u0000cachekit": 1, v, e, x, r? }`. Every other entry is the
 * value's JSON form as it always was, so entries written before envelopes existed still read.
 *
 * No user value is mistaken for an envelope: a value that is itself an object with the marker
 * key is always written inside one (`{ "\u0000cachekit": 1, v: <that object>, e: 0, x: 0 }`), so
 * on read the marker means "envelope" and nothing else. The marker key holds a NUL character,
 * which no entry written before this format is expected to have as a key.
 *
 * @internal
 */

/** The marker key of an envelope. */
const MARK = '\u0000cachekit';

/** An entry with metadata, as stored (its value in JSON form). */
export interface Envelope {
  readonly [MARK]: 1;
  /** The value, in its stored (JSON) form. */
  readonly v: unknown;
  /** Logical expiry, ms since the epoch: the value is fresh before it, stale after. `0`: none. */
  readonly e: number;
  /** When the stored entry itself expires (logical expiry + grace), ms. `0`: never. */
  readonly x: number;
  /** With `refreshAhead`: from this time (ms) a hit starts a background refresh. */
  readonly r?: number;
  /** The entry's tags (`deleteByTag` invalidates it when one was invalidated after {@link c}). */
  readonly g?: readonly string[];
  /** With tags: when the value was created (ms, sub-millisecond; the load's start for a load). */
  readonly c?: number;
}

/** The metadata a write gives an entry. */
export interface EntryTimes {
  /** Logical expiry (ms since the epoch), `0` for none. */
  readonly expiresAt: number;
  /** The stored entry's own expiry (ms), `0` for never. */
  readonly keptUntil: number;
  /** Refresh point (ms), if any. */
  readonly refreshAt?: number;
  /** Tags, if any, with the value's creation time. */
  readonly tags?: readonly string[];
  readonly created?: number;
}

/** `true` for a stored value that is an envelope (possibly a corrupt one: see {@link opened}). */
export function isSealed(stored: unknown): stored is Envelope {
  return (
    typeof stored === 'object' &&
    stored !== null &&
    (stored as Record<string, unknown>)[MARK] !== undefined
  );
}

/**
 * What to store for `value` (already in its stored form): an envelope with `times`, or, with no
 * times, the value as it is unless it could be read as an envelope.
 */
export function seal(value: unknown, times: EntryTimes | undefined): unknown {
  if (times === undefined) {
    return isSealed(value) ? { [MARK]: 1, v: value, e: 0, x: 0 } : value;
  }
  const envelope: Record<string, unknown> = {
    [MARK]: 1,
    v: value,
    e: times.expiresAt,
    x: times.keptUntil,
  };
  if (times.refreshAt !== undefined) envelope.r = times.refreshAt;
  if (times.tags !== undefined && times.tags.length > 0) {
    envelope.g = times.tags;
    envelope.c = times.created ?? 0;
  }
  return envelope;
}

/**
 * The envelope `stored` holds, checked: `undefined` when it is not a well-formed one (data in
 * Redis that was corrupted or written by something else: the caller reads it as a miss).
 */
export function opened(stored: Envelope): Envelope | undefined {
  const { e, x, r, g, c } = stored;
  return stored[MARK] === 1 &&
    'v' in stored &&
    stored.v !== undefined &&
    typeof e === 'number' &&
    typeof x === 'number' &&
    (r === undefined || typeof r === 'number') &&
    (g === undefined ||
      (Array.isArray(g) && typeof c === 'number' && g.every((tag) => typeof tag === 'string')))
    ? stored
    : undefined;
}

/** The metadata of `envelope` to keep when it is rewritten (`expire`): its tags. */
export function tagsOf(envelope: Envelope): Pick<EntryTimes, 'tags' | 'created'> {
  return envelope.g === undefined ? {} : { tags: envelope.g, created: envelope.c };
}

/** `true` when the envelope's value is past its logical expiry at `now`. */
export function isStale(envelope: Envelope, now: number): boolean {
  return envelope.e !== 0 && now >= envelope.e;
}
