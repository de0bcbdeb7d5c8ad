import { Injectable, type INestApplication, type Provider } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  CacheArgumentError,
  CacheConfigError,
  CacheLoaderTimeoutError,
  CacheModule,
  CacheService,
  Cacheable,
  type CacheLoadingOptions,
  type CacheModuleOptions,
} from '../../lib';
import { CacheStack, type WrapOptions, type WrapResult } from '../../lib/core/cache-stack';
import { deferred, track } from '../support/deferred';
import { eventually } from '../support/eventually';
import { Gate } from '../support/gated-adapter';
import { CapturingLogger } from '../support/logs';
import { uniqueNamespace } from '../support/redis';

/**
 * Grace, loader timeouts, refresh-ahead and expire() (issue 13, items 1, 2, 3, 6) on the memory
 * provider, through a real Nest application: CacheService for values, the application's
 * CacheStack (as CacheService, `@Cacheable` and `cacheResult` call it) for how each call was
 * answered. First with fake timers (exact bounds), then with real, short slow loaders.
 */

/** Moves the faked clock, running the Promise callbacks due in between. */
const advance = (ms: number): Promise<void> => jest.advanceTimersByTimeAsync(ms);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const failing = (message = 'db down') =>
  jest.fn((): Promise<string> => Promise.reject(new Error(message)));

@Injectable()
class RatesService {
  calls = 0;
  fail = false;

  @Cacheable('rate:{currency}', { ttl: 1, grace: 60 })
  async rate(currency: string): Promise<{ currency: string; rate: number }> {
    this.calls++;
    if (this.fail) throw new Error(`rates backend down for ${currency}`);
    return { currency, rate: this.calls };
  }

  gate: Gate | undefined;

  @Cacheable('quote:{currency}', { ttl: 10, refreshAhead: 0.5 })
  async quote(currency: string): Promise<string> {
    this.calls++;
    const call = this.calls;
    await this.gate?.wait;
    return `${currency}@${call}`;
  }

  @Cacheable('bare:{currency}', { ttl: 1 })
  async bare(currency: string): Promise<string> {
    this.calls++;
    if (this.fail) throw new Error(`bare backend down for ${currency}`);
    return `${currency}#${this.calls}`;
  }
}

interface Booted {
  app: INestApplication;
  cache: CacheService;
  stack: CacheStack;
  logger: CapturingLogger;
}

async function boot(options: CacheModuleOptions = {}, providers: Provider[] = []): Promise<Booted> {
  const logger = new CapturingLogger();
  const moduleRef = await Test.createTestingModule({
    imports: [CacheModule.forRoot({ namespace: uniqueNamespace('grace'), ...options })],
    providers,
  }).compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  return { app, cache: app.get(CacheService), stack: app.get(CacheStack), logger };
}

