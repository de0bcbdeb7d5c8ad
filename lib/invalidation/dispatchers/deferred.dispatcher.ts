import { DEFERRED_DISPATCHER_DEFAULTS } from '../../config/defaults';
import { invalidOption, positiveIntegerProblem } from '../../config/validators';
import { describeError, quote } from '../../utils/describe-value';
import { RateLimitedLogger } from '../../utils/rate-limited-logger';
import type {
  InvalidationDispatcher,
  InvalidationExecutor,
  InvalidationJob,
} from '../../interfaces/invalidation-dispatcher.interface';
import { describeTargets } from './job-description';

/**
 * Options of {@link DeferredDispatcher}.
 *
 * @example
 * ```ts
 * new DeferredDispatcher({ concurrency: 4, maxQueue: 50_000 });
 * ```
 */
export interface DeferredDispatcherOptions {
  /**
   * Jobs run at the same time.
   * @default 1
   */
  concurrency?: number;
  /**
   * Jobs waiting at most. Beyond it `dispatch` waits for the job to run (back-pressure)
   * instead of growing the queue without bound.
   * @default 10000
   */
  maxQueue?: number;
}

interface Pending {
  readonly job: InvalidationJob;
  readonly execute: InvalidationExecutor;
}

/**
 * An in-process queue (`'deferred'`; the analogue of Restflow's thread-pool and asyncio
 * dispatchers): `dispatch` returns at once and the job runs on a later turn of the event loop,
 * so a slow invalidation never delays the caller. Failures are logged through Nest's `Logger`
 * (rate-limited). At shutdown the queue is drained before the cache backend closes; work still
 * queued when the process dies is lost — use the BullMQ dispatcher when that matters.
 *
 * Built in under the name `'deferred'`; register your own instance under that name to tune it.
 *
 * @example
 * ```ts
 * InvalidationRule({ event: User, fieldMapping: { userId: 'id' }, dispatcher: 'deferred' })
 * CacheModule.forRoot({ invalidation: { dispatchers: { deferred: new DeferredDispatcher({ concurrency: 4 }) } } })
 * ```
 */
export class DeferredDispatcher implements InvalidationDispatcher {
  private readonly log = new RateLimitedLogger();
  private readonly queue: Pending[] = [];
  private readonly concurrency: number;
  private readonly maxQueue: number;
  private active = 0;
  private scheduled = false;
  private idle: Array<() => void> = [];

  constructor(options: DeferredDispatcherOptions = {}) {
    this.concurrency = positiveInteger(
      options.concurrency ?? DEFERRED_DISPATCHER_DEFAULTS.concurrency,
      'concurrency',
    );
    this.maxQueue = positiveInteger(
      options.maxQueue ?? DEFERRED_DISPATCHER_DEFAULTS.maxQueue,
      'maxQueue',
    );
  }

  /** Jobs queued or running. */
  get pending(): number {
    return this.queue.length + this.active;
  }

  dispatch(job: InvalidationJob, execute: InvalidationExecutor): Promise<void> {
    if (this.queue.length >= this.maxQueue) {
      this.log.warn(
        'deferred:full',
        `Deferred invalidation queue is full (${this.maxQueue} jobs); running ${quote(job.event)} in the caller.`,
      );
      return this.run({ job, execute });
    }
    this.queue.push({ job, execute });
    this.schedule();
    return Promise.resolve();
  }

  /** Resolves once every queued job has run. */
  drain(): Promise<void> {
    if (this.pending === 0) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** Drains the queue; Nest calls it (through the invalidator) before the cache closes. */
  close(): Promise<void> {
    return this.drain();
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // setImmediate, not a microtask: the publisher's own continuation runs first.
    setImmediate(() => {
      this.scheduled = false;
      this.pump();
    });
  }

  private pump(): void {
    while (this.active < this.concurrency && this.queue.length > 0) {
      const next = this.queue.shift() as Pending;
      this.active++;
      void this.run(next).finally(() => {
        this.active--;
        if (this.queue.length > 0) this.pump();
        else if (this.active === 0) this.settle();
      });
    }
  }

  private async run({ job, execute }: Pending): Promise<void> {
    try {
      await execute(job);
    } catch (error) {
      this.log.error(
        `deferred:${job.event}`,
        `Deferred cache invalidation for ${quote(job.event)} failed (${describeTargets(job)}): ${describeError(error)}`,
      );
    }
  }

  private settle(): void {
    const waiters = this.idle;
    this.idle = [];
    for (const resolve of waiters) resolve();
  }
}

function positiveInteger(value: number, option: string): number {
  const problem = positiveIntegerProblem(value);
  if (problem) throw invalidOption(option, value, problem, 'DeferredDispatcher');
  return value;
}
