/** A Promise with its resolve and reject at hand: a loader a test settles when it chooses. */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** How a followed Promise has settled so far (see {@link track}). */
export interface Tracked<T> {
  settled: boolean;
  result?: T;
  error?: unknown;
}

/** Follows a Promise without awaiting it, so a test can look at it as the clock moves. */
export function track<T>(promise: Promise<T>): Tracked<T> {
  const state: Tracked<T> = { settled: false };
  promise.then(
    (result) => Object.assign(state, { settled: true, result }),
    (error: unknown) => Object.assign(state, { settled: true, error }),
  );
  return state;
}
