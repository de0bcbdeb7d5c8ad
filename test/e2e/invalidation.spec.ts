import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  CacheConfigError,
  CacheInvalidator,
  CacheModule,
  CacheService,
  DeferredDispatcher,
  InvalidationRule,
  KeyConstructor,
  argField,
  constField,
  type CacheModuleOptions,
  type InvalidationDispatcher,
  type InvalidationDispatcherContext,
  type InvalidationExecutor,
  type InvalidationJob,
} from '../../lib';
import { registerInvalidation } from '../../lib/invalidation/invalidation.registry';
import { CapturingLogger } from '../support/logs';
import { Gate, GatedAdapter } from '../support/gated-adapter';

const PayloadKey = KeyConstructor.define({
  namespace: 'payloads',
  fields: [argField('userId', { partition: true }), argField('view'), constField('v', 1)],
});

class User {
  constructor(
    readonly id: number,
    readonly name: string,
  ) {}
}

/** Stands for a service whose `payload` method is cached with `invalidateOn` rules. */
@Injectable()
class PayloadService {
  payload(userId: number, view: string): string {
    return `${userId}/${view}`;
  }
}
registerInvalidation(PayloadService, 'payload', PayloadKey, [
  InvalidationRule({ event: 'user.viewChanged', fieldMapping: { userId: 'id', view: 'view' } }),
  InvalidationRule({ event: User, fieldMapping: { userId: 'id' } }),
  InvalidationRule({ event: 'users.reset' }),
  InvalidationRule({
    event: 'user.renamed',
    fieldMapping: { userId: (p: { user: { id: number } }) => p.user.id },
    dispatcher: 'deferred',
  }),
]);

/** Rules of a class this application does not provide must not run in it. */
class NotProvided {
  payload(userId: number, view: string): string {
    return `${userId}/${view}`;
  }
}
registerInvalidation(NotProvided, 'payload', PayloadKey, [
  InvalidationRule({ event: 'unrelated.event' }),
]);

async function boot(
  options: CacheModuleOptions = {},
  logger: CapturingLogger | false = false,
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({
    imports: [CacheModule.forRoot({ namespace: 'inv', ...options })],
    providers: [PayloadService],
  }).compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  return app;
}

async function seed(cache: CacheService, userIds: number[], views = ['summary', 'full']) {
  for (const userId of userIds) {
    for (const view of views) await cache.set(PayloadKey.render({ userId, view }), 'cached');
  }
}

const has = (cache: CacheService, userId: number, view: string) =>
  cache.has(PayloadKey.render({ userId, view }));

describe('CacheInvalidator.publish', () => {
  let app: INestApplication;
  let cache: CacheService;
  let invalidator: CacheInvalidator;

  beforeEach(async () => {
    app = await boot();
    cache = app.get(CacheService);
    invalidator = app.get(CacheInvalidator);
    await seed(cache, [42, 7]);
  });

  afterEach(() => app.close());

  it('drops the exact key when every key field is mapped, before publish resolves', async () => {
    await invalidator.publish('user.viewChanged', { id: 42, view: 'full' });
    expect(await has(cache, 42, 'full')).toBe(false);
    expect(await has(cache, 42, 'summary')).toBe(true);
    expect(await has(cache, 7, 'full')).toBe(true);
  });

  it('wipes the partition when the mapping covers only the partition fields', async () => {
    await invalidator.publish(User, new User(42, 'Alice'));
    expect(await has(cache, 42, 'full')).toBe(false);
    expect(await has(cache, 42, 'summary')).toBe(false);
    expect(await has(cache, 7, 'full')).toBe(true);
  });

  it('handles an array payload as several payloads', async () => {
    await seed(cache, [1]);
    await invalidator.publish(User, [new User(42, 'a'), new User(1, 'b')]);
    expect(await has(cache, 42, 'full')).toBe(false);
    expect(await has(cache, 1, 'full')).toBe(false);
    expect(await has(cache, 7, 'full')).toBe(true);
  });

  it('wipes the whole key namespace when nothing is mapped', async () => {
    await cache.set('elsewhere', 1);
    await invalidator.publish('users.reset');
    expect(await has(cache, 42, 'full')).toBe(false);
    expect(await has(cache, 7, 'summary')).toBe(false);
    expect(await cache.get('elsewhere')).toBe(1);
  });

  it('widens to the namespace rather than guessing when a mapped payload field is missing', async () => {
    await invalidator.publish(User, { name: 'no id' });
    expect(await has(cache, 42, 'full')).toBe(false);
    expect(await has(cache, 7, 'full')).toBe(false);
  });

  it('ignores events no rule listens to, and rules of classes the app does not provide', async () => {
    await invalidator.publish('unrelated.event', { id: 42 });
    await invalidator.publish('nobody.listens', { id: 42 });
    expect(await has(cache, 42, 'full')).toBe(true);
    expect(await has(cache, 7, 'full')).toBe(true);
  });

  it('runs a deferred rule after publish has resolved', async () => {
    await invalidator.publish('user.renamed', { user: { id: 42 } });
    // setImmediate has not run yet: the caller was not kept waiting for the work.
    expect(await has(cache, 42, 'full')).toBe(true);
    await invalidator.dispatcher<DeferredDispatcher>('deferred')!.drain();
    expect(await has(cache, 42, 'full')).toBe(false);
    expect(await has(cache, 7, 'full')).toBe(true);
  });
});

