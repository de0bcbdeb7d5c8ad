import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  CacheInvalidator,
  CacheModule,
  CacheService,
  DeferredDispatcher,
  InvalidationRule,
  KeyConstructor,
  argField,
  cacheResult,
  constField,
  type CacheModuleOptions,
} from '../../lib';
import { Gate } from '../support/gated-adapter';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

class User {
  constructor(
    readonly id: number,
    public name: string,
  ) {}
}

const UserPayloadKey = KeyConstructor.define({
  namespace: 'users',
  fields: [argField('userId', { partition: true }), argField('detail'), constField('v', 1)],
});

/** Resolves once the loader has run past `before` calls (a Redis lookup may come first). */
async function loaderStarted(before: number): Promise<void> {
  while (loads === before) await new Promise((r) => setTimeout(r, 2));
}

/** The "database": what the loader reads, with a hook to make a read slow. */
const db = new Map<number, User>();
let loads = 0;
let slowRead: Gate | undefined;

// Declared once at module level, as a user would.
const getUserPayload = cacheResult(
  async (userId: number, detail = 'summary') => {
    loads++;
    const name = db.get(userId)?.name; // read first...
    if (slowRead) await slowRead.wait; // ...then take a long time to build the payload
    return { id: userId, name, detail };
  },
  {
    key: UserPayloadKey,
    ttl: 60,
    invalidateOn: [
      InvalidationRule({ event: User, fieldMapping: { userId: 'id' } }),
      InvalidationRule({
        event: 'user.deferred',
        fieldMapping: { userId: 'id' },
        dispatcher: 'deferred',
      }),
    ],
  },
);

const backends: Array<[string, () => CacheModuleOptions]> = [
  ['memory', () => ({ namespace: uniqueNamespace('fn') })],
  [
    'redis',
    () => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('fn'),
    }),
  ],
];

describe.each(backends)('cacheResult on %s', (_backend, optionsFor) => {
  let app: INestApplication;
  let cache: CacheService;
  let invalidator: CacheInvalidator;

  beforeEach(async () => {
    db.clear();
    db.set(42, new User(42, 'Alice'));
    db.set(7, new User(7, 'Bob'));
    loads = 0;
    slowRead = undefined;
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot(optionsFor())],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    cache = app.get(CacheService);
    invalidator = app.get(CacheInvalidator);
  });

  afterEach(async () => {
    slowRead?.open();
    await cache.clear();
    await app.close();
  });

  it('caches under the KeyConstructor key, with parameter defaults applied', async () => {
    expect(await getUserPayload(42)).toEqual({ id: 42, name: 'Alice', detail: 'summary' });
    expect(await getUserPayload(42, 'summary')).toEqual({
      id: 42,
      name: 'Alice',
      detail: 'summary',
    });
    expect(loads).toBe(1);
    expect(getUserPayload.keyFor(42)).toBe('users:userId=42:detail=summary:v=1');
    expect(await cache.get('users:userId=42:detail=summary:v=1')).toEqual({
      id: 42,
      name: 'Alice',
      detail: 'summary',
    });
  });

  it('invalidate(...args) drops one entry; refresh(...args) recomputes and stores', async () => {
    await getUserPayload(42);
    await getUserPayload(42, 'full');
    db.get(42)!.name = 'Alicia';

    expect(await getUserPayload.invalidate(42)).toBe(true);
    expect(await getUserPayload.invalidate(42)).toBe(false);
    expect((await getUserPayload(42)).name).toBe('Alicia');
    expect((await getUserPayload(42, 'full')).name).toBe('Alice'); // untouched

    expect((await getUserPayload.refresh(42, 'full')).name).toBe('Alicia');
    const before = loads;
    expect((await getUserPayload(42, 'full')).name).toBe('Alicia');
    expect(loads).toBe(before);
  });

  it('invalidatePartition drops every entry of one user, and only that user', async () => {
    await getUserPayload(42);
    await getUserPayload(42, 'full');
    await getUserPayload(7);
    expect(await getUserPayload.invalidatePartition({ userId: 42 })).toBe(2);
    const before = loads;
    await getUserPayload(7);
    expect(loads).toBe(before);
    await getUserPayload(42, 'full');
    expect(loads).toBe(before + 1);
  });

  it('its invalidateOn rules run when the event is published', async () => {
    await getUserPayload(42);
    await getUserPayload(42, 'full');
    await getUserPayload(7);
    db.get(42)!.name = 'Alicia';
    await invalidator.publish(User, db.get(42));
    expect((await getUserPayload(42)).name).toBe('Alicia');
    expect((await getUserPayload(42, 'full')).name).toBe('Alicia');
    expect(loads).toBe(5);
    await getUserPayload(7);
    expect(loads).toBe(5);
  });

  describe('an invalidation that lands while a miss is being loaded', () => {
    it('control: without an invalidation, the slow load is stored', async () => {
      slowRead = new Gate();
      const loadsBefore = loads;
      const pending = getUserPayload(42);
      await loaderStarted(loadsBefore); // the loader has read 'Alice' and is busy
      slowRead.open();
      expect((await pending).name).toBe('Alice');
      slowRead = undefined;
      expect((await getUserPayload(42)).name).toBe('Alice');
      expect(loads).toBe(1);
    });

    it('inline: the old value is returned to its caller but not written back', async () => {
      slowRead = new Gate();
      const loadsBefore = loads;
      const stale = getUserPayload(42);
      await loaderStarted(loadsBefore); // the loader has read 'Alice' and is busy

      db.get(42)!.name = 'Alicia'; // the change commits...
      await invalidator.publish(User, db.get(42)); // ...and invalidates

      slowRead.open();
      expect((await stale).name).toBe('Alice');
      slowRead = undefined;
      expect((await getUserPayload(42)).name).toBe('Alicia');
      expect(loads).toBe(2);
    });

    it('deferred: the same holds when the invalidation runs later, mid-load', async () => {
      slowRead = new Gate();
      const loadsBefore = loads;
      const stale = getUserPayload(42);
      await loaderStarted(loadsBefore); // the loader has read 'Alice' and is busy

      db.get(42)!.name = 'Alicia';
      await invalidator.publish('user.deferred', { id: 42 });
      await invalidator.dispatcher<DeferredDispatcher>('deferred')!.drain();

      slowRead.open();
      expect((await stale).name).toBe('Alice');
      slowRead = undefined;
      expect((await getUserPayload(42)).name).toBe('Alicia');
    });
  });
});

