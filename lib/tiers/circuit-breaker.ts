import { FAILOVER_DEFAULTS } from '../config/defaults';
import { nonNegativeProblem, positiveIntegerProblem } from '../config/validators';

/**
 * The states of a {@link CircuitBreaker}:
 * - `closed`: calls go to the protected resource; consecutive failures are counted.
 * - `open`: calls skip the resource entirely until the cool-down has passed.
 * - `half-open`: one probe is under way; calls still skip the resource until it succeeds.
 */
export type CircuitState = 'closed' | 'open' | 'half-open';

/** What {@link CircuitBreaker.onStateChange} listeners receive. */
export interface CircuitStateChange {
  /** The state before the change. */
  readonly from: CircuitState;
  /** The state after the change. */
  readonly to: CircuitState;
  /** Why the state changed, in words fit for a log line. */
  readonly reason: string;
}

/** Options of {@link CircuitBreaker}. @internal */
export interface CircuitBreakerOptions {
  /**
   * Consecutive failures (in the closed state) that open the circuit.
   * @default 5
   */
  failureThreshold?: number;
  /**
   * Milliseconds the circuit stays open before a probe may start.
   * @default 5000
   */
  cooldownMs?: number;
  /**
   * Clock in milliseconds; inject one in tests.
   * @default Date.now
   */
  now?: () => number;
}

/**
 * A small, synchronous circuit breaker: the state machine only, no timers and no I/O, so it
 * can be unit-tested with an injected clock. Its owner decides when to probe (see
 * {@link CircuitBreaker.tryHalfOpen}) and when a probe counts as recovered (`close`).
 *
 * Every transition bumps {@link CircuitBreaker.epoch}. A caller that notes the epoch when it
 * starts a call and passes it to `recordSuccess` / `recordFailure` has a late answer (from a
 * call started before the circuit opened, say) ignored instead of miscounted.
 *
 * @example
 * ```ts
 * const breaker = new CircuitBreaker({ failureThreshold: 3, cooldownMs: 2000 });
 * breaker.onStateChange(({ from, to, reason }) => console.log(`${from} -> ${to}: ${reason}`));
 * if (breaker.state === 'closed') {
 *   const epoch = breaker.epoch;
 *   try { await call(); breaker.recordSuccess(epoch); }
 *   catch (error) { breaker.recordFailure(String(error), epoch); }
 * }
 * ```
 *
 * @internal
 */
export class CircuitBreaker {
  private current: CircuitState = 'closed';
  private consecutive = 0;
  private openedAt = 0;
  private generation = 0;
  private readonly listeners = new Set<(change: CircuitStateChange) => void>();
  private readonly threshold: number;
  private readonly cooldown: number;
  private readonly now: () => number;

  constructor(options: CircuitBreakerOptions = {}) {
    this.threshold = options.failureThreshold ?? FAILOVER_DEFAULTS.failureThreshold;
    this.cooldown = options.cooldownMs ?? FAILOVER_DEFAULTS.cooldown * 1000;
    this.now = options.now ?? Date.now;
    const thresholdProblem = positiveIntegerProblem(this.threshold);
    if (thresholdProblem) {
      throw new RangeError(`failureThreshold must be ${thresholdProblem}, got ${this.threshold}`);
    }
    const cooldownProblem = nonNegativeProblem(this.cooldown, 'ms');
    if (cooldownProblem) {
      throw new RangeError(`cooldownMs must be ${cooldownProblem}, got ${this.cooldown}`);
    }
  }

  /** The current state. */
  get state(): CircuitState {
    return this.current;
  }

  /** Consecutive failures counted in the closed state (reset by a success). */
  get failures(): number {
    return this.consecutive;
  }

  /** Bumped on every transition; see the class comment. */
  get epoch(): number {
    return this.generation;
  }

  /** The configured failure threshold. */
  get failureThreshold(): number {
    return this.threshold;
  }

  /** The configured cool-down in milliseconds. */
  get cooldownMs(): number {
    return this.cooldown;
  }

  /** Milliseconds until a probe may start: `0` when one may start now or when not open. */
  get cooldownRemaining(): number {
    if (this.current !== 'open') return 0;
    return Math.max(0, this.openedAt + this.cooldown - this.now());
  }

  /**
   * Counts a successful call. In the closed state it resets the failure count; a success
   * reported with a stale `epoch`, or while open or half-open, is ignored (recovery is
   * decided by whoever runs the probe, through {@link CircuitBreaker.close}).
   */
  recordSuccess(epoch?: number): void {
    if (epoch !== undefined && epoch !== this.generation) return;
    if (this.current === 'closed') this.consecutive = 0;
  }

  /**
   * Counts a failed call. In the closed state the `failureThreshold`-th consecutive failure
   * opens the circuit; in the half-open state any failure reopens it. Ignored while open and
   * when reported with a stale `epoch`. Resolves the state after counting.
   */
  recordFailure(reason: string, epoch?: number): CircuitState {
    if (epoch !== undefined && epoch !== this.generation) return this.current;
    if (this.current === 'closed') {
      this.consecutive++;
      if (this.consecutive >= this.threshold) {
        this.transition('open', `${this.consecutive} consecutive failures, last: ${reason}`);
      }
    } else if (this.current === 'half-open') {
      this.transition('open', reason);
    }
    return this.current;
  }

  /**
   * Moves an open circuit whose cool-down has passed to half-open and returns `true`: the
   * caller now owns the probe and must end it with {@link CircuitBreaker.close} or
   * {@link CircuitBreaker.open}. Returns `false` in every other case.
   */
  tryHalfOpen(): boolean {
    if (this.current !== 'open' || this.cooldownRemaining > 0) return false;
    this.transition('half-open', `cool-down of ${this.cooldown} ms elapsed, probing`);
    return true;
  }

  /** Opens the circuit now (restarting the cool-down), whatever the state. */
  open(reason: string): void {
    if (this.current === 'open') {
      this.openedAt = this.now();
      return;
    }
    this.transition('open', reason);
  }

  /** Closes the circuit (the resource is healthy again) and resets the failure count. */
  close(reason: string): void {
    if (this.current === 'closed') return;
    this.transition('closed', reason);
  }

  /**
   * Calls `listener` on every state change, synchronously, after the change. A listener that
   * throws does not disturb the breaker. Returns a function that removes the listener.
   */
  onStateChange(listener: (change: CircuitStateChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private transition(to: CircuitState, reason: string): void {
    const from = this.current;
    this.current = to;
    this.generation++;
    this.consecutive = 0;
    if (to === 'open') this.openedAt = this.now();
    for (const listener of [...this.listeners]) {
      try {
        listener({ from, to, reason });
      } catch {
        // A broken listener must not break the state machine.
      }
    }
  }
}
