import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { randomUUID } from 'node:crypto';
import {
  BullMqDispatcher,
  CacheInvalidator,
  CacheModule,
  CacheService,
  Cacheable,
  DeferredDispatcher,
  InvalidationRule,
  KeyConstructor,
  argField,
  cacheResult,
  type CacheModuleOptions,
  type InvalidationDispatcher,
} from '../../lib';
import { CapturingLogger } from '../support/logs';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

/**
 * Issue 10, item 10: a `fieldMapping` that cannot give a value for a payload — its function
 * throws (or returns a Promise), a path's getter throws, or the value cannot be part of a key
 * — behaves like a value missing from the payload: the rule drops every entry it could hold
 * (the partition when the partition fields are known, else the key's whole namespace), never
 * nothing, and logs why, with the error quoted. With every dispatcher.
 */

const ProfileKey = KeyConstructor.define({
  namespace: 'profiles',
  fields: [argField('userId', { partition: true }), argField('view')],
});

const StatsKey = KeyConstructor.define({
  namespace: 'profile-stats',
  fields: [argField('userId', { partition: true })],
});

const boom = (): never => {
  throw new Error('mapping failed\nWARN [CacheModule] forged');
};

/** Each case: an event, the mapping, what the payload looks like, and what must survive. */
interface Case {
  readonly name: string;
  readonly fieldMapping: Record<string, unknown>;
  readonly payload: unknown;
  /** `true`: only user 1's partition goes; `false`: the whole namespace goes. */
  readonly partitionOnly: boolean;
}

const CASES: Case[] = [
  {
    name: 'function throws',
    fieldMapping: { userId: boom },
    payload: { id: 1 },
    partitionOnly: false,
  },
  {
    name: 'function returns a Promise',
    fieldMapping: { userId: (p: { id: number }) => Promise.resolve(p.id) },
    payload: { id: 1 },
    partitionOnly: false,
  },
  {
    // Its rejection is never awaited: it must still be handled, or it would end the process.
    name: 'async function rejects',
    fieldMapping: {
      userId: async (): Promise<number> => {
        await Promise.resolve();
        throw new Error('no id');
      },
    },
    payload: { id: 1 },
    partitionOnly: false,
  },
  {
    name: 'path getter throws',
    fieldMapping: { userId: 'user.id' },
    payload: {
      get user(): never {
        throw new Error('lazy relation not loaded');
      },
    },
    partitionOnly: false,
  },
  {
    name: 'value cannot be part of a key (a symbol)',
    fieldMapping: { userId: () => Symbol('id') },
    payload: { id: 1 },
    partitionOnly: false,
  },
  {
    name: 'value cannot be part of a key (a function)',
    fieldMapping: { userId: 'id' },
    payload: { id: () => 1 },
    partitionOnly: false,
  },
  {
    name: 'non-partition field throws, partition known',
    fieldMapping: { userId: 'id', view: boom },
    payload: { id: 1 },
    partitionOnly: true,
  },
  {
    name: 'one element of an array payload throws',
    fieldMapping: { userId: 'id', view: (p: { view?: string }) => p.view ?? boom() },
    payload: [{ id: 2, view: 'summary' }, { id: 1 }],
    partitionOnly: true,
  },
];

function rulesFor(dispatcher: string) {
  return CASES.map((c, i) =>
    InvalidationRule({
      event: `case.${i}`,
      fieldMapping: c.fieldMapping as never,
      dispatcher,
    }),
  );
}

function profilesClass(dispatcher: string) {
  @Injectable()
  class Profiles {
    loads = 0;

    @Cacheable({ key: ProfileKey, invalidateOn: rulesFor(dispatcher) })
    async profile(userId: number, view: string) {
      this.loads++;
      return { userId, view, loads: this.loads };
    }
  }
  return Profiles;
}

// A cacheResult function with the same mappings (inline: cached functions are process-wide,
// so their dispatcher must exist in every application of this file).
let statsRuns = 0;
const stats = cacheResult(
  async (userId: number) => {
    statsRuns++;
    return { userId, runs: statsRuns };
  },
  {
    key: StatsKey,
    name: 'stats',
    invalidateOn: rulesFor('inline').map((rule, i) =>
      InvalidationRule({
        event: rule.event,
        // The stats key has only userId: keep the userId half of each case.
        fieldMapping: { userId: CASES[i].fieldMapping.userId } as never,
      }),
    ),
  },
);

