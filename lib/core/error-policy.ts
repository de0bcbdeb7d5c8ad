import { Logger } from '@nestjs/common';
import { CACHE_LOGGER_CONTEXT } from '../config/cache.constants';
import { quote } from '../utils/describe-value';
import { RateLimitedLogger } from '../utils/rate-limited-logger';

/**
 * The error policy of the stack: a backend failure never reaches the caller. It is logged
 * (rate-limited, per operation) and answered as a miss or a no-op; {@link failures} counts them,
 * so a decorated call that sees it move while it waited knows the backend is down.
 */
export class ErrorPolicy {
  /** Backend calls that have failed so far. */
  failures = 0;
  private readonly log = new RateLimitedLogger(new Logger(CACHE_LOGGER_CONTEXT));

  /** `observe` hears every failure after it is counted and logged (stats, events). */
  constructor(
    private readonly observe?: (operation: string, key: string, error: unknown) => void,
  ) {}

  /**
   * Runs `call`; a failure (a rejection, or a synchronous throw) is logged and answered with
   * `fallback`. One `then` in all: each costs a turn of the microtask queue on every Redis call.
   */
  guarded<R>(
    operation: string,
    key: string,
    call: () => Promise<R>,
    fallback: R,
    onValue?: (value: R) => R,
  ): Promise<R> {
    try {
      return call().then(onValue, (error: unknown) => {
        this.failed(operation, key, error);
        return fallback;
      });
    } catch (error) {
      this.failed(operation, key, error);
      return Promise.resolve(fallback);
    }
  }

  /**
   * {@link guarded} with an answer computed for each outcome: `onValue` of what `call` resolved,
   * or, once the failure is logged, `onFailure()`.
   */
  settled<V, R>(
    operation: string,
    key: string,
    call: () => Promise<V>,
    onValue: (value: V) => R | Promise<R>,
    onFailure: () => R,
  ): Promise<R> {
    const failed = (error: unknown): R => {
      this.failed(operation, key, error);
      return onFailure();
    };
    try {
      return call().then(onValue, failed);
    } catch (error) {
      return Promise.resolve(failed(error));
    }
  }

  /** Records and logs a failed backend call. */
  failed(operation: string, key: string, error: unknown): void {
    this.failures++;
    const reason = error instanceof Error ? error.message : String(error);
    this.log.warn(
      `backend:${operation}`,
      `Cache ${operation} ${quote(key)} failed, calling through: ${reason}`,
    );
    this.observe?.(operation, key, error);
  }

  /** Logs a warning about something not stored (a value JSON cannot hold, say). */
  warn(topic: string, message: string): void {
    this.log.warn(topic, message);
  }
}
