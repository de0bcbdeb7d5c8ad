import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  BullMqDispatcher,
  CacheInvalidator,
  CacheModule,
  CachePut,
  CacheService,
  Cacheable,
  FailoverCacheAdapter,
  InvalidationRule,
  KeyConstructor,
  MemoryCacheAdapter,
  argField,
  type CacheAdapter,
  type CacheModuleOptions,
} from '../../lib';
import { registerInvalidation } from '../../lib/invalidation/invalidation.registry';
import { quote } from '../../lib/utils/describe-value';
import { FlakyAdapter } from '../support/flaky-adapter';
import { CapturingLogger } from '../support/logs';
import { freePort } from '../support/redis-server';
import { inspector, sharedRedisUrl, uniqueNamespace } from '../support/redis';

/**
 * Issue 10, item 9: a key (or prefix, event name, or message from user code) written into a
 * log line cannot forge another line: every such text is quoted (JSON string syntax), and no
 * line the module writes contains a raw line break or a character a terminal reads as one.
 */

const FORGED = 'WARN [CacheModule] forged';
const HOSTILE = [
  `a\n${FORGED}`,
  `b\r\n${FORGED}`,
  `c\r${FORGED}`,
  `d\u2028${FORGED}`,
  `e\u0085${FORGED}`,
  `f\u001b[2K\u001b[1G${FORGED}`,
  `g\ud800 ${FORGED}`,
  `h\u202e${FORGED}`,
];

/** Characters that end or rewrite a line in a terminal or log viewer. */
const LINE_BREAKING = new RegExp(
  '[\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u202a-\\u202e\\u2066-\\u2069]' +
    '|[\\ud800-\\udbff](?![\\udc00-\\udfff])|(?<![\\ud800-\\udbff])[\\udc00-\\udfff]',
);

function expectSafe(logger: CapturingLogger, hostile: string): void {
  const lines = logger.lines.filter((l) => l.context === 'CacheModule');
  expect(lines.length).toBeGreaterThan(0);
  for (const { message } of lines) {
    expect(message).not.toMatch(LINE_BREAKING);
  }
  // The text is there, escaped the way `quote` writes it (JSON, plus the extra escapes).
  const escaped = quote(hostile).slice(1, -1);
  expect(escaped).not.toBe(hostile);
  if (!lines.some((l) => l.message.includes(escaped))) {
    throw new Error(`no line shows ${escaped}:\n${lines.map((l) => l.message).join('\n')}`);
  }
}

async function boot(
  options: CacheModuleOptions,
  providers: unknown[] = [],
): Promise<{ app: INestApplication; logger: CapturingLogger; cache: CacheService }> {
  const logger = new CapturingLogger();
  const moduleRef = await Test.createTestingModule({
    imports: [CacheModule.forRoot(options)],
    providers: providers as never[],
  }).compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  return { app, logger, cache: app.get(CacheService) };
}

