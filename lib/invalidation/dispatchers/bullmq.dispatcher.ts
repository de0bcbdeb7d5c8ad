import { Redis, type RedisOptions } from 'ioredis';
import type { Job, JobsOptions, Queue, Worker } from 'bullmq';
import { BULLMQ_DISPATCHER_DEFAULTS as DEFAULTS } from '../../config/defaults';
import {
  invalidOption,
  nonNegativeProblem,
  parseRedisUrl,
  positiveIntegerProblem,
} from '../../config/validators';
import { CacheConfigError } from '../../utils/cache.errors';
import { describeError, quote } from '../../utils/describe-value';
import { RateLimitedLogger } from '../../utils/rate-limited-logger';
import { redactUrl, registerRedisSecrets } from '../../utils/redact';
import { TimeoutError, withTimeout } from '../../utils/timeout';
import type {
  InvalidationDispatcher,
  InvalidationDispatcherContext,
  InvalidationExecutor,
  InvalidationJob,
} from '../../interfaces/invalidation-dispatcher.interface';
import { describeTargets } from './job-description';

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
  /**
   * The BullMQ queue. By default each cache namespace has its own,
   * `cachekit-invalidation.<namespace>`, so applications sharing a Redis never take each
   * other's jobs. A name given here is used as is (no `:`); applications that share it hand
   * each other's jobs back instead of applying them (see the README's "Dispatchers").
   * @default 'cachekit-invalidation.<namespace>'
   */
  queueName?: string;
  /**
   * BullMQ's key prefix in Redis (its keys are `<prefix>:<queue>:...`). It must differ from the
   * cache namespace, whose `clear()` would otherwise delete the queue.
   * @default 'bull'
   */
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
   * How long `publish` waits for BullMQ to accept a job before falling back, in ms. By default
   * the cache's own per-call timeout (the Redis client's `commandTimeout`, 1000 ms unless set,
   * or the failover timeout when shorter), so a `publish` waits no longer than a cache call.
   * @default the cache's command timeout (1000)
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
  private readonly log = new RateLimitedLogger();
  /** The application's namespace and per-call timeout, known once it starts the dispatcher. */
  private context: InvalidationDispatcherContext | undefined;
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
      check(name, options[name], positiveIntegerProblem);
    }
    for (const name of ['backoff', 'keepCompleted', 'addTimeout'] as const) {
      check(name, options[name], (value) => nonNegativeProblem(value, 'ms'));
    }
    for (const name of ['queueName', 'prefix'] as const) {
      const value = options[name];
      // BullMQ joins `prefix:queue:` into its keys and refuses a queue name holding ':'.
      if (value !== undefined && (typeof value !== 'string' || value === '')) {
        throw invalidOption(name, value, 'a non-empty string', 'BullMqDispatcher');
      }
    }
    if (options.queueName?.includes(':')) {
      throw invalidOption(
        'queueName',
        options.queueName,
        "a name without ':' (BullMQ joins it into its keys with ':')",
        'BullMqDispatcher',
      );
    }
    this.connection = toRedisOptions(options.connection);
    this.jobOptions = {
      attempts: options.attempts ?? DEFAULTS.attempts,
      backoff: { type: 'exponential', delay: options.backoff ?? DEFAULTS.backoff },
      removeOnComplete: { count: options.keepCompleted ?? DEFAULTS.keepCompleted },
      removeOnFail: false,
    };
  }

  /**
   * Name of the BullMQ queue: the `queueName` option, else `cachekit-invalidation.<namespace>`
   * once an application has started the dispatcher (`cachekit-invalidation` before).
   */
  get queueName(): string {
    if (this.options.queueName !== undefined) return this.options.queueName;
    const namespace = this.context?.namespace;
    // A namespace is letters, digits, '_', '-' and '.': a valid queue name, and the fixed
    // prefix keeps `x` + namespace unambiguous.
    return namespace === undefined ? DEFAULTS.queueName : `${DEFAULTS.queueName}.${namespace}`;
  }

  /**
   * Opens the queue and, unless `worker: false`, starts a worker that runs jobs with `execute`.
   * `context` (passed by `CacheModule`) gives the namespace the queue and its jobs belong to and
   * the default `addTimeout`.
   */
  start(execute: InvalidationExecutor, context?: InvalidationDispatcherContext): void {
    if (this.queue) {
      if (execute !== this.executor) {
        throw new CacheConfigError(
          `This BullMqDispatcher (queue ${quote(this.queueName)}) is already started by another ` +
            `application; create one dispatcher per application.`,
        );
      }
      return;
    }
    const prefix = this.options.prefix ?? DEFAULTS.prefix;
    if (context) assertApart(context.namespace, prefix, this.options.prefix !== undefined);
    this.context = context;
    this.executor = execute;
    const bullmq = loadBullMq();
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
      (job: Job, token?: string) => this.process(bullmq, job, token, execute),
      {
        // BullMQ's blocking connection must retry forever (it is how the worker survives outages).
        connection: this.client({
          maxRetriesPerRequest: null,
          connectionName: this.connection.connectionName ?? 'cachekit-invalidation-worker',
        }),
        prefix,
        concurrency: this.options.concurrency ?? DEFAULTS.concurrency,
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
          `${describeTargets(data)}): ${describeError(error)}`,
      );
    });
  }

  /**
   * Hands `job` to BullMQ. `publish` waits for this at most `addTimeout` in all: when BullMQ
   * does not take the job in time (Redis down or frozen), the job runs inline — awaited only for
   * what is left of that budget, then in the background (failures logged) — and is kept to be
   * re-sent once Redis is back.
   */
  async dispatch(job: InvalidationJob, execute: InvalidationExecutor): Promise<void> {
    if (!this.queue && !this.closed) {
      this.start(execute, job.namespace === undefined ? undefined : this.contextOf(job));
    }
    if (this.closed) {
      await this.runInline(job, execute);
      return;
    }
    const started = Date.now();
    try {
      await this.add([job]);
    } catch (error) {
      // Under a millisecond left counts as none: a timer may fire up to a millisecond before
      // `Date.now()` shows its whole wait.
      const left = this.addTimeout - (Date.now() - started);
      const budget = left > 1;
      this.log.warn(
        'bullmq:add',
        `BullMQ did not take the invalidation job for ${quote(job.event)} (${describeError(error)}); running it ` +
          `inline now${budget ? '' : ' in the background'} and re-sending it when Redis is back.`,
      );
      this.buffer(job);
      // The add already spent the caller's budget when Redis hangs: an inline run against that
      // same Redis must not add a second wait (runInline logs its own failure, never rejects).
      const inline = this.runInline(job, execute);
      if (budget) await withTimeout(inline, left).catch(() => undefined);
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
    await closeWithin(this.worker?.close(), () => this.worker?.close(true));
    await closeWithin(this.queue?.close(), () => this.queue?.disconnect());
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

  /** What the `addTimeout` option, the application's per-call timeout or the default says. */
  private get addTimeout(): number {
    // 0 means "do not wait at all" here (fall back at once), not "no bound".
    return Math.max(1, this.options.addTimeout ?? this.context?.timeout ?? DEFAULTS.addTimeout);
  }

  /** The context of an application known only from its job (started by `dispatch`). */
  private contextOf(job: InvalidationJob): InvalidationDispatcherContext {
    return { namespace: job.namespace as string, timeout: DEFAULTS.addTimeout };
  }

  /**
   * Runs a job of this application's namespace. A job of another namespace reached this worker
   * because applications share the queue (an explicit `queueName`): applied here it would leave
   * that namespace stale and delete this one's entries, so it goes back to the queue, delayed,
   * for a worker of its own namespace — up to `maxHandBacks` times, then to the failed set.
   */
  private async process(
    bullmq: BullMq,
    job: Job,
    token: string | undefined,
    execute: InvalidationExecutor,
  ): Promise<void> {
    const data = job.data as InvalidationJob;
    const own = this.context?.namespace;
    if (data.namespace === undefined || own === undefined || data.namespace === own) {
      return execute(data);
    }
    const where =
      `Cache invalidation job ${job.id ?? '?'} for ${quote(data.event)} belongs to the namespace ` +
      `${quote(data.namespace)} but reached the worker of ${quote(own)} on the shared queue ` +
      `${quote(this.queueName)}`;
    const handBacks = Math.max(1, job.attemptsStarted);
    if (handBacks > DEFAULTS.maxHandBacks) {
      throw new bullmq.UnrecoverableError(
        `${where}; no worker of ${quote(data.namespace)} took it after ${DEFAULTS.maxHandBacks} ` +
          `hand-backs, so it is kept in the failed set, not applied.`,
      );
    }
    this.log.warn(
      `bullmq:foreign:${data.namespace}`,
      `${where}; handed back, not applied. Give each application its own queue (the default ` +
        `queueName is per namespace).`,
    );
    // Growing, so a job no worker of its namespace takes costs less churn as time goes on.
    const wait = Math.min(DEFAULTS.handBackDelay * handBacks, DEFAULTS.handBackMaxDelay);
    await job.moveToDelayed(Date.now() + wait, token);
    throw new bullmq.DelayedError();
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
    // An add that times out may still land later; jobs are idempotent, so a duplicate is harmless.
    const timeout = this.addTimeout;
    await withTimeout(
      adding,
      timeout,
      () => new Error(`no answer from Redis within ${timeout} ms`),
    );
  }

  private buffer(job: InvalidationJob): void {
    const max = this.options.maxBuffered ?? DEFAULTS.maxBuffered;
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
    }, DEFAULTS.retryInterval);
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
        `Cache invalidation for ${quote(job.event)} failed (${describeTargets(job)}): ${describeError(error)}`,
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
      `BullMqDispatcher needs the optional package "bullmq": npm install bullmq (${describeError(error)}).`,
    );
  }
}