type Backend = [string, () => CacheModuleOptions];
const backends: Backend[] = [
  ['memory', () => ({})],
  [
    'redis',
    () => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('map'),
    }),
  ],
];

const dispatchers: Array<[string, () => InvalidationDispatcher | undefined, Backend[]]> = [
  ['inline', () => undefined, backends],
  ['deferred', () => undefined, backends],
  [
    'bullmq',
    () =>
      new BullMqDispatcher({
        connection: { url: sharedRedisUrl() },
        queueName: `mapping-${randomUUID().slice(0, 8)}`,
      }),
    // BullMQ runs jobs in the worker's application: meant for a Redis-backed cache.
    backends.filter(([name]) => name === 'redis'),
  ],
];

const combos = dispatchers.flatMap(([name, make, supported]) =>
  supported.map(([backend, options]) => [name, backend, make, options] as const),
);

async function eventually(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`condition not met within ${ms} ms`);
}

describe.each(combos)(
  'a fieldMapping that cannot map the payload widens the rule (%s dispatcher, %s)',
  (dispatcherName, _backend, makeDispatcher, optionsFor) => {
    let app: INestApplication;
    let cache: CacheService;
    let invalidator: CacheInvalidator;
    let logger: CapturingLogger;
    const Profiles = profilesClass(dispatcherName);

    beforeEach(async () => {
      logger = new CapturingLogger();
      const dispatcher = makeDispatcher();
      const moduleRef = await Test.createTestingModule({
        imports: [
          CacheModule.forRoot({
            ...optionsFor(),
            ...(dispatcher
              ? { invalidation: { dispatchers: { [dispatcherName]: dispatcher } } }
              : {}),
          }),
        ],
        providers: [Profiles],
      }).compile();
      app = moduleRef.createNestApplication({ logger });
      await app.init();
      cache = app.get(CacheService);
      invalidator = app.get(CacheInvalidator);
      stats.attach(invalidator);
    });

    afterEach(async () => {
      await cache.clear();
      await app.close();
    });

    async function seed(): Promise<void> {
      const profiles = app.get(Profiles);
      for (const [userId, view] of [
        [1, 'full'],
        [1, 'summary'],
        [2, 'full'],
      ] as const) {
        await profiles.profile(userId, view);
      }
      await stats(1);
      await stats(2);
      await cache.set('unrelated', 'stays');
    }

    const cached = (userId: number, view: string) => cache.has(ProfileKey.render({ userId, view }));

    /** Waits until the work the dispatcher took is done. */
    async function settled(): Promise<void> {
      if (dispatcherName === 'deferred') {
        await invalidator.dispatcher<DeferredDispatcher>('deferred')!.drain();
      }
      if (dispatcherName === 'bullmq') {
        await eventually(async () => !(await cached(1, 'full')));
        const bull = invalidator.dispatcher<BullMqDispatcher>('bullmq')!;
        await eventually(async () => {
          const counts = await bull.counts();
          return (counts.waiting ?? 0) + (counts.active ?? 0) === 0;
        });
      }
    }

    it.each(CASES.map((c, i) => [c.name, i]))('%s', async (_name, index) => {
      const { payload, partitionOnly } = CASES[index];
      const unhandled: unknown[] = [];
      const onUnhandled = (reason: unknown) => unhandled.push(reason);
      process.on('unhandledRejection', onUnhandled);
      await seed();
      await invalidator.publish(`case.${index}`, payload);
      await settled();
      await new Promise((resolve) => setImmediate(resolve));
      process.off('unhandledRejection', onUnhandled);
      expect(unhandled).toEqual([]);

      // Never "nothing": user 1's entries are gone in every case.
      expect(await cached(1, 'full')).toBe(false);
      expect(await cached(1, 'summary')).toBe(false);
      expect(await cache.has(StatsKey.render({ userId: 1 }))).toBe(false);
      // Narrow when it can be: another user's entry stays if the partition was known.
      expect(await cached(2, 'full')).toBe(partitionOnly);
      expect(await cache.get('unrelated')).toBe('stays');

      const warnings = logger.warnings().join('\n');
      expect(warnings).toMatch(
        /Invalidation rule of .*Profiles\.profile on "case\.\d+": fieldMapping\.(userId|view) failed on the payload/,
      );
      expect(warnings).toContain(
        partitionOnly
          ? 'drops every key under "profiles:userId=1:"'
          : 'drops every key under "profiles:"',
      );
      for (const line of logger.lines) expect(line.message).not.toMatch(/[\n\r]/);
    });
  },
);