describe('grace, timeouts, refresh-ahead and expire on memory (fake timers)', () => {
  let booted: Booted;
  let cache: CacheService;
  let stack: CacheStack;
  let logger: CapturingLogger;

  /** As CacheService, `@Cacheable` and cacheResult call the stack (module timeouts apply). */
  const wrap = <T>(
    key: string,
    loader: () => T | Promise<T>,
    options?: WrapOptions<T>,
  ): Promise<WrapResult<T>> => stack.wrap(key, loader, options, true, true);

  const GRACE: WrapOptions<string> = { ttl: 1, grace: 60, graceBackoff: 5 };

  async function start(options: CacheModuleOptions = {}): Promise<void> {
    booted = await boot({ memory: { sweepInterval: 0 }, ...options }, [RatesService]);
    ({ cache, stack, logger } = booted);
  }

  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(async () => {
    await booted?.app.close();
    jest.useRealTimers();
  });

  describe('grace (item 1)', () => {
    beforeEach(() => start());

    it('serves the stale value when the loader throws: status stale, value through CacheService, error logged', async () => {
      await expect(wrap('rates', () => 'v1', GRACE)).resolves.toEqual({
        value: 'v1',
        status: 'miss',
      });
      await advance(999);
      await expect(cache.get('rates')).resolves.toBe('v1');
      await advance(1); // t = ttl: expired, kept by grace
      await expect(cache.get('rates')).resolves.toBeUndefined();

      const loader = failing('db down');
      await expect(wrap('rates', loader, GRACE)).resolves.toEqual({
        value: 'v1',
        status: 'stale',
      });
      expect(loader).toHaveBeenCalledTimes(1);
      await expect(cache.wrap('rates', failing(), GRACE)).resolves.toBe('v1');

      const warnings = logger.warnings().filter((line) => line.includes('"rates"'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain('Cache loader of "rates" failed; serving its stale value');
      expect(warnings[0]).toContain('db down');
      // A stale value is not a hit for get/has.
      await expect(cache.get('rates')).resolves.toBeUndefined();
      await expect(cache.has('rates')).resolves.toBe(false);
    });

    it('backs off: calls within graceBackoff serve stale without the loader; after it the loader runs again', async () => {
      await wrap('k', () => 'v1', GRACE);
      await advance(1000);
      const loader = jest.fn((): Promise<string> => Promise.reject(new Error('still down')));
      await expect(wrap('k', loader, GRACE)).resolves.toEqual({ value: 'v1', status: 'stale' });
      expect(loader).toHaveBeenCalledTimes(1);

      const many = await Promise.all(Array.from({ length: 25 }, () => wrap('k', loader, GRACE)));
      expect(many.every((r) => r.value === 'v1' && r.status === 'stale')).toBe(true);
      await advance(4999);
      await expect(wrap('k', loader, GRACE)).resolves.toEqual({ value: 'v1', status: 'stale' });
      await expect(cache.wrap('k', loader, GRACE)).resolves.toBe('v1');
      expect(loader).toHaveBeenCalledTimes(1);

      await advance(1); // graceBackoff (5 s) since the failure: the loader is tried again
      await expect(wrap('k', loader, GRACE)).resolves.toEqual({ value: 'v1', status: 'stale' });
      expect(loader).toHaveBeenCalledTimes(2);
      // ...and the back-off starts again from that failure.
      await advance(4000);
      await wrap('k', loader, GRACE);
      expect(loader).toHaveBeenCalledTimes(2);

      await advance(1000);
      const healed = jest.fn(() => 'v2');
      await expect(wrap('k', healed, GRACE)).resolves.toEqual({ value: 'v2', status: 'miss' });
      await expect(wrap('k', loader, GRACE)).resolves.toEqual({ value: 'v2', status: 'hit' });
      await expect(cache.get('k')).resolves.toBe('v2');
      expect(healed).toHaveBeenCalledTimes(1);
      expect(loader).toHaveBeenCalledTimes(2);
    });

    it('the module graceBackoff (default 10 s) applies when the call gives none', async () => {
      await wrap('d', () => 'v1', { ttl: 1, grace: 60 });
      await advance(1000);
      const loader = failing();
      await wrap('d', loader, { ttl: 1, grace: 60 });
      await advance(9999);
      await expect(wrap('d', loader, { ttl: 1, grace: 60 })).resolves.toEqual({
        value: 'v1',
        status: 'stale',
      });
      expect(loader).toHaveBeenCalledTimes(1);
      await advance(1);
      await wrap('d', loader, { ttl: 1, grace: 60 });
      expect(loader).toHaveBeenCalledTimes(2);
    });

    it('without a stale value the loader error reaches the caller, on every call (no back-off)', async () => {
      const loader = failing('cold and down');
      await expect(wrap('cold', loader, GRACE)).rejects.toThrow('cold and down');
      await expect(cache.wrap('cold', loader, GRACE)).rejects.toThrow('cold and down');
      expect(loader).toHaveBeenCalledTimes(2);

      // An entry written without grace is gone once expired: nothing to fall back on.
      await wrap('no-grace', () => 'v1', { ttl: 1 });
      await advance(1001); // a plain entry lives through its last millisecond
      await expect(wrap('no-grace', loader, { ttl: 1 })).rejects.toThrow('cold and down');
      await expect(wrap('no-grace', loader, { ttl: 1, grace: 60 })).rejects.toThrow(
        'cold and down',
      );
      expect(loader).toHaveBeenCalledTimes(4);
      expect(logger.warnings().filter((line) => line.includes('stale'))).toEqual([]);
    });

    it('after ttl + grace the entry is gone and the loader error propagates', async () => {
      await wrap('short', () => 'v1', { ttl: 1, grace: 2, graceBackoff: 60 });
      await advance(2990); // within grace
      const loader = failing('down for good');
      await expect(wrap('short', loader, { ttl: 1, grace: 2, graceBackoff: 60 })).resolves.toEqual({
        value: 'v1',
        status: 'stale',
      });
      await advance(20); // t = 3.01 s > ttl + grace: the entry is gone, back-off or not
      await expect(wrap('short', loader, { ttl: 1, grace: 2, graceBackoff: 60 })).rejects.toThrow(
        'down for good',
      );
      await expect(cache.wrap('short', loader)).rejects.toThrow('down for good');
      expect(loader).toHaveBeenCalledTimes(3);
    });

    it('a concurrent burst on an expired key runs the failing loader once and all get stale', async () => {
      await wrap('burst', () => 'v1', GRACE);
      await advance(1000);
      const load = deferred<string>();
      const loader = jest.fn(() => load.promise);
      const callers = Array.from({ length: 20 }, () => track(wrap('burst', loader, GRACE)));
      await advance(0);
      expect(callers.some((c) => c.settled)).toBe(false);
      load.reject(new Error('boom'));
      await advance(0);
      expect(loader).toHaveBeenCalledTimes(1);
      expect(callers.map((c) => c.result?.value)).toEqual(new Array(20).fill('v1'));
      expect(callers.every((c) => c.result?.status === 'stale')).toBe(true);
    });

    it('set() takes grace too (and the module grace): the set value is served stale', async () => {
      await cache.set('by-set', { n: 1 }, { ttl: 1, grace: 30 });
      await advance(1000);
      await expect(cache.get('by-set')).resolves.toBeUndefined();
      await expect(wrap('by-set', failing())).resolves.toEqual({
        value: { n: 1 },
        status: 'stale',
      });
    });
  });

  describe('module grace', () => {
    beforeEach(() => start({ ttl: 1, grace: 60 }));

    it('applies to set and wrap that give none; a per-call grace of 0 turns it off', async () => {
      await cache.set('s', 's1');
      await wrap('w', () => 'w1');
      await wrap('off', () => 'o1', { grace: 0 });
      await advance(1001); // a plain entry lives through its last millisecond
      await expect(wrap('s', failing())).resolves.toEqual({ value: 's1', status: 'stale' });
      await expect(wrap('w', failing())).resolves.toEqual({ value: 'w1', status: 'stale' });
      await expect(wrap('off', failing('gone'))).rejects.toThrow('gone');
    });
  });

  describe('timeouts (item 2)', () => {
    beforeEach(() => start());

    it('soft, with a stale value: the caller gets it after `soft`; the loader lands and the next call hits it', async () => {
      const options: WrapOptions<string> = { ttl: 1, grace: 60, timeouts: { soft: 0.5 } };
      await wrap('soft', () => 'v1', options);
      await advance(1000);
      const load = deferred<string>();
      const loader = jest.fn(() => load.promise);
      const caller = track(wrap('soft', loader, options));
      await advance(499);
      expect(caller.settled).toBe(false);
      await advance(1);
      expect(caller.result).toEqual({ value: 'v1', status: 'stale' });

      load.resolve('v2');
      await advance(1);
      const later = jest.fn(() => 'never');
      await expect(wrap('soft', later, options)).resolves.toEqual({ value: 'v2', status: 'hit' });
      await expect(cache.get('soft')).resolves.toBe('v2');
      expect(loader).toHaveBeenCalledTimes(1);
      expect(later).not.toHaveBeenCalled();
    });

    it('soft, without a stale value: the caller waits for the loader (soft does not bound it)', async () => {
      const load = deferred<string>();
      const caller = track(wrap('cold-soft', () => load.promise, { timeouts: { soft: 0.1 } }));
      await advance(10_000);
      expect(caller.settled).toBe(false);
      load.resolve('loaded');
      await advance(1);
      expect(caller.result).toEqual({ value: 'loaded', status: 'miss' });
    });

    it('soft: a loader that fails after the stale answer is logged and backs off', async () => {
      const options: WrapOptions<string> = {
        ttl: 1,
        grace: 60,
        graceBackoff: 5,
        timeouts: { soft: 0.2 },
      };
      await wrap('late-fail', () => 'v1', options);
      await advance(1000);
      const load = deferred<string>();
      const loader = jest.fn(() => load.promise);
      const caller = track(wrap('late-fail', loader, options));
      await advance(200);
      expect(caller.result).toEqual({ value: 'v1', status: 'stale' });
      load.reject(new Error('late failure'));
      await advance(1);
      expect(logger.warnings().join('\n')).toContain('late failure');
      await expect(wrap('late-fail', loader, options)).resolves.toEqual({
        value: 'v1',
        status: 'stale',
      });
      expect(loader).toHaveBeenCalledTimes(1);
    });

    it('hard, without a stale value: CacheLoaderTimeoutError; the value still lands', async () => {
      const load = deferred<string>();
      const loader = jest.fn(() => load.promise);
      const caller = track(wrap('hard', loader, { ttl: 60, timeouts: { hard: 1 } }));
      await advance(999);
      expect(caller.settled).toBe(false);
      await advance(1);
      expect(caller.error).toBeInstanceOf(CacheLoaderTimeoutError);
      expect((caller.error as CacheLoaderTimeoutError).key).toBe('hard');
      load.resolve('late');
      await advance(1);
      await expect(cache.get('hard')).resolves.toBe('late');
      await expect(wrap('hard', loader, { ttl: 60, timeouts: { hard: 1 } })).resolves.toEqual({
        value: 'late',
        status: 'hit',
      });
      expect(loader).toHaveBeenCalledTimes(1);
    });

    it('hard, with a stale value: the caller gets the stale value after `hard`; the value lands', async () => {
      const options: WrapOptions<string> = { ttl: 1, grace: 60, timeouts: { hard: 2 } };
      await wrap('hard-stale', () => 'v1', options);
      await advance(1000);
      const load = deferred<string>();
      const caller = track(wrap('hard-stale', () => load.promise, options));
      await advance(1999);
      expect(caller.settled).toBe(false);
      await advance(1);
      expect(caller.result).toEqual({ value: 'v1', status: 'stale' });
      load.resolve('v2');
      await advance(1);
      await expect(cache.get('hard-stale')).resolves.toBe('v2');
    });

    it('hard, with a stale value: the timeout the caller did not see is logged (item 1: "throws or times out ... the error is logged")', async () => {
      const options: WrapOptions<string> = { ttl: 1, grace: 60, timeouts: { hard: 2 } };
      await wrap('hard-logged', () => 'v1', options);
      await advance(1000);
      const load = deferred<string>();
      const caller = track(wrap('hard-logged', () => load.promise, options));
      await advance(2000);
      expect(caller.result).toEqual({ value: 'v1', status: 'stale' });
      const warning = logger.warnings().find((line) => line.includes('"hard-logged"'));
      expect(warning).toBeDefined();
      expect(warning).toMatch(/stale/);
      expect(warning).toMatch(/2 s|timeouts\.hard/);
      load.resolve('v2');
      await advance(1);
    });

    it('soft and hard together with a stale value: the earlier bound answers', async () => {
      const options: WrapOptions<string> = {
        ttl: 1,
        grace: 60,
        timeouts: { soft: 0.3, hard: 5 },
      };
      await wrap('both', () => 'v1', options);
      await advance(1000);
      const load = deferred<string>();
      const caller = track(wrap('both', () => load.promise, options));
      await advance(299);
      expect(caller.settled).toBe(false);
      await advance(1);
      expect(caller.result).toEqual({ value: 'v1', status: 'stale' });
      load.resolve('v2');
      await advance(1);
    });
  });

  describe('module timeouts', () => {
    beforeEach(() => start({ ttl: 1, grace: 60, timeouts: { soft: 0.25 } }));

    it('a module soft timeout bounds CacheService.wrap when a stale value is at hand', async () => {
      await cache.wrap('m', () => 'v1');
      await advance(1000);
      const load = deferred<string>();
      const caller = track(cache.wrap('m', () => load.promise));
      await advance(250);
      expect(caller.result).toBe('v1');
      load.resolve('v2');
      await advance(1);
      await expect(cache.get('m')).resolves.toBe('v2');
    });
  });

  describe('refreshAhead (item 3)', () => {
    beforeEach(() => start());

    const AHEAD: WrapOptions<string> = { ttl: 10, refreshAhead: 0.5 };

    it('a hit before the refresh point does not load', async () => {
      await wrap('early', () => 'v1', AHEAD);
      await advance(4999);
      const loader = jest.fn(() => 'v2');
      await expect(wrap('early', loader, AHEAD)).resolves.toEqual({ value: 'v1', status: 'hit' });
      await advance(10);
      expect(loader).not.toHaveBeenCalled();
    });

    it('many concurrent hits past the refresh point: one loader call, nobody waits, the new value lands', async () => {
      await wrap('ahead', () => 'v1', AHEAD);
      await advance(5000);
      const gate = new Gate();
      const loader = jest.fn(async () => {
        await gate.wait;
        return 'v2';
      });
      const callers = Array.from({ length: 50 }, () => track(wrap('ahead', loader, AHEAD)));
      await advance(0);
      // The loader is blocked on the gate: every caller has its answer anyway.
      expect(callers.filter((c) => !c.settled)).toHaveLength(0);
      expect(callers.map((c) => c.result)).toEqual(
        new Array(50).fill({ value: 'v1', status: 'hit' }),
      );
      expect(loader).toHaveBeenCalledTimes(1);

      // More hits while the refresh runs: still answered at once, still one loader call.
      const more = await Promise.all([
        wrap('ahead', loader, AHEAD),
        cache.wrap('ahead', loader, AHEAD),
        cache.get('ahead'),
      ]);
      expect(more).toEqual([{ value: 'v1', status: 'hit' }, 'v1', 'v1']);
      expect(loader).toHaveBeenCalledTimes(1);

      gate.open();
      await advance(1);
      await expect(cache.get('ahead')).resolves.toBe('v2');
      await expect(wrap('ahead', loader, AHEAD)).resolves.toEqual({ value: 'v2', status: 'hit' });
      expect(loader).toHaveBeenCalledTimes(1);
    });

    it('the refreshed entry gets a new refresh point (and a failed refresh keeps the value)', async () => {
      await wrap('cycle', () => 'v1', AHEAD);
      await advance(5000);
      const loader = jest.fn(() => 'v2');
      await expect(wrap('cycle', loader, AHEAD)).resolves.toEqual({ value: 'v1', status: 'hit' });
      await advance(1);
      expect(loader).toHaveBeenCalledTimes(1);
      await expect(wrap('cycle', loader, AHEAD)).resolves.toEqual({ value: 'v2', status: 'hit' });
      await advance(1);
      expect(loader).toHaveBeenCalledTimes(1); // the new entry's refresh point is 5 s away

      await advance(5000);
      const broken = failing('refresh failed');
      await expect(wrap('cycle', broken, AHEAD)).resolves.toEqual({ value: 'v2', status: 'hit' });
      await advance(1);
      expect(broken).toHaveBeenCalledTimes(1);
      await expect(cache.get('cycle')).resolves.toBe('v2');
      expect(logger.warnings().join('\n')).toContain('refresh failed');
    });
  });

  describe('refreshAhead on @Cacheable (item 3)', () => {
    beforeEach(() => start());

    it('calls past the refresh point answer the cached value while one method call refreshes', async () => {
      const service = booted.app.get(RatesService);
      await expect(service.quote('eur')).resolves.toBe('eur@1');
      await advance(5000);
      service.gate = new Gate();
      const callers = Array.from({ length: 20 }, () => track(service.quote('eur')));
      await advance(0);
      expect(callers.every((c) => c.settled && c.result === 'eur@1')).toBe(true);
      expect(service.calls).toBe(2);
      service.gate.open();
      await advance(1);
      await expect(service.quote('eur')).resolves.toBe('eur@2');
      expect(service.calls).toBe(2);
    });
  });

  describe('expire (item 6)', () => {
    beforeEach(() => start());

    it('marks an entry with grace stale: get/has miss, a failing loader serves the old value', async () => {
      await cache.set('e', 'old', { ttl: 60, grace: 60 });
      await expect(cache.expire('e')).resolves.toBe(true);
      await expect(cache.get('e')).resolves.toBeUndefined();
      await expect(cache.has('e')).resolves.toBe(false);
      await expect(wrap('e', failing())).resolves.toEqual({ value: 'old', status: 'stale' });
      await expect(cache.wrap('e', failing())).resolves.toBe('old');
    });

    it('a succeeding loader reloads an expired entry', async () => {
      await wrap('r', () => 'old', { ttl: 60, grace: 60 });
      await cache.expire('r');
      const loader = jest.fn(() => 'new');
      await expect(wrap('r', loader, { ttl: 60, grace: 60 })).resolves.toEqual({
        value: 'new',
        status: 'miss',
      });
      await expect(cache.get('r')).resolves.toBe('new');
      expect(loader).toHaveBeenCalledTimes(1);
    });

    it('keeps the entry only for the grace it had left', async () => {
      await cache.set('left', 'old', { ttl: 10, grace: 5 });
      await advance(2000);
      await cache.expire('left');
      await advance(12_900); // 14.9 s after the write: within ttl + grace
      await expect(wrap('left', failing(), { graceBackoff: 0.001 })).resolves.toEqual({
        value: 'old',
        status: 'stale',
      });
      await advance(200); // 15.1 s
      await expect(wrap('left', failing('gone'))).rejects.toThrow('gone');
    });

    it('deletes an entry without grace (and answers false for a missing key)', async () => {
      await cache.set('plain', 'old', 60);
      await wrap('loaded', () => 'old', { ttl: 60 });
      await expect(cache.expire('plain')).resolves.toBe(true);
      await expect(cache.expire('loaded')).resolves.toBe(true);
      await expect(cache.get('plain')).resolves.toBeUndefined();
      await expect(wrap('plain', failing('no stale'))).rejects.toThrow('no stale');
      await expect(wrap('loaded', failing('no stale'))).rejects.toThrow('no stale');
      await expect(cache.expire('plain')).resolves.toBe(false);
      await expect(cache.expire('never-set')).resolves.toBe(false);
    });

    it('delete removes an entry with grace: nothing stale is left', async () => {
      await cache.set('d', 'old', { ttl: 60, grace: 60 });
      await expect(cache.delete('d')).resolves.toBe(true);
      await expect(wrap('d', failing('deleted'))).rejects.toThrow('deleted');
    });
  });

  describe('@Cacheable with grace (item 1)', () => {
    beforeEach(() => start());

    it('a method that throws after the TTL answers with the stale value', async () => {
      const service = booted.app.get(RatesService);
      await expect(service.rate('eur')).resolves.toEqual({ currency: 'eur', rate: 1 });
      await expect(service.rate('eur')).resolves.toEqual({ currency: 'eur', rate: 1 });
      expect(service.calls).toBe(1);
      await advance(1000);
      service.fail = true;
      await expect(service.rate('eur')).resolves.toEqual({ currency: 'eur', rate: 1 });
      expect(service.calls).toBe(2);
      expect(logger.warnings().join('\n')).toContain('rates backend down for eur');

      // Without grace, the method's error reaches the caller.
      await expect(service.bare('usd')).rejects.toThrow('bare backend down for usd');
      service.fail = false;
      await expect(service.bare('usd')).resolves.toBe('usd#4');
      await advance(1001);
      service.fail = true;
      await expect(service.bare('usd')).rejects.toThrow('bare backend down for usd');
    });
  });
});

describe('grace and timeouts with real slow loaders (memory)', () => {
  let booted: Booted;
  let cache: CacheService;
  let stack: CacheStack;

  beforeEach(async () => {
    booted = await boot();
    ({ cache, stack } = booted);
  });
  afterEach(async () => {
    await booted.app.close();
  });

  /** Resolves once the entry of `key` has expired (get misses). */
  const expired = (key: string) =>
    eventually(async () => (await cache.get(key)) === undefined, 5000, 10);

  const slow =
    <T>(value: T, ms: number, counter: { n: number }) =>
    async (): Promise<T> => {
      counter.n++;
      await sleep(ms);
      return value;
    };

  it('a loader that throws after the TTL: stale value, then back-off', async () => {
    await cache.wrap('r', () => 'v1', { ttl: 0.1, grace: 60 });
    await expired('r');
    const loads = { n: 0 };
    const loader = async (): Promise<string> => {
      loads.n++;
      await sleep(50);
      throw new Error('slow failure');
    };
    await expect(stack.wrap('r', loader, { ttl: 0.1, grace: 60 }, true, true)).resolves.toEqual({
      value: 'v1',
      status: 'stale',
    });
    await expect(cache.wrap('r', loader, { ttl: 0.1, grace: 60 })).resolves.toBe('v1');
    expect(loads.n).toBe(1);
  });

  it('soft with stale: the caller gets the stale value; the slow loader lands; the next call hits', async () => {
    const options: WrapOptions<string> = { ttl: 0.1, grace: 60, timeouts: { soft: 0.05 } };
    await cache.wrap('s', () => 'v1', options);
    await expired('s');
    const loads = { n: 0 };
    await expect(stack.wrap('s', slow('v2', 300, loads), options, true, true)).resolves.toEqual({
      value: 'v1',
      status: 'stale',
    });
    await eventually(async () => (await cache.get('s')) === 'v2', 5000, 10);
    const later = { n: 0 };
    await expect(cache.wrap('s', slow('v3', 1, later), options)).resolves.toBe('v2');
    expect(loads.n).toBe(1);
    expect(later.n).toBe(0);
  });

  it('hard without stale: CacheLoaderTimeoutError, and the value still lands', async () => {
    const loads = { n: 0 };
    await expect(
      cache.wrap('h', slow('late', 300, loads), { ttl: 60, timeouts: { hard: 0.05 } }),
    ).rejects.toThrow(CacheLoaderTimeoutError);
    await eventually(async () => (await cache.get('h')) === 'late', 5000, 10);
    await expect(cache.wrap('h', slow('other', 1, loads))).resolves.toBe('late');
    expect(loads.n).toBe(1);
  });

  it('hard with stale: the stale value, and the value still lands', async () => {
    const options: WrapOptions<string> = { ttl: 0.1, grace: 60, timeouts: { hard: 0.05 } };
    await cache.wrap('hs', () => 'v1', options);
    await expired('hs');
    const loads = { n: 0 };
    await expect(stack.wrap('hs', slow('v2', 300, loads), options, true, true)).resolves.toEqual({
      value: 'v1',
      status: 'stale',
    });
    await eventually(async () => (await cache.get('hs')) === 'v2', 5000, 10);
    expect(loads.n).toBe(1);
  });

  it('refreshAhead: concurrent hits past the refresh point get the old value while one loader is held', async () => {
    const options: WrapOptions<string> = { ttl: 60, refreshAhead: 0.001 }; // refresh point: 60 ms
    await cache.wrap('ra', () => 'v1', options);
    // peek() leaves an entry due for a refresh to wrap: it answers nothing once the point passed.
    await eventually(async () => stack.peek('ra') === undefined, 5000, 5);
    await expect(cache.get('ra')).resolves.toBe('v1');
    const gate = new Gate();
    let loads = 0;
    const loader = async () => {
      loads++;
      await gate.wait;
      return 'v2';
    };
    const answers = await Promise.all(
      Array.from({ length: 30 }, () => stack.wrap('ra', loader, options, true, true)),
    );
    expect(answers).toEqual(new Array(30).fill({ value: 'v1', status: 'hit' }));
    expect(loads).toBe(1);
    gate.open();
    await eventually(async () => (await cache.get('ra')) === 'v2', 5000, 10);
    expect(loads).toBe(1);
  });
});

describe('loading option validation (grace, refreshAhead, lock, timeouts)', () => {
  const BAD: Array<[string, CacheLoadingOptions, RegExp, RegExp, RegExp]> = [
    [
      'grace -1',
      { grace: -1 },
      /^Invalid CacheModule option "grace": -1 \(expected a number of seconds from 0/,
      /^Invalid grace -1: expected a number of seconds from 0/,
      /^@Cacheable\(\): invalid grace -1; expected a number of seconds from 0/,
    ],
    [
      'refreshAhead 1',
      { refreshAhead: 1 },
      /^Invalid CacheModule option "refreshAhead": 1 \(expected a number above 0 and below 1/,
      /^Invalid refreshAhead 1: expected a number above 0 and below 1/,
      /^@Cacheable\(\): invalid refreshAhead 1; expected a number above 0 and below 1/,
    ],
    [
      'lock { foo: 1 }',
      { lock: { foo: 1 } as never },
      /^Unknown CacheModule option "lock\.foo"\. Known: ttl, wait\.$/,
      /^Unknown option "lock\.foo"\. Known: ttl, wait\.$/,
      /^@Cacheable\(\): unknown option "lock\.foo"\. Known: ttl, wait\.$/,
    ],
    [
      'timeouts.soft 0',
      { timeouts: { soft: 0 } },
      /^Invalid CacheModule option "timeouts\.soft": 0 \(expected a number of seconds above 0/,
      /^Invalid timeouts\.soft 0: expected a number of seconds above 0/,
      /^@Cacheable\(\): invalid timeouts\.soft 0; expected a number of seconds above 0/,
    ],
  ];

  it.each(BAD)(
    '%s: fails module startup with CacheConfigError naming the field',
    async (...args) => {
      const [, options, moduleMessage] = args;
      const compiling = Test.createTestingModule({
        imports: [CacheModule.forRoot({ namespace: uniqueNamespace('bad'), ...options })],
      }).compile();
      await expect(compiling).rejects.toThrow(CacheConfigError);
      await expect(
        Test.createTestingModule({
          imports: [CacheModule.forRoot({ namespace: uniqueNamespace('bad'), ...options })],
        }).compile(),
      ).rejects.toThrow(moduleMessage);
    },
  );

  it.each(BAD)(
    '%s: wrap and set reject with CacheArgumentError naming the field',
    async (...args) => {
      const [, options, , wrapMessage] = args;
      const { app, cache } = await boot();
      try {
        const loader = jest.fn(() => 'never');
        await expect(cache.wrap('k', loader, options as WrapOptions<string>)).rejects.toThrow(
          CacheArgumentError,
        );
        await expect(cache.wrap('k', loader, options as WrapOptions<string>)).rejects.toThrow(
          wrapMessage,
        );
        expect(loader).not.toHaveBeenCalled();
        if ('grace' in options) {
          await expect(cache.set('k', 1, { grace: -1 })).rejects.toThrow(CacheArgumentError);
          await expect(cache.set('k', 1, { grace: -1 })).rejects.toThrow(/grace -1/);
        }
        await expect(cache.get('k')).resolves.toBeUndefined();
      } finally {
        await app.close();
      }
    },
  );

  it.each(BAD)('%s: @Cacheable fails when the class is defined, naming the field', (...args) => {
    const [, options, , , decoratorMessage] = args;
    expect(() => {
      class Decorated {
        @Cacheable('k', options)
        async method(): Promise<number> {
          return 1;
        }
      }
      return Decorated;
    }).toThrow(CacheArgumentError);
    expect(() => Cacheable('k', options)).toThrow(decoratorMessage);
  });

  it('accepts the boundary values', async () => {
    expect(() =>
      Cacheable('k', { grace: 0, refreshAhead: 0.99, lock: { ttl: 1 }, timeouts: { soft: 0.001 } }),
    ).not.toThrow();
    const { app, cache } = await boot({ grace: 0, refreshAhead: 0.5, timeouts: { soft: 1 } });
    await expect(cache.wrap('k', () => 1, { grace: 0, refreshAhead: 0.01 })).resolves.toBe(1);
    await app.close();
  });
});