describe('keys and user text in log lines are escaped', () => {
  it.each(HOSTILE.map((key) => [JSON.stringify(key), key]))(
    'backend failures (Redis unreachable) name key %s quoted',
    async (_label, key) => {
      const url = `redis://127.0.0.1:${await freePort()}`;
      const { app, logger, cache } = await boot({ provider: 'redis', redis: { url } });
      await cache.get(key);
      await cache.set(key, 1);
      await cache.deleteByPrefix(key);
      await app.close();
      expectSafe(logger, key);
      expect(logger.text).toContain(`Cache GET ${quote(key)} failed`);
    },
  );

  it.each(HOSTILE.map((key) => [JSON.stringify(key), key]))(
    'failover warnings name key %s quoted',
    async (_label, key) => {
      const primary = new FlakyAdapter();
      const adapter: CacheAdapter = new FailoverCacheAdapter(
        primary,
        new MemoryCacheAdapter({ sweepInterval: 0 }),
        { failureThreshold: 100 },
      );
      const { app, logger, cache } = await boot({ adapter });
      primary.mode = 'down'; // after startup, so each call fails on its own
      await cache.get(key);
      await cache.set(key, 1);
      await cache.deleteByPrefix(key);
      await app.close();
      expectSafe(logger, key);
    },
  );

  it('corrupt entries under a hostile key are reported quoted (real Redis)', async () => {
    const namespace = uniqueNamespace('inject');
    const { app, logger, cache } = await boot({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace,
    });
    const raw = inspector();
    // A lone surrogate has no UTF-8 form: a raw client could not write the key the cache reads.
    const keys = HOSTILE.filter((key) => !key.includes('\ud800'));
    try {
      for (const key of keys) {
        // Written raw, as another application (or a hand) could.
        await raw.set(`${namespace}:${key}`, 'not json {');
        await raw.rpush(`${namespace}:list${key}`, 'x');
        expect(await cache.get(key)).toBeUndefined();
        expect(await cache.get(`list${key}`)).toBeUndefined();
      }
    } finally {
      await raw.quit();
      await app.close();
    }
    for (const key of keys) expectSafe(logger, key);
  });

  describe('decorators', () => {
    @Injectable()
    class Hostile {
      @Cacheable({
        key: (key: string) => key,
        unless: () => {
          throw new Error(`unless failed\n${FORGED}`);
        },
      })
      async unlessThrows(key: string) {
        return key.length;
      }

      @Cacheable({
        key: (key: string) => key,
        condition: () => {
          throw new Error(`condition failed\r\n${FORGED}`);
        },
      })
      async conditionThrows(key: string) {
        return key.length;
      }

      @Cacheable({
        key: () => {
          throw new Error(`key failed\u2028${FORGED}`);
        },
      })
      async keyThrows(key: string) {
        return key.length;
      }

      @CachePut({ key: (key: string) => key })
      async putsUnstorable(key: string) {
        return { big: BigInt(key.length) };
      }
    }

    it('warnings about hostile keys, and errors thrown by user callbacks, are quoted', async () => {
      // The decorators' warnings are rate-limited per method (10 s): move the clock past that
      // between keys, so each key gets its lines.
      const realNow = Date.now.bind(Date);
      let offset = 0;
      const clock = jest.spyOn(Date, 'now').mockImplementation(() => realNow() + offset);
      try {
        for (const key of HOSTILE) {
          offset += 60_000;
          const { app, logger } = await boot({}, [Hostile]);
          const hostile = app.get(Hostile);
          await hostile.unlessThrows(key);
          await hostile.conditionThrows(key);
          await hostile.keyThrows(key);
          await hostile.putsUnstorable(key);
          await app.close();
          expectSafe(logger, key);
          expect(logger.text).toContain('unless failed\\nWARN');
          expect(logger.text).toContain('condition failed\\r\\nWARN');
          expect(logger.text).toContain('key failed\\u2028WARN');
        }
      } finally {
        clock.mockRestore();
      }
    });
  });

  describe('invalidation', () => {
    const FeedKey = KeyConstructor.define({
      namespace: 'feeds',
      fields: [argField('userId', { partition: true }), argField('page')],
    });

    function feedsFor(event: string, dispatcher: string, mapping: Record<string, unknown>) {
      @Injectable()
      class Feeds {
        get(userId: number, page: number) {
          return `${userId}:${page}`;
        }
      }
      registerInvalidation(Feeds, 'get', FeedKey, [
        InvalidationRule({ event, fieldMapping: mapping as never, dispatcher }),
      ]);
      return Feeds;
    }

    it.each(HOSTILE.map((event) => [JSON.stringify(event), event]))(
      'event %s, the keys of a failed job and a throwing fieldMapping are quoted',
      async (_label, event) => {
        const url = `redis://127.0.0.1:${await freePort()}`;
        const throwing = () => {
          throw new Error(`mapping failed\n${FORGED}`);
        };
        for (const dispatcher of ['inline', 'deferred']) {
          const { app, logger } = await boot({ provider: 'redis', redis: { url } }, [
            feedsFor(event, dispatcher, { userId: 'id', page: throwing }),
          ]);
          const invalidator = app.get(CacheInvalidator);
          await invalidator.publish(event, { id: `${event}-user` });
          await app.close(); // drains the deferred queue
          expectSafe(logger, event);
          expect(logger.text).toContain('mapping failed\\nWARN');
        }
      },
    );

    it('a BullMQ dispatcher that cannot reach Redis names the event quoted', async () => {
      const url = `redis://127.0.0.1:${await freePort()}`;
      for (const event of HOSTILE.slice(0, 3)) {
        const dispatcher = new BullMqDispatcher({
          connection: { url },
          worker: false,
          addTimeout: 200,
        });
        const { app, logger } = await boot(
          { invalidation: { dispatchers: { bullmq: dispatcher } } },
          [feedsFor(event, 'bullmq', { userId: 'id' })],
        );
        await app.get(CacheInvalidator).publish(event, { id: 1 });
        await app.close();
        expectSafe(logger, event);
      }
    });

    it('an unknown dispatcher named in a rule fails startup with the names quoted', async () => {
      const hostile = `x\n${FORGED}`;
      const error = await boot({}, [feedsFor(hostile, `nope\r\n${FORGED}`, { userId: 'id' })])
        .then(() => undefined)
        .catch((e: unknown) => e as Error);
      expect(error?.message).toBeDefined();
      expect(error?.message).not.toMatch(/[\n\r]/);
      expect(error?.message).toContain('"x\\nWARN');
    });
  });
});
