import { performance } from 'node:perf_hooks';
import { Injectable } from '@nestjs/common';
import { Cacheable, type FailoverCacheAdapter } from '../../lib';
import { boot, waitForState, type BootedApp } from '../support/failover';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/**
 * Sustained concurrent load through the cache while a real redis-server is killed (SIGKILL),
 * restarted (with its append-only file, so pre-outage values come back), frozen (SIGSTOP) and
 * thawed (SIGCONT). Every call must complete without an error and return the value of its own
 * key, never one older than the last update that completed before the call began.
 */

const CALLERS = 200;
const UPDATERS = 4;
const KEYS = 40;
const TTL = 30;
const PHASE_MS = 700;
const RECOVERY_LIMIT_MS = 15_000;

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)];

interface Value {
  key: string;
  version: number;
}

/** The "database" both paths load from: the current version of every cache key. */
const db = { version: new Map<string, number>(), loaderRuns: 0 };

async function loadFromDb(key: string): Promise<Value> {
  db.loaderRuns++;
  const current = db.version.get(key) ?? 0;
  await sleep(Math.random() * 3);
  return { key, version: current };
}

/** The declarative path: a provider method cached with `@Cacheable`. */
@Injectable()
class ProductService {
  @Cacheable('product:{id}', { ttl: TTL })
  async get(id: string): Promise<Value> {
    return loadFromDb(`product:${id}`);
  }
}