describe('dispatchers', () => {
  it('inline: a cache failure is logged, never thrown at the publisher', async () => {
    const adapter = new GatedAdapter();
    const logger = new CapturingLogger();
    const app = await boot({ adapter }, logger);
    try {
      adapter.failDeletes = 1;
      await expect(app.get(CacheInvalidator).publish(User, { id: 42 })).resolves.toBeUndefined();
      expect(logger.text).toMatch(/Cache invalidation for "User" failed .*payloads:userId=42:/);
    } finally {
      await app.close();
    }
  });

  it('deferred: does not block the caller, logs failures, and keeps going', async () => {
    const adapter = new GatedAdapter();
    const logger = new CapturingLogger();
    const app = await boot({ adapter }, logger);
    try {
      const cache = app.get(CacheService);
      const invalidator = app.get(CacheInvalidator);
      await seed(cache, [1, 2]);
      adapter.holdDeletes = new Gate();
      adapter.failDeletes = 1;

      // The deletion is held back, yet both publishes resolve.
      await invalidator.publish('user.renamed', { user: { id: 1 } });
      await invalidator.publish('user.renamed', { user: { id: 2 } });
      expect(await has(cache, 1, 'full')).toBe(true);

      adapter.holdDeletes.open();
      await invalidator.dispatcher<DeferredDispatcher>('deferred')!.drain();
      expect(logger.text).toMatch(/Deferred cache invalidation for "user.renamed" failed/);
      expect(logger.text).toMatch(/injected failure: deleteByPrefix payloads:userId=1:/);
      // The failed job did not stop the queue.
      expect(await has(cache, 2, 'full')).toBe(false);
    } finally {
      await app.close();
    }
  });

  it('deferred: the queue is drained on shutdown, before the backend closes', async () => {
    const adapter = new GatedAdapter();
    const app = await boot({ adapter });
    const gate = new Gate();
    adapter.holdDeletes = gate;
    await app.get(CacheInvalidator).publish('user.renamed', { user: { id: 42 } });

    const closing = app.close().then(() => adapter.events.push('closed'));
    await new Promise((r) => setTimeout(r, 20));
    expect(adapter.events).toEqual(['start deleteByPrefix payloads:userId=42:']);
    gate.open();
    await closing;
    expect(adapter.events).toEqual([
      'start deleteByPrefix payloads:userId=42:',
      'done deleteByPrefix payloads:userId=42:',
      'closed',
    ]);
  });

  it('custom dispatchers are registered by name through the module options', async () => {
    const seen: InvalidationJob[] = [];
    class Recording implements InvalidationDispatcher {
      started = false;
      closed = false;
      context: InvalidationDispatcherContext | undefined;
      start(_execute: InvalidationExecutor, context: InvalidationDispatcherContext) {
        this.started = true;
        this.context = context;
      }
      async dispatch(job: InvalidationJob, execute: InvalidationExecutor) {
        seen.push(job);
        await execute(job);
      }
      close() {
        this.closed = true;
      }
    }
    const recording = new Recording();
    @Injectable()
    class Custom {
      get(userId: number, view: string) {
        return `${userId}${view}`;
      }
    }
    registerInvalidation(Custom, 'get', PayloadKey, [
      InvalidationRule({
        event: 'custom',
        fieldMapping: { userId: 'id' },
        dispatcher: 'recording',
      }),
    ]);
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot({ invalidation: { dispatchers: { recording } } })],
      providers: [Custom],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    expect(recording.started).toBe(true);
    // Memory provider: the module's default per-call budget.
    expect(recording.context).toEqual({ namespace: 'cache', timeout: 1000 });
    await app.get(CacheInvalidator).publish('custom', [{ id: 1 }, { id: 1 }, { id: 2 }]);
    // The module's namespace (the default) travels with the job.
    expect(seen).toEqual([
      {
        event: 'custom',
        keys: [],
        prefixes: ['payloads:userId=1:', 'payloads:userId=2:'],
        namespace: 'cache',
      },
    ]);
    await app.close();
    expect(recording.closed).toBe(true);
  });

  it('an unknown dispatcher name fails at startup, naming the rule', async () => {
    @Injectable()
    class Typo {
      get(userId: number, view: string) {
        return `${userId}${view}`;
      }
    }
    registerInvalidation(Typo, 'get', PayloadKey, [
      InvalidationRule({ event: 'x', dispatcher: 'bulmq' }),
    ]);
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot()],
      providers: [Typo],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await expect(app.init()).rejects.toThrow(
      /Typo.get: the invalidation rule on "x" uses dispatcher "bulmq", which is not registered/,
    );
    await app.close();
  });

  it('rejects invalid invalidation options at startup', async () => {
    const moduleRef = Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          invalidation: { dispatchers: { x: {} as InvalidationDispatcher } },
        }),
      ],
    });
    await expect(moduleRef.compile()).rejects.toThrow(/invalidation.dispatchers.x/);
  });
});

