import { Redis, type RedisOptions } from 'ioredis';
import type { Job, JobsOptions, Queue, Worker } from 'bullmq';
import { CacheConfigError } from '../../utils/cache.errors';
import { quote } from '../../utils/describe-value';
import { RateLimitedLogger } from '../../utils/rate-limited-logger';
import { redactUrl, registerRedisSecrets } from '../../utils/redact';
import type {
  InvalidationDispatcher,
  InvalidationExecutor,
  InvalidationJob,
} from '../../interfaces/invalidation-dispatcher.interface';
import { describeTargets, reason } from './inline.dispatcher';

/**
 * Options of {@link BullMqDispatcher}.
 *
 * @example
 * ```ts
 * new BullMqDispatcher({ connection: { url: process.env.REDIS_URL }, attempts: 5, worker: false });
 * ```
 */
export interface BullMqDispatcherOptions {
  /**
   * How BullMQ reaches Redis: a `url` and/or ioredis options. The dispatcher opens its own
   * connections (the cache's fail-fast client is not suitable for a blocking worker): the worker
   * with `maxRetriesPerRequest: null`, the producer without an offline queue so `publish` never
   * waits for a reconnect.
   */
  connection: RedisOptions & { url?: string };
  /** @default 'cachekit-invalidation' */
  queueName?: string;
  /** BullMQ's key prefix in Redis. @default 'bull' */
  prefix?: string;
  /** Attempts per job before it is kept as failed. @default 8 */
  attempts?: number;
  /** First retry delay in ms; each further retry waits twice as long (exponential). @default 500 */
  backoff?: number;
  /** Run a worker in this process. `false` makes a producer only (web nodes, tests). @default true */
  worker?: boolean;
  /** Jobs a worker runs at the same time. @default 1 */
  concurrency?: number;
  /** Completed jobs kept for inspection (failed jobs are always kept). @default 1000 */
  keepCompleted?: number;
  /**
   * Jobs held in memory while Redis refuses them (re-sent when it is back; lost if the process
   * exits first).
   * @default 10000
   */
  maxBuffered?: number;
  /**
   * How long `publish` waits for BullMQ to accept a job before falling back.
   * @default 2000
   */
  addTimeout?: number;
}

/**
 * A job kept by BullMQ, as returned by {@link BullMqDispatcher.failedJobs}.
 *
 * @example
 * ```ts
 * for (const job of await dispatcher.failedJobs()) console.log(job.id, job.failedReason, job.data.prefixes);
 * ```
 */
export interface InvalidationJobRecord {
  readonly id: string | undefined;
  readonly data: InvalidationJob;
  readonly attemptsMade: number;
  readonly failedReason: string | undefined;
}

type BullMq = typeof import('bullmq');

const RETRY_MS = 1000;

/**
 * A durable job queue on BullMQ over Redis (`'bullmq'`; the analogue of Restflow's celery / rq /
 * dramatiq dispatchers). `publish` adds a job and returns; a worker — in this process or in a
 * dedicated worker process — performs it, retrying with exponential back-off. Jobs that use up
 * their attempts are kept in BullMQ's failed set (`removeOnFail: false`) for inspection and
 * manual retry. A job already in Redis survives a Redis restart (with Redis persistence on) and a
 * crash of the process that published it.
 *
 * When Redis refuses the job (it is down), `publish` does not fail: the job runs inline at once
 * (which still clears an in-memory or failover cache) and is kept in memory and re-sent to BullMQ
 * once Redis is back, so a Redis-backed cache is cleaned when it returns. Those buffered jobs
 * are lost if the process exits while Redis is still down (logged at shutdown).
 *
 * `bullmq` is an optional peer dependency, loaded only when this dispatcher starts.
 *
 * @example
 * ```ts
 * CacheModule.forRoot({
 *   provider: 'redis',
 *   redis: { url: process.env.REDIS_URL },
 *   invalidation: {
 *     dispatchers: { bullmq: new BullMqDispatcher({ connection: { url: process.env.REDIS_URL } }) },
 *   },
 * });
 * InvalidationRule({ event: User, fieldMapping: { userId: 'id' }, dispatcher: 'bullmq' });
 * ```
 */