/**
 * Throws {@link CacheConfigError} when the cache namespace holds BullMQ's keys: the cache writes
 * `<namespace>:<key>` and BullMQ `<prefix>:<queue>:...`, so with `namespace` equal to `prefix`
 * (or `prefix` starting with `namespace:`) the cache's `clear()` and `deleteByPrefix()` would
 * delete the queue, its jobs and its failed set.
 */
function assertApart(namespace: string, prefix: string, prefixGiven: boolean): void {
  if (prefix !== namespace && !prefix.startsWith(`${namespace}:`)) return;
  throw new CacheConfigError(
    `The CacheModule option "namespace" (${quote(namespace)}) and the BullMqDispatcher option ` +
      `"prefix" (${quote(prefix)}${prefixGiven ? '' : ", BullMQ's default"}) overlap: BullMQ keeps ` +
      `its queue under ${quote(`${prefix}:`)}, inside the cache namespace, so the cache's clear() ` +
      `would delete it. Choose another namespace, or set the dispatcher's prefix.`,
  );
}

/** ioredis options from `{ url, ...options }` (BullMQ takes options, not URLs). */
function toRedisOptions(connection: RedisOptions & { url?: string }): RedisOptions {
  const { url, ...rest } = connection;
  const base: RedisOptions = { retryStrategy: DEFAULTS.retryStrategy };
  if (!url) return { ...base, ...rest };
  const parsed = parseRedisUrl(url);
  if ('problem' in parsed) {
    throw new CacheConfigError(
      `Invalid BullMqDispatcher option "connection.url": ${parsed.problem}`,
    );
  }
  const { tls, host, port, username, password, db } = parsed;
  return {
    ...base,
    host,
    port,
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(db !== undefined ? { db } : {}),
    ...(tls ? { tls: {} } : {}),
    ...rest,
  };
}

/**
 * Awaits `closing` for at most {@link BULLMQ_DISPATCHER_DEFAULTS}.closeTimeout; then calls
 * `force`, whose own result is not awaited beyond a second such wait, so a shutdown never hangs
 * on a dead connection.
 */
async function closeWithin(
  closing: Promise<unknown> | undefined,
  force: () => unknown,
): Promise<void> {
  if (!closing) return;
  try {
    await withTimeout(closing, DEFAULTS.closeTimeout);
  } catch (error) {
    if (!(error instanceof TimeoutError)) throw error;
    await withTimeout(() => Promise.resolve().then(force), DEFAULTS.closeTimeout).catch(
      (forced: unknown) => {
        if (!(forced instanceof TimeoutError)) throw forced;
      },
    );
  }
}

/** Throws {@link CacheConfigError} naming the option when `problem` finds one. */
function check(
  option: string,
  value: number | undefined,
  problem: (value: unknown) => string | undefined,
): void {
  const found = value === undefined ? undefined : problem(value);
  if (found) throw invalidOption(option, value, found, 'BullMqDispatcher');
}
