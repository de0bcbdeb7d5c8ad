import { CACHE_EVENT_NAMES } from '../core/cache-events';
import type { CacheEvents } from '../core/cache-events';
import type { CacheEventName } from '../interfaces/cache-events.interface';
import type { EventEmitterLike } from './event-emitter.bridge';

/** The prefix of every cache event's name on `@nestjs/event-emitter`. */
export const EMITTED_EVENT_PREFIX = 'cachekit.';

/**
 * Events of every read or write, forwarded only while the application's `EventEmitter2` has a
 * listener for them: an emit there costs 60 to 200 ns (wildcards), as much as a hit itself.
 */
const PER_CALL: ReadonlySet<CacheEventName> = new Set(['hit', 'miss', 'set']);

/** How often the listeners of {@link PER_CALL} events are looked for again (ms). */
const RECHECK_MS = 1000;

/**
 * Emits a cache's events on `@nestjs/event-emitter` as `cachekit.<name>` (`cachekit.hit`,
 * `cachekit.loader.error`, ...), so `@OnEvent('cachekit.circuit')` handlers hear them. Events
 * that come with every read or write (`hit`, `miss`, `set`) are forwarded only while the
 * emitter has a listener for them (looked for at startup and every second), so an application
 * that uses the event emitter for other things pays nothing on its hits. @internal
 */
export class EventForwarder {
  private readonly detach = new Map<CacheEventName, () => void>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly events: CacheEvents,
    private readonly emitter: EventEmitterLike & Required<Pick<EventEmitterLike, 'emit'>>,
  ) {}

  /** Starts forwarding; per-call events follow the emitter's listeners from now on. */
  start(): void {
    for (const name of CACHE_EVENT_NAMES) {
      if (!PER_CALL.has(name)) this.forward(name);
    }
    this.recheck();
    // Listeners subscribed later in this startup (another module's bootstrap), or at run time.
    setImmediate(() => this.recheck()).unref();
    this.timer = setInterval(() => this.recheck(), RECHECK_MS);
    this.timer.unref();
  }

  /** Stops forwarding. */
  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
    for (const off of this.detach.values()) off();
    this.detach.clear();
  }

  /** Forwards each per-call event exactly while the emitter has a listener for it. */
  recheck(): void {
    if (this.timer === undefined && this.detach.size === 0) return; // stopped
    for (const name of PER_CALL) {
      const wanted = this.listened(EMITTED_EVENT_PREFIX + name);
      const forwarded = this.detach.has(name);
      if (wanted && !forwarded) this.forward(name);
      else if (!wanted && forwarded) {
        this.detach.get(name)?.();
        this.detach.delete(name);
      }
    }
  }

  private listened(event: string): boolean {
    try {
      // Without hasListeners (another emitter), forward: correctness first.
      return this.emitter.hasListeners ? this.emitter.hasListeners(event) : true;
    } catch {
      return true;
    }
  }

  private forward(name: CacheEventName): void {
    const event = EMITTED_EVENT_PREFIX + name;
    const emitter = this.emitter;
    // emitAsync where there is one: `@OnEvent` handlers are async, and a rejection of theirs
    // (`suppressErrors: false`) comes back to the cache's events, which log it; `emit` would
    // leave it unhandled.
    const send: (payload: unknown) => unknown =
      typeof emitter.emitAsync === 'function'
        ? (payload) => emitter.emitAsync?.(event, payload)
        : (payload) => emitter.emit(event, payload);
    this.detach.set(
      name,
      this.events.on(name, (payload) => send(payload)),
    );
  }
}
