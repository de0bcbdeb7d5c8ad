import type { InvalidationDispatcher } from './invalidation-dispatcher.interface';

/**
 * The `invalidation` option of `CacheModule.forRoot`: where invalidation rules run.
 *
 * @example
 * ```ts
 * CacheModule.forRoot({
 *   provider: 'redis',
 *   invalidation: {
 *     dispatchers: { bullmq: new BullMqDispatcher({ connection: { url: 'redis://127.0.0.1:6379' } }) },
 *   },
 * });
 * ```
 */
export interface CacheInvalidationOptions {
  /**
   * Dispatchers by name, for rules' `dispatcher` option. `'inline'` and `'deferred'` are built
   * in (registering `'deferred'` replaces the built-in one, e.g. to tune its concurrency).
   * Every name a rule uses must be registered, or the application fails to start.
   */
  dispatchers?: Readonly<Record<string, InvalidationDispatcher>>;
  /**
   * Also run rules whose event is a name when `@nestjs/event-emitter` emits that name (needs
   * `EventEmitterModule.forRoot()` in the application; ignored without it).
   * @default true
   */
  eventEmitter?: boolean;
}
