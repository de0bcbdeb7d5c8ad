import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { randomUUID } from 'node:crypto';
import { Column, DataSource, Entity, PrimaryColumn } from 'typeorm';
import {
  CacheModule,
  CacheService,
  InvalidationRule,
  KeyConstructor,
  argField,
  typeOrmInvalidationProvider,
} from '../../lib';
import { registerInvalidation } from '../../lib/invalidation/invalidation.registry';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/**
 * Issue 10, item 5, for TypeORM: a transaction that changes N entities publishes their
 * invalidations together after the commit, so a frozen Redis (SIGSTOP) costs the commit one
 * command timeout, not N. Real PostgreSQL, real redis-server.
 */

// Long, so that the database work inside the measured transaction (a few ms, but hundreds on a
// cold, busy machine) stays well inside the margin: one timeout plus that work is under the
// limit, three timeouts one after another are far over it.
const TIMEOUT_MS = 1500;
const LIMIT_MS = 1.8 * TIMEOUT_MS;

const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  username: process.env.PGUSER ?? 'postgres',
  database: process.env.PGDATABASE ?? 'test',
};
const SCHEMA = `cachekit_frozen_${randomUUID().slice(0, 8)}`;

@Entity({ name: 'members' })
class Member {
  @PrimaryColumn('int')
  id!: number;

  @Column('text')
  name!: string;
}

const MemberKey = KeyConstructor.define({
  namespace: 'members',
  fields: [argField('memberId', { partition: true })],
});

@Injectable()
class MemberPayloads {
  get(memberId: number) {
    return `member ${memberId}`;
  }
}
registerInvalidation(MemberPayloads, 'get', MemberKey, [
  InvalidationRule({ event: Member, fieldMapping: { memberId: 'id' } }),
]);

describe('frozen Redis: a TypeORM commit of several changes', () => {
  let redis: RedisServer;
  let admin: DataSource;
  let dataSource: DataSource;
  let app: INestApplication;
  let cache: CacheService;

  beforeAll(async () => {
    redis = await RedisServer.start();
    admin = new DataSource({ type: 'postgres', ...PG });
    await admin.initialize();
    await admin.query(`CREATE SCHEMA "${SCHEMA}"`);
    dataSource = new DataSource({
      type: 'postgres',
      ...PG,
      schema: SCHEMA,
      entities: [Member],
      synchronize: true,
    });
    await dataSource.initialize();
    const moduleRef = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: redis.url, commandTimeout: TIMEOUT_MS },
          namespace: uniqueNamespace('frozen-orm'),
        }),
      ],
      providers: [
        MemberPayloads,
        { provide: DataSource, useValue: dataSource },
        typeOrmInvalidationProvider(),
      ],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    cache = app.get(CacheService);
  });

  afterAll(async () => {
    redis?.thaw();
    await app?.close();
    await dataSource?.destroy();
    if (admin?.isInitialized) {
      await admin.query(`DROP SCHEMA IF EXISTS "${SCHEMA}" CASCADE`);
      await admin.destroy();
    }
    await redis?.stop();
  });

  it('costs the commit one command timeout, not one per change', async () => {
    for (const memberId of [1, 2, 3]) await cache.set(MemberKey.render({ memberId }), 'stale');

    redis.freeze();
    const started = performance.now();
    await dataSource.transaction(async (manager) => {
      await manager.save(Member, { id: 1, name: 'one' });
      await manager.save(Member, { id: 2, name: 'two' });
      await manager.save(Member, { id: 3, name: 'three' });
    });
    const elapsed = performance.now() - started;
    redis.thaw();

    // Three changes published one after another took three timeouts (4.5 s).
    expect(elapsed).toBeGreaterThanOrEqual(TIMEOUT_MS * 0.9);
    expect(elapsed).toBeLessThan(LIMIT_MS);
    // The cache outage did not fail the commit.
    expect(await dataSource.getRepository(Member).count()).toBe(3);
  });
});
