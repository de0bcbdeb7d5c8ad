import type { InjectionToken, Provider } from '@nestjs/common';
import { CacheConfigError } from '../utils/cache.errors';
import { describeError } from '../utils/describe-value';
import { CacheLogger } from '../utils/rate-limited-logger';
import { CacheInvalidator } from './cache-invalidator.service';
import type { InvalidationEvent } from '../interfaces/invalidation-rule.interface';

// Structural slices of TypeORM's types, so this file (and the published .d.ts) never needs the
// optional `typeorm` package. The real EntitySubscriberInterface is assignable to these.

/**
 * The part of a TypeORM `QueryRunner` the subscriber reads.
 *
 * @example
 * ```ts
 * const runner: TypeOrmQueryRunnerLike = dataSource.createQueryRunner();
 * ```
 */
export interface TypeOrmQueryRunnerLike {
  readonly isTransactionActive: boolean;
}

/**
 * The part of TypeORM's `EntityMetadata` the subscriber reads.
 *
 * @example
 * ```ts
 * const metadata: TypeOrmEntityMetadataLike = dataSource.getMetadata(User);
 * ```
 */
export interface TypeOrmEntityMetadataLike {
  /** The entity class (or the name of an `EntitySchema`). */
  readonly target: unknown;
  readonly primaryColumns: ReadonlyArray<{ readonly propertyName: string }>;
}

/**
 * The fields of TypeORM's insert / update / remove events the subscriber reads.
 *
 * @example
 * ```ts
 * subscriber.afterInsert(insertEvent); // TypeORM calls this with its InsertEvent
 * ```
 */
export interface TypeOrmEntityEventLike {
  readonly queryRunner: TypeOrmQueryRunnerLike;
  readonly metadata: TypeOrmEntityMetadataLike;
  readonly entity?: unknown;
  readonly databaseEntity?: unknown;
  readonly entityId?: unknown;
}

/**
 * TypeORM's transaction commit / rollback events.
 *
 * @example
 * ```ts
 * subscriber.afterTransactionCommit({ queryRunner }); // TypeORM calls this after COMMIT
 * ```
 */
export interface TypeOrmTransactionEventLike {
  readonly queryRunner: TypeOrmQueryRunnerLike;
}

/**
 * The part of a TypeORM `DataSource` needed to subscribe.
 *
 * @example
 * ```ts
 * attachTypeOrmInvalidation(dataSource as TypeOrmDataSourceLike, invalidator);
 * ```
 */
export interface TypeOrmDataSourceLike {
  readonly subscribers: readonly unknown[];
}

/**
 * A TypeORM entity subscriber that turns committed entity changes into
 * `CacheInvalidator.publish(EntityClass, entity)` — so `InvalidationRule({ event: User, ... })`
 * fires after a user is saved or removed.
 *
 * Changes made inside a transaction are collected per query runner and published only after
 * the transaction commits (`afterTransactionCommit`, so inline invalidation finishes before the
 * commit call resolves); a rolled-back transaction publishes nothing, and a rolled-back savepoint
 * drops only its own changes. Changes made outside a transaction are published at once
 * (`afterInsert` / `afterUpdate` / `afterRemove`). Updates publish both the new and the old
 * state, so a changed mapped field invalidates both keys; removals carry the removed id
 * (TypeORM clears it on the entity). `QueryBuilder` updates and deletes carry no ids, so their
 * rules fall back to wiping the key's partition or namespace.
 *
 * Attach it with {@link attachTypeOrmInvalidation} or {@link typeOrmInvalidationProvider}.
 *
 * @example
 * ```ts
 * attachTypeOrmInvalidation(dataSource, app.get(CacheInvalidator));
 * ```
 */
export class TypeOrmInvalidationSubscriber {
  private readonly log = new CacheLogger();
  // Per query runner, the changes of each open transaction level (index = depth).
  private readonly pending = new WeakMap<TypeOrmQueryRunnerLike, Change[][]>();

  constructor(private readonly invalidator: CacheInvalidator) {}

  afterInsert(event: TypeOrmEntityEventLike): Promise<void> {
    return this.record(event, [event.entity]);
  }

  afterUpdate(event: TypeOrmEntityEventLike): Promise<void> {
    const next = merge(event.databaseEntity, event.entity);
    return this.record(event, event.databaseEntity ? [next, event.databaseEntity] : [next]);
  }

  afterRemove(event: TypeOrmEntityEventLike): Promise<void> {
    return this.record(event, [withId(event)]);
  }

  afterSoftRemove(event: TypeOrmEntityEventLike): Promise<void> {
    return this.record(event, [withId(event)]);
  }

  afterRecover(event: TypeOrmEntityEventLike): Promise<void> {
    return this.record(event, [withId(event)]);
  }

  async afterTransactionCommit(event: TypeOrmTransactionEventLike): Promise<void> {
    const levels = this.pending.get(event.queryRunner);
    if (!levels) return;
    const depth = depthOf(event.queryRunner);
    // TypeORM has already decremented the depth: level depth+1 (and deeper) just committed.
    const committed = levels.splice(depth + 1).flat();
    if (depth > 0 && event.queryRunner.isTransactionActive) {
      // A savepoint was released: its changes now belong to the enclosing transaction.
      (levels[depth] ??= []).push(...committed);
      return;
    }
    this.pending.delete(event.queryRunner);
    await this.publishAll([...levels.flat(), ...committed]);
  }

