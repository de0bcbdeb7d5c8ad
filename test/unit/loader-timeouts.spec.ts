import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  CacheArgumentError,
  CacheConfigError,
  CacheError,
  CacheLoaderTimeoutError,
  CacheModule,
  CacheService,
  Cacheable,
  cacheResult,
  type CacheAdapter,
  type CacheModuleOptions,
} from '../../lib';
import { MemoryCacheAdapter } from '../../lib/adapters/memory.adapter';
import type {
  CacheStack,
  CacheStackOptions,
  WrapOptions,
  WrapResult,
} from '../../lib/core/cache-stack';
import { createCacheStack } from '../../lib/core/create-stack';
import { deferred, track, type Tracked } from '../support/deferred';
import { eventually } from '../support/eventually';
import { FlakyAdapter } from '../support/flaky-adapter';
import { Gate } from '../support/gated-adapter';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

/**
 * `timeouts.hard` (issue 13, item 2): a caller whose loader has not answered within `hard`
 * seconds rejects with CacheLoaderTimeoutError; the loader goes on and its value is stored.
 * First on the stack with fake timers, then with real slow loaders through CacheService,
 * `@Cacheable` and `cacheResult` on memory and Redis.
 */

/** Moves the faked clock, running the Promise callbacks due in between. */
const advance = (ms: number): Promise<void> => jest.advanceTimersByTimeAsync(ms);

const OPTIONS: CacheStackOptions = { enabled: true, ttl: 60, namespace: 'timeouts' };

const tiers: Array<[string, () => CacheAdapter]> = [
  ['the local tier (memory)', () => new MemoryCacheAdapter({ sweepInterval: 0 })],
  ['a remote store', () => new FlakyAdapter()],
];

