import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { randomUUID } from 'node:crypto';
import { Column, DataSource, Entity, PrimaryColumn, type EntitySubscriberInterface } from 'typeorm';
import {
  CacheInvalidator,
  CacheModule,
  CacheService,
  InvalidationRule,
  KeyConstructor,
  TypeOrmInvalidationSubscriber,
  argField,
  attachTypeOrmInvalidation,
  typeOrmInvalidationProvider,
} from '../../lib';
import { registerInvalidation } from '../../lib/invalidation/invalidation.registry';

// A real PostgreSQL (127.0.0.1:5432, trust auth, database `test`); every run uses its own schema
// and drops it afterwards.
const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  username: process.env.PGUSER ?? 'postgres',
  database: process.env.PGDATABASE ?? 'test',
};
const SCHEMA = `cachekit_${randomUUID().slice(0, 8)}`;

@Entity({ name: 'accounts' })
class Account {
  @PrimaryColumn('int')
  id!: number;

  @Column('text')
  name!: string;
}

const AccountKey = KeyConstructor.define({
  namespace: 'accounts',
  fields: [argField('accountId', { partition: true }), argField('view')],
});

@Injectable()
class AccountPayloads {
  get(accountId: number, view: string) {
    return `${accountId}:${view}`;
  }
}
registerInvalidation(AccountPayloads, 'get', AccountKey, [
  InvalidationRule({ event: Account, fieldMapping: { accountId: 'id' } }),
]);

// The real TypeORM interface accepts the subscriber (checked by the compiler).
const _typeCheck = (s: TypeOrmInvalidationSubscriber): EntitySubscriberInterface => s;

describe('TypeORM entity changes (PostgreSQL)', () => {
  let admin: DataSource;
  let dataSource: DataSource;
  let app: INestApplication;
  let cache: CacheService;

  const cached = (accountId: number, view = 'full') =>
    cache.has(AccountKey.render({ accountId, view }));

  beforeAll(async () => {
    admin = new DataSource({ type: 'postgres', ...PG });
    try {
      await admin.initialize();
    } catch (error) {
      throw new Error(
        `These tests need PostgreSQL at ${PG.host}:${PG.port} (database "${PG.database}", user ` +
          `"${PG.username}", trust auth; override with PGHOST/PGPORT/PGUSER/PGDATABASE): ${String(error)}`,
      );
    }
    await admin.query(`CREATE SCHEMA "${SCHEMA}"`);
    dataSource = new DataSource({
      type: 'postgres',
      ...PG,
      schema: SCHEMA,
      entities: [Account],
      synchronize: true,
    });
    await dataSource.initialize();

    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot({ namespace: 'orm' })],
      providers: [
        AccountPayloads,
        { provide: DataSource, useValue: dataSource },
        typeOrmInvalidationProvider(),
      ],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    cache = app.get(CacheService);
  });

  afterAll(async () => {
    await app?.close();
    await dataSource?.destroy();
    if (admin?.isInitialized) {
      await admin.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
      await admin.destroy();
    }
  });

  beforeEach(async () => {
    await dataSource.getRepository(Account).clear();
    await dataSource.getRepository(Account).insert([
      { id: 1, name: 'one' },
      { id: 2, name: 'two' },
    ]);
    await cache.clear();
    for (const accountId of [1, 2]) {
      for (const view of ['full', 'summary']) {
        await cache.set(AccountKey.render({ accountId, view }), 'cached');
      }
    }
  });

  it('the provider attached exactly one subscriber', () => {
    const ours = dataSource.subscribers.filter((s) => s instanceof TypeOrmInvalidationSubscriber);
    expect(ours).toHaveLength(1);
    expect(attachTypeOrmInvalidation(dataSource, app.get(CacheInvalidator))).toBe(ours[0]);
    expect(_typeCheck).toBeDefined();
  });

  it('a committed save invalidates after the commit, not before', async () => {
    let insideTransaction: boolean | undefined;
    await dataSource.transaction(async (manager) => {
      await manager.save(Account, { id: 1, name: 'uno' });
      insideTransaction = await cached(1);
    });
    expect(insideTransaction).toBe(true);
    expect(await cached(1)).toBe(false);
    expect(await cached(1, 'summary')).toBe(false);
    expect(await cached(2)).toBe(true);
  });

  it('a rolled-back transaction invalidates nothing', async () => {
    await expect(
      dataSource.transaction(async (manager) => {
        await manager.save(Account, { id: 1, name: 'uno' });
        await manager.delete(Account, { id: 2 });
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    expect(await cached(1)).toBe(true);
    expect(await cached(2)).toBe(true);
    expect((await dataSource.getRepository(Account).findOneByOrFail({ id: 1 })).name).toBe('one');
  });

  it('a committed remove invalidates (TypeORM clears the id; the subscriber restores it)', async () => {
    const repo = dataSource.getRepository(Account);
    const account = await repo.findOneByOrFail({ id: 2 });
    await repo.remove(account);
    expect(account.id).toBeUndefined();
    expect(await cached(2)).toBe(false);
    expect(await cached(1)).toBe(true);
  });

  it('repository.save (its own implicit transaction) invalidates before it resolves', async () => {
    await dataSource.getRepository(Account).save({ id: 2, name: 'dos' });
    expect(await cached(2)).toBe(false);
    expect(await cached(1)).toBe(true);
  });

  it('outside any transaction, the change is published at once', async () => {
    await dataSource.getRepository(Account).save({ id: 3, name: 'three' }, { transaction: false });
    await cache.set(AccountKey.render({ accountId: 3, view: 'full' }), 'cached');
    await dataSource.getRepository(Account).save({ id: 3, name: 'tres' }, { transaction: false });
    expect(await cached(3)).toBe(false);
    expect(await cached(1)).toBe(true);
  });

  it('a rolled-back savepoint drops only its own changes', async () => {
    const runner = dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.startTransaction();
      await runner.manager.save(Account, { id: 1, name: 'uno' });
      await runner.startTransaction(); // SAVEPOINT
      await runner.manager.save(Account, { id: 2, name: 'dos' });
      await runner.rollbackTransaction(); // ROLLBACK TO SAVEPOINT
      expect(await cached(1)).toBe(true);
      await runner.commitTransaction();
    } finally {
      await runner.release();
    }
    expect(await cached(1)).toBe(false);
    expect(await cached(2)).toBe(true);
    expect((await dataSource.getRepository(Account).findOneByOrFail({ id: 2 })).name).toBe('two');
  });

  it('a released savepoint publishes with the outer commit', async () => {
    const runner = dataSource.createQueryRunner();
    await runner.connect();
    try {
      await runner.startTransaction();
      await runner.startTransaction();
      await runner.manager.save(Account, { id: 2, name: 'dos' });
      await runner.commitTransaction(); // RELEASE SAVEPOINT
      expect(await cached(2)).toBe(true);
      await runner.commitTransaction();
    } finally {
      await runner.release();
    }
    expect(await cached(2)).toBe(false);
  });

  it('a QueryBuilder update (no ids in the event) wipes the whole key namespace', async () => {
    await dataSource
      .createQueryBuilder()
      .update(Account)
      .set({ name: 'renamed' })
      .where('id = :id', { id: 1 })
      .execute();
    expect(await cached(1)).toBe(false);
    expect(await cached(2)).toBe(false);
  });
});
