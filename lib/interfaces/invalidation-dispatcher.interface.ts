/**
 * One unit of invalidation work: exact keys, key prefixes and tags to drop. Plain JSON, so a
 * durable dispatcher can store it.
 *
 * @example
 * ```ts
 * const job: InvalidationJob = { event: 'User', keys: [], prefixes: ['users:userId=42:'] };
 * const tagged: InvalidationJob = { event: 'product.updated', keys: [], prefixes: [], tags: ['product:42'] };
 * ```
 */
export interface InvalidationJob {
  /** What fired it, for logs (`'user.updated'`, `'User'`). */
  readonly event: string;
  /** Keys to delete. */
  readonly keys: readonly string[];
  /** Prefixes whose every key is deleted (partitions, namespaces). */
  readonly prefixes: readonly string[];
  /**
   * Tags whose every entry is invalidated (`CacheService.deleteByTag`). Absent from jobs that
   * name none (and from jobs stored by versions without tags).
   */
  readonly tags?: readonly string[];
  /**
   * The cache namespace of the application that produced the job: its keys and prefixes are
   * applied in that namespace only (an executor of another namespace refuses the job). Set on
   * every job `CacheInvalidator` produces; a job without it (stored by an older version) is
   * applied where it runs.
   */
  readonly namespace?: string;
}

/**
 * What a dispatcher learns about the application that starts it.
 *
 * @example
 * ```ts
 * start(execute: InvalidationExecutor, { namespace, timeout }: InvalidationDispatcherContext) {
 *   this.queue = openQueue(`invalidation.${namespace}`, { addTimeout: timeout });
 * }
 * ```
 */
export interface InvalidationDispatcherContext {
  /**
   * The application's cache namespace. Every job it produces carries it, and its executor
   * applies only jobs of this namespace: a dispatcher that shares a queue among applications
   * routes jobs by it.
   */
  readonly namespace: string;
  /**
   * How long, in milliseconds, one cache call of the application may wait for its backend (the
   * Redis client's `commandTimeout`, or the failover timeout when shorter). A dispatcher that
   * hands jobs to a remote queue bounds the hand-over by it, so `publish` costs no more than a
   * cache call.
   */
  readonly timeout: number;
}

/**
 * Performs a job in the application that owns the dispatcher: deletes through `CacheService`
 * (so loads in flight for those keys are not written back) and rejects when the cache backend
 * fails, so a dispatcher that can retry knows to. It also rejects, without deleting anything, a
 * job whose `namespace` is not this application's.
 *
 * @example
 * ```ts
 * async dispatch(job: InvalidationJob, execute: InvalidationExecutor) {
 *   await retry(() => execute(job));
 * }
 * ```
 */
export type InvalidationExecutor = (job: InvalidationJob) => Promise<void>;

/**
 * Decides where and when invalidation work runs. The built-ins are the inline dispatcher
 * (default), {@link DeferredDispatcher} and {@link BullMqDispatcher}; implement this interface
 * to hand jobs to another engine.
 *
 * @example
 * ```ts
 * class LoggingDispatcher implements InvalidationDispatcher {
 *   async dispatch(job: InvalidationJob, execute: InvalidationExecutor) {
 *     console.log('invalidating', job.keys, job.prefixes, job.tags);
 *     await execute(job);
 *   }
 * }
 * CacheModule.forRoot({ invalidation: { dispatchers: { logging: new LoggingDispatcher() } } });
 * ```
 */
export interface InvalidationDispatcher {
  /**
   * Called once when the application starts, with the executor of this application and what
   * the dispatcher needs to know about it (a queue-backed dispatcher starts its worker here).
   */
  start?(
    execute: InvalidationExecutor,
    context: InvalidationDispatcherContext,
  ): Promise<void> | void;
  /**
   * Takes a job. Resolves when the job is done (inline) or safely handed over (queued). Must
   * not reject: a dispatcher logs its own failures.
   */
  dispatch(job: InvalidationJob, execute: InvalidationExecutor): Promise<void>;
  /** Called at shutdown, before the cache backend closes: finish or hand over pending work. */
  close?(): Promise<void> | void;
}
