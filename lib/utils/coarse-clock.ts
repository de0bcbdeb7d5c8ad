/**
 * A clock read at most once per millisecond, for hot paths: a clock read per cache hit costs
 * about a third of the hit. The reading is dropped by a 1 ms timer (unref'd), so it is at most
 * about 1 ms old while the event loop turns (lru-cache does the same for its staleness checks).
 * `identity` names the clock's current source (`Date.now`, `performance.now`): when it changes
 * — fake timers installed or removed in a test — the reading is dropped at once, so faked time
 * moves cached expiries too. Under fake timers the reading moves when timers are advanced.
 *
 * @returns the clock: `read()`'s value, possibly up to about 1 ms old.
 */
export function coarseClock(identity: () => unknown, read: () => number): () => number {
  let reading: number | undefined;
  let source: unknown;
  const forget = (): void => {
    reading = undefined;
  };
  return () => {
    const current = identity();
    if (reading === undefined || source !== current) {
      source = current;
      reading = read();
      setTimeout(forget, 1).unref();
    }
    return reading;
  };
}