describe.each(tiers)('timeouts.hard on %s (fake timers)', (_tier, adapterOf) => {
  let stack: CacheStack;

  beforeEach(() => {
    jest.useFakeTimers();
    stack = createCacheStack(adapterOf(), OPTIONS);
  });
  afterEach(() => jest.useRealTimers());

  it('rejects the caller after `hard` seconds, not before; the loader goes on and is stored', async () => {
    const load = deferred<string>();
    const loader = jest.fn(() => load.promise);
    const first = track(stack.wrap('report', loader, { timeouts: { hard: 2 } }));
    await advance(1999);
    expect(first.settled).toBe(false);
    await advance(1);
    expect(first.error).toBeInstanceOf(CacheLoaderTimeoutError);
    expect(first.error).toBeInstanceOf(CacheError);
    const error = first.error as CacheLoaderTimeoutError;
    expect(error.key).toBe('report');
    expect(error.timeout).toBe(2);
    expect(error.message).toBe(
      'The loader of cache key "report" did not answer within 2 s (timeouts.hard); it goes on ' +
        'in the background and its value is stored when it resolves.',
    );
    expect(stack.loadsInFlight).toBe(1); // the flight itself is not rejected

    load.resolve('done');
    await advance(1);
    expect(await stack.get('report')).toBe('done');
    await expect(stack.wrap('report', loader, { timeouts: { hard: 2 } })).resolves.toEqual({
      value: 'done',
      status: 'hit',
    });
    expect(loader).toHaveBeenCalledTimes(1);
  });

  it('bounds a joiner from its own call, and keeps sharing the load after a caller timed out', async () => {
    const load = deferred<string>();
    const loader = jest.fn(() => load.promise);
    const first = track(stack.wrap('k', loader, { timeouts: { hard: 2 } }));
    await advance(1500);
    const joiner = track(stack.wrap('k', loader, { timeouts: { hard: 2 } }));
    await advance(500); // t = 2 s: the first caller's bound
    expect(first.error).toBeInstanceOf(CacheLoaderTimeoutError);
    expect(joiner.settled).toBe(false);
    await advance(1499); // t = 3.499 s
    expect(joiner.settled).toBe(false);
    await advance(1); // t = 3.5 s: the joiner's own bound
    expect(joiner.error).toBeInstanceOf(CacheLoaderTimeoutError);

    const late = track(stack.wrap('k', loader, { timeouts: { hard: 5 } }));
    await advance(1000);
    load.resolve('v');
    await advance(1);
    expect(late.result).toEqual({ value: 'v', status: 'shared' });
    expect(loader).toHaveBeenCalledTimes(1);
  });

  it('leaves no timer behind: a loader that answers first clears it, and a fired one is gone', async () => {
    await expect(
      stack.wrap('fast', () => Promise.resolve('quick'), { timeouts: { hard: 10 } }),
    ).resolves.toEqual({ value: 'quick', status: 'miss' });
    await advance(5); // lets the memory store's 1 ms clock timer run out
    expect(jest.getTimerCount()).toBe(0);

    const load = deferred<string>();
    const slow = track(stack.wrap('slow', () => load.promise, { timeouts: { hard: 1 } }));
    await advance(1);
    expect(jest.getTimerCount()).toBeGreaterThan(0);
    await advance(1000);
    expect(slow.error).toBeInstanceOf(CacheLoaderTimeoutError);
    load.resolve('late');
    await advance(5);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('a loader faster than `hard` is unaffected; one that fails late leaves nothing behind', async () => {
    await expect(stack.wrap('ok', () => 'value', { timeouts: { hard: 0.5 } })).resolves.toEqual({
      value: 'value',
      status: 'miss',
    });
    await expect(
      stack.wrap('fails', () => Promise.reject(new Error('db down')), { timeouts: { hard: 1 } }),
    ).rejects.toThrow('db down');

    const load = deferred<string>();
    const caller = track(stack.wrap('late-failure', () => load.promise, { timeouts: { hard: 1 } }));
    await advance(1000);
    expect(caller.error).toBeInstanceOf(CacheLoaderTimeoutError);
    load.reject(new Error('db down'));
    await advance(1);
    expect(stack.loadsInFlight).toBe(0);
    expect(await stack.get('late-failure')).toBeUndefined();
    const again = jest.fn(() => 'fresh');
    await expect(stack.wrap('late-failure', again)).resolves.toEqual({
      value: 'fresh',
      status: 'miss',
    });
    expect(again).toHaveBeenCalledTimes(1);
  });

  it('a late value is not stored when the key was written meanwhile (superseded, as before)', async () => {
    const load = deferred<string>();
    const caller = track(stack.wrap('k', () => load.promise, { timeouts: { hard: 1 } }));
    await advance(1000);
    expect(caller.error).toBeInstanceOf(CacheLoaderTimeoutError);
    await stack.set('k', 'newer');
    load.resolve('older');
    await advance(1);
    expect(await stack.get('k')).toBe('newer');
  });

  it('bounds a sub-millisecond `hard` too (at least 1 ms, never "no bound")', async () => {
    const caller = track(
      stack.wrap('k', () => new Promise(() => {}), { timeouts: { hard: 0.0001 } }),
    );
    await advance(1);
    expect(caller.error).toBeInstanceOf(CacheLoaderTimeoutError);
  });

  it('refuses an unknown or invalid timeouts field with CacheArgumentError, calling nothing', async () => {
    const loader = jest.fn(() => 1);
    await expect(stack.wrap('k', loader, { timeouts: { sof: 1 } as never })).rejects.toThrow(
      'Unknown option "timeouts.sof". Known: soft, hard.',
    );
    for (const hard of [0, -1, Number.NaN, Infinity, '2', 2_147_484, null]) {
      const refused = stack.wrap('k', loader, { timeouts: { hard: hard as number } });
      await expect(refused).rejects.toThrow(CacheArgumentError);
      await expect(stack.wrap('k', loader, { timeouts: { hard: hard as number } })).rejects.toThrow(
        /^Invalid timeouts\.hard .*: expected a number of seconds above 0 and at most 2147483\.647\.$/,
      );
    }
    await expect(stack.wrap('k', loader, { timeouts: 5 as never })).rejects.toThrow(
      'Invalid timeouts 5: expected an object such as { soft: 1, hard: 5 }.',
    );
    expect(loader).not.toHaveBeenCalled();
  });
});

describe('the module timeouts (fake timers)', () => {
  let stack: CacheStack;

  beforeEach(() => {
    jest.useFakeTimers();
    stack = createCacheStack(new MemoryCacheAdapter({ sweepInterval: 0 }), {
      ...OPTIONS,
      timeouts: { hard: 1 },
    });
  });
  afterEach(() => jest.useRealTimers());

  /** As CacheService, `@Cacheable` and cacheResult call the stack: bounded by the module. */
  const wrapAsService = (
    key: string,
    loader: () => Promise<string>,
    options?: WrapOptions<string>,
  ): Tracked<WrapResult<string>> => track(stack.wrap(key, loader, options, true, true));

  it('bound every load of wrap, @Cacheable and cacheResult, unless the call gives its own', async () => {
    const load = deferred<string>();
    const byModule = wrapAsService('a', () => load.promise);
    const ownBound = wrapAsService('b', () => load.promise, { timeouts: { hard: 5 } });
    const emptyOwn = wrapAsService('c', () => load.promise, { timeouts: {} });
    await advance(1000);
    expect(byModule.error).toBeInstanceOf(CacheLoaderTimeoutError);
    expect((byModule.error as CacheLoaderTimeoutError).timeout).toBe(1);
    expect(emptyOwn.error).toBeInstanceOf(CacheLoaderTimeoutError); // field by field: hard is the module's
    expect(ownBound.settled).toBe(false);
    await advance(4000);
    expect(ownBound.error).toBeInstanceOf(CacheLoaderTimeoutError);
    load.resolve('x');
  });

  it('do not bound CacheInterceptor loads (their load includes sending the response)', async () => {
    const load = deferred<string>();
    const interceptorLike = track(stack.wrap('route', () => load.promise));
    await advance(10_000);
    expect(interceptorLike.settled).toBe(false);
    load.resolve('page');
    await advance(1);
    expect(interceptorLike.result).toEqual({ value: 'page', status: 'miss' });
  });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

@Injectable()
class ReportService {
  loads = 0;
  gate: Gate | undefined;

  @Cacheable('report:{day}', { ttl: 60, timeouts: { hard: 0.1 } })
  async report(day: string): Promise<string> {
    this.loads++;
    await this.gate?.wait;
    return `report ${day}`;
  }

  /** Bounded by the module's `timeouts`. */
  @Cacheable('summary:{day}', { ttl: 60 })
  async summary(day: string): Promise<string> {
    this.loads++;
    await this.gate?.wait;
    return `summary ${day}`;
  }
}

let fnLoads = 0;
const slowLookup = cacheResult(
  async (id: number) => {
    fnLoads++;
    await sleep(300);
    return id * 2;
  },
  { key: (id: number) => `fn:${id}`, ttl: 60, timeouts: { hard: 0.05 } },
);

const backends: Array<[string, () => CacheModuleOptions]> = [
  ['memory', () => ({ namespace: uniqueNamespace('hard') })],
  [
    'redis',
    () => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('hard'),
    }),
  ],
];

describe.each(backends)('timeouts.hard with real slow loaders on %s', (_backend, optionsFor) => {
  let app: INestApplication;
  let cache: CacheService;
  let service: ReportService;

  beforeEach(async () => {
    fnLoads = 0;
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot({ ...optionsFor(), timeouts: { hard: 0.15 } })],
      providers: [ReportService],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    cache = app.get(CacheService);
    service = app.get(ReportService);
  });

  afterEach(async () => {
    service.gate?.open();
    await sleep(350); // lets the slow loaders of the test finish before the app goes
    await cache.clear();
    await app.close();
  });

  it('CacheService.wrap: the caller times out, the loader lands, the next caller hits', async () => {
    let loads = 0;
    const loader = async () => {
      loads++;
      await sleep(300);
      return { id: 1 };
    };
    await expect(cache.wrap('slow', loader, { timeouts: { hard: 0.05 } })).rejects.toThrow(
      CacheLoaderTimeoutError,
    );
    await eventually(async () => (await cache.get('slow')) !== undefined, 5000, 20);
    await expect(cache.wrap('slow', loader, { timeouts: { hard: 0.05 } })).resolves.toEqual({
      id: 1,
    });
    expect(loads).toBe(1);
    // A loader faster than the bound is unaffected.
    await expect(cache.wrap('quick', async () => 'q', { timeouts: { hard: 0.05 } })).resolves.toBe(
      'q',
    );
  });

  it('@Cacheable({ timeouts }): callers time out (a joiner too), the method still lands', async () => {
    service.gate = new Gate();
    const first = service.report('mon');
    await sleep(20);
    const joiner = service.report('mon');
    await expect(first).rejects.toThrow(CacheLoaderTimeoutError);
    await expect(joiner).rejects.toThrow(/"report:mon" did not answer within 0.1 s/);
    expect(service.loads).toBe(1);
    service.gate.open();
    await eventually(async () => (await cache.get('report:mon')) === 'report mon', 5000, 20);
    await expect(service.report('mon')).resolves.toBe('report mon');
    expect(service.loads).toBe(1);
  });

  it('the module timeouts bound a @Cacheable method that gives none', async () => {
    service.gate = new Gate();
    await expect(service.summary('tue')).rejects.toThrow(/within 0.15 s/);
    service.gate.open();
    await eventually(async () => (await cache.get('summary:tue')) === 'summary tue', 5000, 20);
    await expect(service.summary('tue')).resolves.toBe('summary tue');
    expect(service.loads).toBe(1);
  });

  it('cacheResult({ timeouts }): the caller times out, the result lands and then hits', async () => {
    await expect(slowLookup(21)).rejects.toThrow(CacheLoaderTimeoutError);
    await eventually(async () => (await cache.get('fn:21')) === 42, 5000, 20);
    await expect(slowLookup(21)).resolves.toBe(42);
    expect(fnLoads).toBe(1);
  });
});

describe('timeouts validation', () => {
  it('refuses an unknown or invalid timeouts field of a decorator when the class is defined', () => {
    expect(() => Cacheable('k', { timeouts: { sof: 1 } as never })).toThrow(
      '@Cacheable(): unknown option "timeouts.sof". Known: soft, hard.',
    );
    expect(() => Cacheable('k', { timeouts: { hard: 0 } })).toThrow(
      '@Cacheable(): invalid timeouts.hard 0; expected a number of seconds above 0 and at most 2147483.647.',
    );
    expect(() => Cacheable('k', { graze: 5 } as never)).toThrow(
      '@Cacheable(): unknown option "graze".',
    );
    expect(() => Cacheable('k', { timeouts: { soft: 0 } })).toThrow(
      '@Cacheable(): invalid timeouts.soft 0; expected a number of seconds above 0',
    );
    expect(() => Cacheable('k', { grace: 5, timeouts: { soft: 0.1 }, lock: true })).not.toThrow();
    expect(() => Cacheable('k', { timeouts: { hard: 0.5 } })).not.toThrow();
  });

  it('refuses an unknown or invalid timeouts field of cacheResult with CacheConfigError', () => {
    const fn = async () => 1;
    expect(() =>
      cacheResult(fn, { key: () => 'k', name: 'f', timeouts: { sof: 1 } as never }),
    ).toThrow(
      new CacheConfigError('cacheResult(f): unknown option "timeouts.sof". Known: soft, hard.'),
    );
    expect(() => cacheResult(fn, { key: () => 'k', name: 'f', timeouts: { hard: -1 } })).toThrow(
      'cacheResult(f): invalid timeouts.hard -1; expected a number of seconds above 0 and at most 2147483.647.',
    );
  });
});