describe('cacheResult binding', () => {
  const key = KeyConstructor.define({ namespace: 'bind', fields: [argField('id')] });
  let calls = 0;
  const fn = cacheResult(
    (id: number) => {
      calls++;
      return id * 2;
    },
    {
      key,
      invalidateOn: [InvalidationRule({ event: 'bind.changed', fieldMapping: { id: 'id' } })],
    },
  );

  async function boot(namespace: string): Promise<INestApplication> {
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot({ namespace })],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    return app;
  }

  beforeEach(() => (calls = 0));

  it('runs uncached while no application is running', async () => {
    expect(await fn(2)).toBe(4);
    expect(await fn(2)).toBe(4);
    expect(calls).toBe(2);
  });

  it('uses the last started application, or the one it is attached to', async () => {
    const a = await boot('bind-a');
    const b = await boot('bind-b');
    try {
      await fn(1);
      expect(await b.get(CacheService).get(fn.keyFor(1))).toBe(2);
      expect(await a.get(CacheService).has(fn.keyFor(1))).toBe(false);

      fn.attach(a.get(CacheInvalidator));
      await fn(1);
      expect(await a.get(CacheService).get(fn.keyFor(1))).toBe(2);

      // Rules follow the binding: only the attached application's publish reaches fn.
      await b.get(CacheInvalidator).publish('bind.changed', { id: 1 });
      expect(await a.get(CacheService).has(fn.keyFor(1))).toBe(true);
      await a.get(CacheInvalidator).publish('bind.changed', { id: 1 });
      expect(await a.get(CacheService).has(fn.keyFor(1))).toBe(false);
    } finally {
      fn.attach(undefined);
      await b.close();
      await a.close();
    }
  });

  it('falls back to the previous application when the last one closes', async () => {
    const a = await boot('bind-c');
    const b = await boot('bind-d');
    await b.close();
    try {
      await fn(3);
      expect(await a.get(CacheService).get(fn.keyFor(3))).toBe(6);
    } finally {
      await a.close();
    }
  });

  it('checks the key against the function when it is wrapped', () => {
    expect(() => cacheResult((userId: number) => userId, { key })).toThrow(
      /field "id" reads parameter "id", but .*\(userId\) has no such parameter/,
    );
    expect(() =>
      cacheResult(({ id }: { id: number }) => id, { key, parameterNames: ['id'] }),
    ).not.toThrow();
  });
});
