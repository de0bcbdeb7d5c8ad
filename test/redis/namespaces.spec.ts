import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { Redis } from 'ioredis';
import {
  CacheConfigError,
  CacheInvalidator,
  CacheModule,
  CacheService,
  InvalidationRule,
  KeyConstructor,
  argField,
  constField,
} from '../../lib';
import { registerInvalidation } from '../../lib/invalidation/invalidation.registry';
import { inspector, sharedRedisUrl, uniqueNamespace } from '../support/redis';

// Issue 10, item 1: two applications on one Redis never reach each other's keys, whatever
// their namespaces; a namespace that could overlap another is refused at startup.

const PayloadKey = KeyConstructor.define({
  namespace: 'users',
  fields: [argField('userId', { partition: true }), argField('view'), constField('v', 1)],
});

@Injectable()
class PayloadService {
  payload(userId: number, view: string): string {
    return `${userId}/${view}`;
  }
}
registerInvalidation(PayloadService, 'payload', PayloadKey, [
  InvalidationRule({ event: 'user.changed', fieldMapping: { userId: 'id' } }),
  InvalidationRule({ event: 'users.reset' }),
]);

interface App {
  app: INestApplication;
  cache: CacheService;
  invalidator: CacheInvalidator;
  namespace: string;
}

async function boot(namespace: string): Promise<App> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      CacheModule.forRoot({ provider: 'redis', redis: { url: sharedRedisUrl() }, namespace }),
    ],
    providers: [PayloadService],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return { app, cache: app.get(CacheService), invalidator: app.get(CacheInvalidator), namespace };
}

// Keys chosen to reach across under a `ns:` + key encoding with a separator in namespaces:
// app `a` writing `b:k` would be app `a:b` writing `k`.
const PLAIN_KEYS = ['k', 'b', 'b:k', 'b:', ':k', '*', 'users:userId=42:view=x:v=1'];
const PAYLOADS = [42, 7].flatMap((userId) =>
  ['full', 'summary'].map((view) => PayloadKey.render({ userId, view })),
);
const ALL_KEYS = [...PLAIN_KEYS, ...PAYLOADS];

async function seed({ cache, namespace }: App): Promise<void> {
  for (const key of ALL_KEYS) await cache.set(key, `${namespace}|${key}`, 0);
}

async function expectIntact({ cache, namespace }: App): Promise<void> {
  for (const key of ALL_KEYS) {
    expect(await cache.get(key)).toBe(`${namespace}|${key}`);
    expect(await cache.has(key)).toBe(true);
  }
}

/** Every operation of `actor` that deletes, each followed by a check that `bystander` lost nothing. */
async function actAndCheck(actor: App, bystander: App, raw: Redis): Promise<void> {
  const bystanderKeys = async () => (await raw.keys(`${bystander.namespace}:*`)).sort();
  const before = await bystanderKeys();
  expect(before).toHaveLength(ALL_KEYS.length);
  const steps: Array<[string, () => Promise<unknown>]> = [
    ['deleteByPrefix("b")', () => actor.cache.deleteByPrefix('b')],
    ['deleteByPrefix(":")', () => actor.cache.deleteByPrefix(':')],
    ['deleteByPrefix("")', () => actor.cache.deleteByPrefix('')],
    ['delete("b:k")', () => actor.cache.delete('b:k')],
    ['wipePartition', () => actor.invalidator.wipePartition(PayloadKey, { userId: 42 })],
    ['rule: partition', () => actor.invalidator.publish('user.changed', { id: 7 })],
    ['rule: namespace', () => actor.invalidator.publish('users.reset')],
    ['clear()', () => actor.cache.clear()],
  ];
  for (const [, step] of steps) {
    await seed(actor);
    await step();
    expect(await bystanderKeys()).toEqual(before);
    await expectIntact(bystander);
  }
  // And each of those did reach the actor's own keys.
  for (const key of ALL_KEYS) expect(await actor.cache.has(key)).toBe(false);
}

describe('two applications on one Redis', () => {
  let raw: Redis;
  beforeAll(() => {
    raw = inspector();
  });
  afterAll(async () => {
    await raw.quit();
  });

  const base = uniqueNamespace('ns');
  it.each([
    [base, `${base}.b`],
    [base, `${base}-b`],
    [base, `${base}_b`],
    [base, `${base}.`],
    [`${base}.b`, `${base}.b.c`],
  ])('namespaces %p and %p never touch each other', async (first, second) => {
    const a = await boot(first);
    const b = await boot(second);
    try {
      await seed(a);
      await seed(b);
      await expectIntact(a);
      await expectIntact(b);
      await actAndCheck(a, b, raw);
      await seed(a);
      await actAndCheck(b, a, raw);
    } finally {
      await a.cache.clear();
      await b.cache.clear();
      await a.app.close();
      await b.app.close();
    }
  });

  it.each([':b', ':', '*', '?', '[b]', '{b}', ' b'])(
    'refuses the namespace %p appended to another at startup',
    async (suffix) => {
      const other = `${base}${suffix}`;
      await expect(boot(other)).rejects.toThrow(CacheConfigError);
      await expect(boot(other)).rejects.toThrow(/option "namespace"/);
    },
  );
});
