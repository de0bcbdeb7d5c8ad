/**
 * The one timeout helper of the library (as nestjs/terminus shares one `promiseTimeout`): every
 * bounded wait — a remote tier's fail-fast, a queue add, a shutdown — goes through it. Timers
 * are `unref()`ed, so a pending timeout never keeps the process alive, and cleared as soon as
 * the work settles.
 */

/** Rejected by {@link withTimeout} when the work outlives its budget. */
export class TimeoutError extends Error {
  constructor(readonly ms: number) {
    super(`no answer within ${ms} ms`);
    this.name = 'TimeoutError';
  }
}

/**
 * Resolves or rejects as `work` does, or rejects with {@link TimeoutError} (or what `onTimeout`
 * returns) after `ms`. `ms <= 0` means no bound: `work` is returned as it is. A synchronous
 * throw of `work` becomes a rejection. The work itself is not cancelled: a write that times out
 * may still land later, which callers that care about it must account for.
 */
export function withTimeout<T>(
  work: Promise<T> | (() => Promise<T>),
  ms: number,
  onTimeout: () => Error = () => new TimeoutError(ms),
): Promise<T> {
  let promise: Promise<T>;
  try {
    promise = typeof work === 'function' ? work() : work;
  } catch (error) {
    return Promise.reject(asError(error));
  }
  if (!(ms > 0)) return promise;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(onTimeout()), ms);
    timer.unref();
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(asError(error));
      },
    );
  });
}

/** Resolves after `ms` without keeping the process alive. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** `error` as an `Error` (a rejection with a string or an object becomes one). */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}