describe('fault injection under load (real redis-server)', () => {
  let server: RedisServer;
  let booted: BootedApp | undefined;

  beforeAll(async () => {
    // Persistence on, so a restarted Redis comes back with the values it had: the stale-read
    // hazard is real, not masked by an empty server.
    server = await RedisServer.start({ args: ['--appendonly', 'yes', '--appendfsync', 'always'] });
  });

  afterAll(async () => {
    await booted?.app.close();
    await server.stop();
  });

  it('keeps serving correct values through kill, restart, freeze and thaw', async () => {
    booted = await boot(
      {
        provider: 'redis',
        redis: { url: server.url },
        namespace: uniqueNamespace('faults'),
        failover: { failureThreshold: 5, cooldown: 0.25, timeout: 0.25 },
      },
      undefined,
      [ProductService],
    );
    const { cache, app } = booted;
    const products = app.get(ProductService);
    const adapter = booted.adapter as FailoverCacheAdapter;
    // Half the keys are read through CacheService.wrap, half through the @Cacheable method.
    const ids = Array.from({ length: KEYS / 2 }, (_, i) => String(i));
    const keys = [...ids.map((id) => `item:${id}`), ...ids.map((id) => `product:${id}`)];

    // The newest version whose update (a delete or a set in the cache) has completed, per key:
    // a read that starts after an update completed must not return anything older.
    const version = db.version;
    for (const key of keys) version.set(key, 0);
    const committed = new Map(keys.map((k) => [k, 0]));
    const updating = new Set<string>();

    // The decorator writes where the updaters delete: under the key its template renders.
    await products.get('0');
    expect(await cache.get('product:0')).toEqual({ key: 'product:0', version: 0 });

    let running = true;
    let outage = false;
    let phase = 'healthy';
    const tally = {
      calls: 0,
      decorated: 0,
      started: 0,
      errors: [] as string[],
      wrong: [] as string[],
      updates: 0,
      slowestOutageMs: 0,
      slowestOutageCall: '',
      slowestHealthyMs: 0,
    };

    const check = (key: string, floor: number, value: Value | undefined, how: string) => {
      if (!value || value.key !== key) {
        tally.wrong.push(`${how} ${key} returned ${JSON.stringify(value)}`);
      } else if (value.version < floor) {
        tally.wrong.push(`${how} ${key} returned version ${value.version} < ${floor} (${phase})`);
      }
    };

    const caller = async () => {
      while (running) {
        const key = pick(keys);
        const floor = committed.get(key) ?? 0;
        const inOutage = outage;
        const started = performance.now();
        tally.started++;
        try {
          if (key.startsWith('product:')) {
            tally.decorated++;
            check(key, floor, await products.get(key.slice('product:'.length)), '@Cacheable');
          } else {
            check(key, floor, await cache.wrap<Value>(key, () => loadFromDb(key), TTL), 'wrap');
          }
        } catch (error) {
          tally.errors.push(`${phase}: ${error instanceof Error ? error.message : String(error)}`);
        }
        const elapsed = performance.now() - started;
        tally.calls++;
        if (inOutage || outage) {
          if (elapsed > tally.slowestOutageMs) {
            tally.slowestOutageMs = elapsed;
            tally.slowestOutageCall = `${key} during ${phase}`;
          }
        } else {
          tally.slowestHealthyMs = Math.max(tally.slowestHealthyMs, elapsed);
        }
        // Yield to timers: a fallback hit resolves in microtasks only.
        await sleep(Math.random() * 4);
      }
    };

    const updater = async () => {
      while (running) {
        const key = pick(keys);
        if (!updating.has(key)) {
          // One update per key at a time, so the harness itself never reorders two writes.
          updating.add(key);
          const next = (version.get(key) ?? 0) + 1;
          version.set(key, next);
          try {
            if (Math.random() < 0.5) await cache.delete(key);
            else await cache.set(key, { key, version: next } satisfies Value, TTL);
            committed.set(key, Math.max(committed.get(key) ?? 0, next));
            tally.updates++;
          } catch (error) {
            tally.errors.push(`update: ${error instanceof Error ? error.message : String(error)}`);
          } finally {
            updating.delete(key);
          }
        }
        await sleep(2 + Math.random() * 6);
      }
    };

    const before = adapter.stats;
    const loaderRunsBefore = db.loaderRuns;
    const workers = [
      ...Array.from({ length: CALLERS }, caller),
      ...Array.from({ length: UPDATERS }, updater),
    ];
    const states: string[] = [];
    adapter.onStateChange(({ to }) => states.push(to));

    const tierCounts = () => {
      const s = adapter.stats;
      return {
        primary: s.primaryHits - before.primaryHits,
        fallback: s.fallbackHits - before.fallbackHits,
        miss: s.misses - before.misses,
      };
    };
    const during: Record<string, ReturnType<typeof tierCounts>> = {};
    const runPhase = async (name: string, body: () => Promise<void>) => {
      phase = name;
      const start = tierCounts();
      await body();
      const end = tierCounts();
      during[name] = {
        primary: end.primary - start.primary,
        fallback: end.fallback - start.fallback,
        miss: end.miss - start.miss,
      };
    };

    try {
      await runPhase('healthy', () => sleep(PHASE_MS));
      await runPhase('killed', async () => {
        outage = true;
        await server.kill();
        await sleep(PHASE_MS);
        await server.restart();
        await waitForState(adapter, 'closed', RECOVERY_LIMIT_MS);
        outage = false;
      });
      await runPhase('after restart', () => sleep(PHASE_MS));
      await runPhase('frozen', async () => {
        outage = true;
        server.freeze();
        await sleep(PHASE_MS);
        server.thaw();
        await waitForState(adapter, 'closed', RECOVERY_LIMIT_MS);
        outage = false;
      });
      await runPhase('after thaw', () => sleep(PHASE_MS));
    } finally {
      running = false;
      server.thaw();
      await Promise.all(workers);
    }

    // A last sweep: nothing in either tier is older than the last completed update.
    for (const key of keys) {
      const value = await cache.get<Value>(key);
      if (value !== undefined) check(key, committed.get(key) ?? 0, value, 'final get');
    }

    const tiers = tierCounts();
    console.log(
      [
        `fault injection: ${tally.calls} calls by ${CALLERS} callers (${tally.calls - tally.decorated} ` +
          `CacheService.wrap, ${tally.decorated} @Cacheable), ${tally.updates} updates (set/delete)`,
        `  served by primary (Redis): ${tiers.primary}, by fallback (memory): ${tiers.fallback}, ` +
          `by the loader: ${db.loaderRuns - loaderRunsBefore} loader runs (${tiers.miss} misses in both tiers; the ` +
          `other ${tally.calls - tiers.primary - tiers.fallback - tiers.miss} calls joined an ` +
          `in-flight load)`,
        `  per phase: ${JSON.stringify(during)}`,
        `  circuit: ${states.join(' -> ')}`,
        `  slowest call during an outage: ${tally.slowestOutageMs.toFixed(1)} ms ` +
          `(${tally.slowestOutageCall}); slowest outside: ${tally.slowestHealthyMs.toFixed(1)} ms`,
        `  errors: ${tally.errors.length}, wrong values: ${tally.wrong.length}`,
        `  reconciled keys: ${adapter.stats.reconciled}`,
      ].join('\n'),
    );

    expect(tally.errors.slice(0, 5)).toEqual([]);
    expect(tally.wrong.slice(0, 5)).toEqual([]);
    expect(tally.calls).toBe(tally.started);
    // The load really was sustained and went through every tier.
    expect(tally.calls).toBeGreaterThan(CALLERS * 5);
    expect(tally.decorated).toBeGreaterThan(CALLERS);
    expect(tally.calls - tally.decorated).toBeGreaterThan(CALLERS);
    expect(during['killed'].fallback).toBeGreaterThan(0);
    expect(during['frozen'].fallback).toBeGreaterThan(0);
    expect(during['after restart'].primary).toBeGreaterThan(0);
    expect(during['after thaw'].primary).toBeGreaterThan(0);
    expect(states.filter((s) => s === 'open').length).toBeGreaterThanOrEqual(2);
    // Redis is healthy again: the circuit ends closed. Waited for, not read at once: on a loaded
    // machine 200 callers can still time a few calls out (0.25 s) just after the thaw.
    await waitForState(adapter, 'closed', RECOVERY_LIMIT_MS);
  }, 90_000);
});