describe('rule declarations', () => {
  it('rejects a field mapping that names a field the key lacks', () => {
    class Bad {
      get(userId: number) {
        return userId;
      }
    }
    expect(() =>
      registerInvalidation(Bad, 'get', PayloadKey, [
        InvalidationRule({ event: User, fieldMapping: { id: 'id' } }),
      ]),
    ).toThrow(/maps "id", which is not a field of key "payloads" \(its fields: userId, view\)/);
  });

  it('needs a KeyConstructor key', () => {
    class Templated {
      get(id: number) {
        return id;
      }
    }
    expect(() =>
      registerInvalidation(Templated, 'get', 'user:{id}', [InvalidationRule({ event: User })]),
    ).toThrow(CacheConfigError);
  });

  it('validates the rule itself', () => {
    expect(() => InvalidationRule({ event: '' })).toThrow(CacheConfigError);
    expect(() =>
      InvalidationRule({ event: 'x', fieldMapping: { userId: 3 as unknown as string } }),
    ).toThrow(/fieldMapping.userId must be a payload path/);
  });
});

describe('applications stay apart', () => {
  it('each application runs the rules of its own providers against its own cache', async () => {
    const a = await boot({ namespace: 'app-a' });
    const b = await boot({ namespace: 'app-b' });
    try {
      const cacheA = a.get(CacheService);
      const cacheB = b.get(CacheService);
      await seed(cacheA, [42]);
      await seed(cacheB, [42]);
      await a.get(CacheInvalidator).publish(User, { id: 42 });
      expect(await has(cacheA, 42, 'full')).toBe(false);
      expect(await has(cacheB, 42, 'full')).toBe(true);
    } finally {
      await a.close();
      await b.close();
    }
  });
});