  afterTransactionRollback(event: TypeOrmTransactionEventLike): void {
    const levels = this.pending.get(event.queryRunner);
    if (!levels) return;
    const depth = depthOf(event.queryRunner);
    levels.splice(depth + 1);
    if (depth === 0 || !event.queryRunner.isTransactionActive)
      this.pending.delete(event.queryRunner);
  }

  private async record(event: TypeOrmEntityEventLike, payloads: unknown[]): Promise<void> {
    const change: Change = { event: event.metadata.target as InvalidationEvent, payloads };
    const runner = event.queryRunner;
    if (!runner?.isTransactionActive) {
      await this.publishAll([change]);
      return;
    }
    const depth = Math.max(1, depthOf(runner));
    let levels = this.pending.get(runner);
    if (!levels) {
      levels = [];
      this.pending.set(runner, levels);
    }
    (levels[depth] ??= []).push(change);
  }

  /**
   * Publishes the changes of one commit together, not one after another: with Redis frozen, a
   * commit of N changes then costs one command timeout, not N (deletions are idempotent, so
   * their order does not matter).
   */
  private async publishAll(changes: readonly Change[]): Promise<void> {
    await Promise.all(
      changes.map((change) =>
        this.invalidator.publish(change.event, change.payloads).catch((error: unknown) => {
          // publish logs its own failures; this only guards the commit against a programming error.
          this.log.error(
            `Cache invalidation after a TypeORM change failed: ${describeError(error)}`,
          );
        }),
      ),
    );
  }
}

interface Change {
  readonly event: InvalidationEvent;
  readonly payloads: unknown[];
}

/**
 * Subscribes `invalidator` to the entity changes of a TypeORM `DataSource` (the NestJS way of
 * registering a subscriber at runtime: pushing it into `dataSource.subscribers`). Idempotent.
 *
 * @example
 * ```ts
 * @Injectable()
 * export class CacheTypeOrmBridge {
 *   constructor(dataSource: DataSource, invalidator: CacheInvalidator) {
 *     attachTypeOrmInvalidation(dataSource, invalidator);
 *   }
 * }
 * ```
 */
export function attachTypeOrmInvalidation(
  dataSource: TypeOrmDataSourceLike,
  invalidator: CacheInvalidator,
): TypeOrmInvalidationSubscriber {
  if (!dataSource || !Array.isArray(dataSource.subscribers)) {
    throw new CacheConfigError(
      'attachTypeOrmInvalidation needs a TypeORM DataSource (an object with a subscribers array).',
    );
  }
  const subscribers = dataSource.subscribers as unknown[];
  const existing = subscribers.find(
    (s): s is TypeOrmInvalidationSubscriber =>
      s instanceof TypeOrmInvalidationSubscriber && s['invalidator'] === invalidator,
  );
  if (existing) return existing;
  const subscriber = new TypeOrmInvalidationSubscriber(invalidator);
  subscribers.push(subscriber);
  return subscriber;
}

/**
 * A provider that attaches the TypeORM subscriber to a DataSource when the application starts.
 * Add it to the module that has the DataSource (with `@nestjs/typeorm`, the default DataSource
 * token is TypeORM's `DataSource` class, used when `dataSourceToken` is left out).
 *
 * @example
 * ```ts
 * @Module({
 *   imports: [TypeOrmModule.forRoot({ ... }), CacheModule.forRoot({ isGlobal: true })],
 *   providers: [typeOrmInvalidationProvider()],
 * })
 * export class AppModule {}
 * ```
 */
export function typeOrmInvalidationProvider(dataSourceToken?: InjectionToken): Provider {
  return {
    provide: TypeOrmInvalidationSubscriber,
    useFactory: (dataSource: TypeOrmDataSourceLike, invalidator: CacheInvalidator) =>
      attachTypeOrmInvalidation(dataSource, invalidator),
    inject: [dataSourceToken ?? loadTypeOrmDataSource(), CacheInvalidator],
  };
}

function loadTypeOrmDataSource(): InjectionToken {
  try {
    // Optional peer dependency: loaded only when this provider is asked for.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require('typeorm') as { DataSource: InjectionToken }).DataSource;
  } catch (error) {
    throw new CacheConfigError(
      `typeOrmInvalidationProvider() needs the optional package "typeorm" (npm install typeorm), ` +
        `or pass the DataSource injection token: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

function depthOf(runner: TypeOrmQueryRunnerLike): number {
  // `transactionDepth` is protected in TypeORM's types but public at runtime (0.3.x).
  const depth = (runner as unknown as { transactionDepth?: unknown }).transactionDepth;
  return typeof depth === 'number' ? depth : runner.isTransactionActive ? 1 : 0;
}

function merge(base: unknown, update: unknown): unknown {
  if (!isObject(base)) return update;
  if (!isObject(update)) return base;
  const merged: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(update)) if (value !== undefined) merged[key] = value;
  return merged;
}

function withId(event: TypeOrmEntityEventLike): unknown {
  const payload = merge(event.databaseEntity, event.entity);
  const id = event.entityId;
  if (id === undefined || id === null) return payload;
  const ids: Record<string, unknown> = isObject(id)
    ? { ...id }
    : { [event.metadata.primaryColumns[0]?.propertyName ?? 'id']: id };
  const record: Record<string, unknown> = isObject(payload) ? { ...payload } : {};
  // TypeORM sets the removed entity's primary columns to undefined; put the ids back.
  for (const [key, value] of Object.entries(ids))
    if (record[key] === undefined) record[key] = value;
  return record;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null;
}
