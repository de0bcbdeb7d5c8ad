import type {
  CacheEventListener,
  CacheEventMap,
  CacheEventName,
} from '../interfaces/cache-events.interface';
import { describeError } from '../utils/describe-value';

/** Every event name, in the order the docs list them. @internal */
export const CACHE_EVENT_NAMES: readonly CacheEventName[] = Object.freeze([
  'hit',
  'miss',
  'stale',
  'set',
  'delete',
  'clear',
  'error',
  'loader.done',
  'loader.error',
  'loader.timeout',
  'circuit',
  'bus.message',
  'bus.gap',
  'bus.state',
  'lock.wait',
] as const);

const KNOWN: ReadonlySet<string> = new Set(CACHE_EVENT_NAMES);

/** Whether an event has listeners: read by the stack before it builds the event. @internal */
export type CacheEventFlags = { -readonly [E in CacheEventName]: boolean };

/**
 * The typed events of one cache (`CacheService.events`). Listeners run synchronously, in the
 * order they were added, after the cache has done what the event reports; a listener that
 * throws (or returns a Promise that rejects) is logged and never reaches the cache's caller.
 * An event nobody listens to is never built: the hit path costs the same with no listener as
 * without events at all (bench: `npm run bench -- --only events`).
 *
 * @example
 * ```ts
 * const off = cache.events.on('loader.error', ({ key, error }) => alerts.push(key, error));
 * cache.events.on('circuit', ({ from, to }) => logger.warn(`cache circuit ${from} -> ${to}`));
 * off(); // stop listening
 * ```
 */
export class CacheEvents {
  /** @internal Per event, whether it has listeners (the stack reads it before emitting). */
  readonly listening: Readonly<CacheEventFlags>;
  private readonly flags: CacheEventFlags;
  private readonly listeners = new Map<CacheEventName, Array<(event: never) => unknown>>();

  /** @internal Built by the cache stack; `failed` reports a listener that threw. */
  constructor(private readonly failed: (event: string, message: string) => void) {
    this.flags = Object.fromEntries(
      CACHE_EVENT_NAMES.map((name) => [name, false]),
    ) as CacheEventFlags;
    this.listening = this.flags;
  }

  /**
   * Calls `listener` on every `event` (see {@link CacheEventMap} for the names and what each
   * carries). Returns a function that removes it. Throws `TypeError` for an unknown event name
   * or a listener that is not a function.
   */
  on<E extends CacheEventName>(event: E, listener: CacheEventListener<E>): () => void {
    checkEvent(event);
    if (typeof listener !== 'function') {
      throw new TypeError(`A listener of cache event "${event}" must be a function.`);
    }
    const list = this.listeners.get(event);
    // Copied on change: an emit in progress keeps the list it started with.
    this.listeners.set(event, list ? [...list, listener] : [listener]);
    this.flags[event] = true;
    return () => this.off(event, listener);
  }

  /** Like {@link on}, for the next `event` only. */
  once<E extends CacheEventName>(event: E, listener: CacheEventListener<E>): () => void {
    if (typeof listener !== 'function') {
      checkEvent(event);
      throw new TypeError(`A listener of cache event "${event}" must be a function.`);
    }
    const once = Object.assign(
      (payload: CacheEventMap[E]): unknown => {
        off();
        return listener(payload);
      },
      { listener },
    );
    const off = this.on(event, once);
    return off;
  }

  /** Removes `listener` from `event` (one registration of it); unknown listeners are ignored. */
  off<E extends CacheEventName>(event: E, listener: CacheEventListener<E>): void {
    checkEvent(event);
    const list = this.listeners.get(event);
    if (!list) return;
    // A listener added with `once` is found by the function given to it, too.
    let index = list.length - 1;
    while (index >= 0 && !isListener(list[index], listener)) index--;
    if (index < 0) return;
    const rest = [...list.slice(0, index), ...list.slice(index + 1)];
    if (rest.length > 0) {
      this.listeners.set(event, rest);
    } else {
      this.listeners.delete(event);
      this.flags[event] = false;
    }
  }

  /** How many listeners `event` has. */
  listenerCount(event: CacheEventName): number {
    checkEvent(event);
    return this.listeners.get(event)?.length ?? 0;
  }

  /**
   * @internal Calls `event`'s listeners with `payload`. The stack checks {@link listening}
   * first, so an event nobody listens to costs no allocation.
   */
  emit<E extends CacheEventName>(event: E, payload: CacheEventMap[E]): void {
    const list = this.listeners.get(event) as Array<CacheEventListener<E>> | undefined;
    if (!list) return;
    for (const listener of list) {
      try {
        const result: unknown = listener(payload);
        if (isRejectable(result)) {
          result.then(undefined, (error: unknown) => this.listenerFailed(event, error));
        }
      } catch (error) {
        this.listenerFailed(event, error);
      }
    }
  }

  private listenerFailed(event: string, error: unknown): void {
    this.failed(
      `listener:${event}`,
      `A listener of cache event "${event}" failed (the cache carries on): ${describeError(error)}`,
    );
  }
}

function checkEvent(event: unknown): asserts event is CacheEventName {
  if (typeof event !== 'string' || !KNOWN.has(event)) {
    throw new TypeError(
      `Unknown cache event ${JSON.stringify(event) ?? String(event)}. Known events: ` +
        `${CACHE_EVENT_NAMES.join(', ')}.`,
    );
  }
}

function isRejectable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** `added` is `listener`, or the wrapper `once` added for it. */
function isListener(added: unknown, listener: unknown): boolean {
  return added === listener || (added as { listener?: unknown } | undefined)?.listener === listener;
}