export class BullMqDispatcher implements InvalidationDispatcher {
  /** Name of the BullMQ queue. */
  readonly queueName: string;
  private readonly log = new RateLimitedLogger();
  private readonly connection: RedisOptions;
  private readonly jobOptions: JobsOptions;
  private queue: Queue | undefined;
  /** The queue's set-up failed; see {@link BullMqDispatcher.usableQueue}. */
  private queueFailed = false;
  private producer: Redis | undefined;
  private worker: Worker | undefined;
  private buffered: InvalidationJob[] = [];
  private readonly clients: Redis[] = [];
  private executor: InvalidationExecutor | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: BullMqDispatcherOptions) {
    // Before anything can fail: no message may show these passwords.
    registerRedisSecrets(options?.connection);
    if (!options || typeof options.connection !== 'object' || options.connection === null) {
      throw new CacheConfigError(
        'BullMqDispatcher needs a connection, e.g. new BullMqDispatcher({ connection: { url: "redis://127.0.0.1:6379" } }).',
      );
    }
    for (const name of ['attempts', 'concurrency', 'maxBuffered'] as const) {
      const value = options[name];
      if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
        throw new CacheConfigError(
          `BullMqDispatcher option "${name}" must be an integer >= 1, got ${String(value)}.`,
        );
      }
    }
    for (const name of ['backoff', 'keepCompleted', 'addTimeout'] as const) {
      const value = options[name];
      if (value !== undefined && (!Number.isFinite(value) || value < 0)) {
        throw new CacheConfigError(
          `BullMqDispatcher option "${name}" must be a number >= 0, got ${String(value)}.`,
        );
      }
    }
    this.queueName = options.queueName ?? 'cachekit-invalidation';
    this.connection = toRedisOptions(options.connection);
    this.jobOptions = {
      attempts: options.attempts ?? 8,
      backoff: { type: 'exponential', delay: options.backoff ?? 500 },
      removeOnComplete: { count: options.keepCompleted ?? 1000 },
      removeOnFail: false,
    };
  }

  /** Opens the queue and, unless `worker: false`, starts a worker that runs jobs with `execute`. */
  start(execute: InvalidationExecutor): void {
    if (this.queue) {
      if (execute !== this.executor) {
        throw new CacheConfigError(
          `This BullMqDispatcher (queue ${quote(this.queueName)}) is already started by another ` +
            `application; create one dispatcher per application.`,
        );
      }
      return;
    }
    this.executor = execute;
    const bullmq = loadBullMq();
    const prefix = this.options.prefix;
    // The dispatcher owns its connections (BullMQ leaves shared ones open), so it can always
    // close them — BullMQ's own close() can leave a client reconnecting after an outage.
    this.producer = this.client({
      // Fail fast on the producer side: a publish must not wait for Redis to come back.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 1,
      connectionName: this.connection.connectionName ?? 'cachekit-invalidation-producer',
    });
    this.openQueue(bullmq);
    if (this.options.worker === false) return;
    const worker = new bullmq.Worker(
      this.queueName,
      (job: Job) => execute(job.data as InvalidationJob),
      {
        // BullMQ's blocking connection must retry forever (it is how the worker survives outages).
        connection: this.client({
          maxRetriesPerRequest: null,
          connectionName: this.connection.connectionName ?? 'cachekit-invalidation-worker',
        }),
        prefix,
        concurrency: this.options.concurrency ?? 1,
      },
    );
    this.worker = worker;
    worker.on('error', (error: Error) =>
      this.log.warn('bullmq:worker', `BullMQ invalidation worker: ${redactUrl(error.message)}`),
    );
    worker.on('failed', (job: Job | undefined, error: Error) => {
      if (!job) return;
      const data = job.data as InvalidationJob;
      const attempts = job.opts.attempts ?? 1;
      const final = job.attemptsMade >= attempts;
      this.log.warn(
        `bullmq:failed:${data.event}`,
        `Cache invalidation job ${job.id ?? '?'} for ${quote(data.event)} failed ` +
          `(attempt ${job.attemptsMade}/${attempts}${final ? ', kept in the failed set' : ', will retry'}; ` +
          `${describeTargets(data)}): ${reason(error)}`,
      );
    });
  }

  async dispatch(job: InvalidationJob, execute: InvalidationExecutor): Promise<void> {
    if (!this.queue && !this.closed) this.start(execute);
    if (this.closed) {
      await this.runInline(job, execute);
      return;
    }
    try {
      await this.add([job]);
    } catch (error) {
      this.log.warn(
        'bullmq:add',
        `BullMQ did not take the invalidation job for ${quote(job.event)} (${reason(error)}); running it ` +
          `inline now and re-sending it when Redis is back.`,
      );
      this.buffer(job);
      await this.runInline(job, execute);
    }
  }

  /** Jobs kept in BullMQ's failed set (they used up their attempts), newest first. */
  async failedJobs(start = 0, end = 99): Promise<InvalidationJobRecord[]> {
    const jobs = this.queue ? await this.usableQueue().getFailed(start, end) : [];
    return jobs.map((job) => ({
      id: job.id,
      data: job.data as InvalidationJob,
      attemptsMade: job.attemptsMade,
      failedReason: job.failedReason,
    }));
  }

  /** Job counts by state (`waiting`, `active`, `delayed`, `completed`, `failed`, ...). */
  async counts(): Promise<Record<string, number>> {
    return this.queue ? this.usableQueue().getJobCounts() : {};
  }

  /** Jobs held in memory because Redis refused them. */
  get bufferedJobs(): number {
    return this.buffered.length;
  }

  /** Stops the worker (after its running job) and closes the queue. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    if (this.buffered.length > 0) await this.flush();
    if (this.buffered.length > 0) {
      this.log.error(
        'bullmq:lost',
        `${this.buffered.length} cache invalidation job(s) could not be handed to BullMQ before ` +
          `shutdown (Redis unreachable); they ran inline once and are now dropped.`,
      );
      this.buffered = [];
    }
    await within(this.worker?.close(), 5000, () => this.worker?.close(true));
    await within(this.queue?.close(), 5000, () => this.queue?.disconnect());
    for (const client of this.clients.splice(0)) client.disconnect();
    this.worker = undefined;
    this.queue = undefined;
    this.producer = undefined;
  }

  /**
   * Opens the BullMQ queue on the producer connection. BullMQ sets a queue up once, on its
   * first connection (it waits for `ready`, then reads the server version with INFO), and keeps
   * the outcome for the queue's lifetime: if Redis goes away during that set-up — the fail-fast
   * producer gives INFO up after one retry — every later call on that queue rejects at once
   * with the same error, even after Redis is back. So a queue whose set-up failed is noted
   * here and replaced by {@link BullMqDispatcher.usableQueue}.
   */
  private openQueue(bullmq: BullMq = loadBullMq()): Queue {
    const queue = new bullmq.Queue(this.queueName, {
      connection: this.producer as Redis,
      prefix: this.options.prefix,
      defaultJobOptions: this.jobOptions,
    });
    this.queue = queue;
    this.queueFailed = false;
    queue.on('error', (error: Error) =>
      this.log.warn('bullmq:queue', `BullMQ invalidation queue: ${redactUrl(error.message)}`),
    );
    queue.waitUntilReady().catch(() => {
      if (this.queue === queue && !this.closed) this.queueFailed = true;
    });
    return queue;
  }

  /**
   * The queue, or — when its set-up failed (see {@link BullMqDispatcher.openQueue}) — a new
   * one on the same producer connection once that connection is ready again. Until then,
   * throws so a publish falls back at once instead of waiting for Redis.
   */
  private usableQueue(): Queue {
    if (!this.queueFailed) return this.queue as Queue;
    const status = this.producer?.status;
    if (status !== 'ready') {
      throw new Error(`Redis not connected (ioredis status '${status ?? 'none'}')`);
    }
    const failed = this.queue as Queue;
    // The producer connection is shared, so this only detaches BullMQ's listeners from it.
    failed.close().catch(() => undefined);
    return this.openQueue();
  }

  private client(overrides: RedisOptions): Redis {
    const client = new Redis({ ...this.connection, ...overrides });
    // BullMQ listens too; this one keeps an outage from printing unhandled 'error' events.
    client.on('error', (error: Error) =>
      this.log.warn(
        'bullmq:connection',
        `BullMQ invalidation connection: ${redactUrl(error.message)}`,
      ),
    );
    this.clients.push(client);
    return client;
  }

  private async add(jobs: readonly InvalidationJob[]): Promise<void> {
    const queue = this.usableQueue();
    const adding = queue.addBulk(jobs.map((data) => ({ name: data.event, data })));
    const timeout = this.options.addTimeout ?? 2000;
    // An add that times out may still land later; jobs are idempotent, so a duplicate is harmless.
    adding.catch(() => undefined);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`no answer from Redis within ${timeout} ms`)),
        timeout,
      );
      timer.unref();
    });
    try {
      await Promise.race([adding, timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  private buffer(job: InvalidationJob): void {
    const max = this.options.maxBuffered ?? 10_000;
    if (this.buffered.length >= max) {
      const dropped = this.buffered.shift() as InvalidationJob;
      this.log.error(
        'bullmq:overflow',
        `Cache invalidation buffer is full (${max}); dropped the oldest job (${quote(dropped.event)}, ` +
          `${describeTargets(dropped)}).`,
      );
    }
    this.buffered.push(job);
    this.scheduleRetry();
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closed) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.flush().then(() => {
        if (this.buffered.length > 0) this.scheduleRetry();
      });
    }, RETRY_MS);
    this.retryTimer.unref();
  }

  private async flush(): Promise<void> {
    if (this.buffered.length === 0 || !this.queue) return;
    const jobs = this.buffered;
    this.buffered = [];
    try {
      await this.add(jobs);
      this.log.log(`Re-sent ${jobs.length} buffered cache invalidation job(s) to BullMQ.`);
    } catch {
      this.buffered = [...jobs, ...this.buffered];
    }
  }

  private async runInline(job: InvalidationJob, execute: InvalidationExecutor): Promise<void> {
    try {
      await execute(job);
    } catch (error) {
      this.log.error(
        `bullmq:inline:${job.event}`,
        `Cache invalidation for ${quote(job.event)} failed (${describeTargets(job)}): ${reason(error)}`,
      );
    }
  }
}

