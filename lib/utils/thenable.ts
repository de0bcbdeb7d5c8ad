/**
 * `true` when `result` is a thenable: a predicate the cache calls synchronously (`condition`,
 * `unless`) returned a Promise, a programming error. Its rejection is absorbed here, so it can
 * never end the process as an unhandled rejection; the caller logs and decides.
 */
export function isThenable(result: unknown): boolean {
  if ((typeof result !== 'object' && typeof result !== 'function') || result === null) {
    return false;
  }
  let then: unknown;
  try {
    then = (result as { then?: unknown }).then;
  } catch {
    return false;
  }
  if (typeof then !== 'function') return false;
  try {
    (then as (resolve: unknown, reject: (error: unknown) => void) => unknown).call(
      result,
      undefined,
      ignore,
    );
  } catch {
    // A `then` that throws has nothing left to reject with.
  }
  return true;
}

function ignore(): void {}