function loadBullMq(): BullMq {
  try {
    // Optional peer dependency: loaded on first use only.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return require('bullmq') as BullMq;
  } catch (error) {
    throw new CacheConfigError(
      `BullMqDispatcher needs the optional package "bullmq": npm install bullmq (${reason(error)}).`,
    );
  }
}

/** ioredis options from `{ url, ...options }` (BullMQ takes options, not URLs). */
function toRedisOptions(connection: RedisOptions & { url?: string }): RedisOptions {
  const { url, ...rest } = connection;
  const base: RedisOptions = {
    retryStrategy: (attempt: number) => Math.min(attempt * 500, 5000),
  };
  if (!url) return { ...base, ...rest };
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CacheConfigError(
      `BullMqDispatcher: connection.url ${JSON.stringify(redactUrl(url))} is not a valid URL.`,
    );
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new CacheConfigError(
      `BullMqDispatcher: connection.url must start with redis:// or rediss://, got ${parsed.protocol}//.`,
    );
  }
  const db = parsed.pathname.replace(/^\//, '');
  return {
    ...base,
    host: parsed.hostname || '127.0.0.1',
    port: parsed.port ? Number(parsed.port) : 6379,
    ...(parsed.username ? { username: decodeURIComponent(parsed.username) } : {}),
    ...(parsed.password ? { password: decodeURIComponent(parsed.password) } : {}),
    ...(db ? { db: Number(db) } : {}),
    ...(parsed.protocol === 'rediss:' ? { tls: {} } : {}),
    ...rest,
  };
}

/**
 * Awaits `work` for at most `ms`; then calls `onTimeout` — whose own result is not awaited
 * beyond a second `ms`, so a shutdown never hangs on a dead connection. Timers are unref'ed.
 */
async function within<T>(
  work: Promise<T> | undefined,
  ms: number,
  onTimeout: () => unknown,
): Promise<void> {
  if (!work) return;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
    timer.unref();
  });
  try {
    const outcome = await Promise.race([work.then(() => 'done' as const), timedOut]);
    if (outcome === 'timeout') {
      const forced = Promise.resolve().then(onTimeout);
      forced.catch(() => undefined);
      await Promise.race([forced, sleep(ms)]);
    }
  } finally {
    clearTimeout(timer);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
