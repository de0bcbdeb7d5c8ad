import 'reflect-metadata';
import { isDeepStrictEqual } from 'node:util';
import NodeModule from 'node:module';
import type { INestApplicationContext } from '@nestjs/common';
import type { CacheModuleOptions } from '../../lib';
import {
  now,
  type ChurnCounts,
  type ChurnOp,
  type FleetCommands,
  type FleetMessage,
  type FleetOp,
  type FleetRequest,
  type Json,
  type Read,
  type StormResult,
  type StormVariant,
} from './fleet';

/**
 * One member of a {@link Fleet} (`fleet.ts`), run as its own process (compiled to JavaScript by
 * the parent) with an IPC channel: boots a Nest application context with
 * `CacheModule.forRoot(<CACHEKIT_FLEET_OPTIONS>)`, says `ready`, then serves the parent's
 * commands ({@link FleetCommands}) until `close` or until the parent goes away (it never
 * outlives the parent's IPC channel).
 *
 * With `CACHEKIT_FLEET_NEST_DIR` (the parent runs on NestJS 12, `jest.nest12.config.js`), every
 * `@nestjs/*` package is loaded from that folder's `node_modules` instead of the project's, as
 * the Jest resolver of that config does; NestJS 12 is ES modules only, which Node (>= 20.19)
 * loads through `require`. The library and Nest are therefore loaded lazily, after that redirect.
 */

type Resolve = (request: string, parent: unknown, isMain: boolean, options?: object) => string;

/** Resolves every `@nestjs/*` request from `dir` (see the file comment). */
function redirectNest(dir: string): void {
  const loader = NodeModule as unknown as { _resolveFilename: Resolve };
  const resolve = loader._resolveFilename;
  loader._resolveFilename = function (request, parent, isMain, options) {
    if (request.startsWith('@nestjs/')) {
      return resolve.call(this, request, parent, isMain, { ...options, paths: [dir] });
    }
    return resolve.call(this, request, parent, isMain, options);
  };
}

type Handlers = {
  [K in FleetOp]: (
    args: FleetCommands[K]['args'],
  ) => FleetCommands[K]['result'] | Promise<FleetCommands[K]['result']>;
};

interface Deferred<T> {
  promise: Promise<T>;
  resolve: (value: T) => void;
  reject: (error: Error) => void;
}

function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined); // awaited later, or never (a watch nobody asks about)
  return { promise, resolve, reject };
}

/** mulberry32: a small seeded generator, so a churn run can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function send(message: FleetMessage): Promise<void> {
  return new Promise((resolve) => {
    if (!process.connected || !process.send) return resolve();
    process.send(message, undefined, {}, () => resolve());
  });
}

/** The `@Cacheable` variant with these options (field order and absent fields do not matter). */
function variantId(variant: StormVariant): string {
  const { ttl, lock } = variant;
  const timing = typeof lock === 'object' ? [lock.ttl ?? null, lock.wait ?? null] : (lock ?? null);
  return JSON.stringify([ttl ?? null, timing]);
}

function errorText(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

async function main(): Promise<void> {
  const index = Number(process.env.CACHEKIT_FLEET_INDEX ?? 0);
  const options = JSON.parse(process.env.CACHEKIT_FLEET_OPTIONS ?? '{}') as CacheModuleOptions;
  const state: { app?: INestApplicationContext; closed: boolean; closing?: Promise<void> } = {
    closed: false,
  };
  const shutdown = (code: number): void => {
    state.closing ??= (async () => {
      setTimeout(() => process.exit(code), 3000).unref();
      if (!state.closed) await state.app?.close().catch(() => undefined);
      process.exit(code);
    })();
  };
  // The parent going away (test finished, crashed, killed) ends this process, whatever it does.
  process.on('disconnect', () => shutdown(0));

  if (process.env.CACHEKIT_FLEET_NEST_DIR) redirectNest(process.env.CACHEKIT_FLEET_NEST_DIR);
  /* eslint-disable @typescript-eslint/no-require-imports -- loaded after the redirect above */
  const { Injectable, Module } = require('@nestjs/common') as typeof import('@nestjs/common');
  const { NestFactory } = require('@nestjs/core') as typeof import('@nestjs/core');
  const { Cacheable, CacheModule, CacheService } =
    require('../../lib') as typeof import('../../lib');
  const { CacheStack } =
    require('../../lib/core/cache-stack') as typeof import('../../lib/core/cache-stack');
  const { withCacheStatus } =
    require('../../lib/runtime/cache-status') as typeof import('../../lib/runtime/cache-status');
  const { Redis } = require('ioredis') as typeof import('ioredis');
  /* eslint-enable @typescript-eslint/no-require-imports */

  // `storm` via `@Cacheable`: one decorated method per variant the parent asked for, on a provider
  // the application's explorer binds like any other. The method runs the loader of the storm
  // named by its second argument; the key is its first.
  const variants = JSON.parse(process.env.CACHEKIT_FLEET_CACHEABLE ?? '[]') as StormVariant[];
  const stormLoaders = new Map<number, () => Promise<Json>>();
  class FleetCacheables {}
  const methods = new Map<string, string>();
  variants.forEach((variant, i) => {
    const name = `variant${i}`;
    const descriptor: PropertyDescriptor = {
      value: function (this: unknown, _key: string, storm: number): Promise<Json> {
        const loader = stormLoaders.get(storm);
        if (!loader) return Promise.reject(new Error(`no storm ${storm}`));
        return loader();
      },
      writable: true,
      configurable: true,
      enumerable: false,
    };
    Cacheable({ key: (key: unknown) => String(key), ...variant })(
      FleetCacheables.prototype,
      name,
      descriptor,
    );
    Object.defineProperty(FleetCacheables.prototype, name, descriptor);
    methods.set(variantId(variant), name);
  });
  Injectable()(FleetCacheables);

  class FleetAppModule {}
  Module({
    imports: [CacheModule.forRoot({ ...options, isGlobal: true })],
    providers: [FleetCacheables],
  })(FleetAppModule);

  const app = await NestFactory.createApplicationContext(FleetAppModule, {
    logger: ['error', 'warn'],
  });
  state.app = app;
  await app.init();
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const nestVersion = (require('@nestjs/core/package.json') as { version: string }).version;
  const cache = app.get(CacheService);
  const stack = app.get(CacheStack);
  let loaderCalls = 0;
  const gates = new Map<string, { started: Deferred<null>; opened: Deferred<Json | undefined> }>();
  const gate = (name: string) => {
    let entry = gates.get(name);
    if (!entry) gates.set(name, (entry = { started: deferred(), opened: deferred() }));
    return entry;
  };
  const watches = new Map<number, Promise<{ seenAt: number; reads: number }>>();
  let nextWatch = 1;
  const cacheables = app.get<
    typeof FleetCacheables,
    Record<string, (key: string, storm: number) => Promise<Json>>
  >(FleetCacheables);
  let nextStorm = 1;
  const counters = new Map<string, InstanceType<typeof Redis>>();
  const counterClient = (url: string) => {
    let client = counters.get(url);
    if (!client) {
      // Never retried: a counter that went away must not hold the loader (the count is lost).
      client = new Redis(url, { maxRetriesPerRequest: 0, enableOfflineQueue: true });
      client.on('error', () => undefined);
      counters.set(url, client);
    }
    return client;
  };

  const read = async (key: string): Promise<Read> => {
    const value = await cache.get<Json>(key);
    return value === undefined ? { hit: false } : { hit: true, value };
  };
  const holds = (r: Read, value: Json) => r.hit && isDeepStrictEqual(r.value, value);

  const handlers: Handlers = {
    get: ({ key }) => read(key),
    read: ({ keys }) => Promise.all(keys.map(read)),
    set: async ({ key, value, ttl }) => {
      const calledAt = now();
      await cache.set(key, value, ttl);
      return { calledAt, doneAt: now() };
    },
    delete: async ({ key }) => ({ deleted: await cache.delete(key), doneAt: now() }),
    deleteByPrefix: async ({ prefix }) => ({
      deleted: await cache.deleteByPrefix(prefix),
      doneAt: now(),
    }),
    clear: async () => {
      await cache.clear();
      return { doneAt: now() };
    },
    wrap: async ({ key, value, gate: name, ttl }) => {
      const result = await cache.wrap<Json>(
        key,
        async () => {
          loaderCalls++;
          if (name === undefined) return value;
          const entry = gate(name);
          entry.started.resolve(null);
          const given = await entry.opened.promise;
          gates.delete(name);
          return given === undefined ? value : given;
        },
        ttl,
      );
      return { value: result, loaderCalls };
    },
    gate: ({ gate: name }) => gate(name).started.promise,
    release: ({ gate: name, value }) => {
      gate(name).opened.resolve(value);
      return null;
    },
    watch: async ({ key, value, timeoutMs, intervalMs }) => {
      const first = await read(key);
      const armedAt = now();
      const watchId = nextWatch++;
      const outcome = deferred<{ seenAt: number; reads: number }>();
      watches.set(watchId, outcome.promise);
      if (holds(first, value)) {
        outcome.resolve({ seenAt: armedAt, reads: 1 });
      } else {
        const deadline = armedAt + timeoutMs;
        const again = intervalMs ? () => setTimeout(poll, intervalMs) : () => setImmediate(poll);
        let reads = 1;
        const poll = () => {
          read(key).then((r) => {
            reads++;
            const at = now();
            if (holds(r, value)) outcome.resolve({ seenAt: at, reads });
            else if (at > deadline) {
              outcome.reject(
                new Error(
                  `${key} still read ${JSON.stringify(r)} after ${timeoutMs} ms and ${reads} ` +
                    `reads, waiting for ${JSON.stringify(value)}`,
                ),
              );
            } else again();
          }, outcome.reject);
        };
        again();
      }
      return { watchId, first, armedAt };
    },
    watched: async ({ watchId }) => {
      const outcome = watches.get(watchId);
      if (!outcome) throw new Error(`no watch ${watchId}`);
      try {
        return await outcome;
      } finally {
        watches.delete(watchId);
      }
    },
    churn: async ({ keys, prefixes, durationMs, workers, seed, mix }) => {
      const counts: ChurnCounts = {
        get: 0,
        set: 0,
        delete: 0,
        deleteByPrefix: 0,
        wrap: 0,
        loaderCalls: 0,
        errors: 0,
      };
      const weights = { get: 45, set: 25, delete: 10, deleteByPrefix: 2, wrap: 18, ...mix };
      const total = Object.values(weights).reduce((sum, w) => sum + w, 0);
      const chooseOp = (dice: number): ChurnOp => {
        let at = dice * total;
        for (const [op, weight] of Object.entries(weights) as Array<[ChurnOp, number]>) {
          if (at < weight) return op;
          at -= weight;
        }
        return 'get';
      };
      const until = now() + durationMs;
      const worker = async (w: number) => {
        const next = random(seed * 1000 + w);
        const pick = <T>(list: readonly T[]) => list[Math.floor(next() * list.length)];
        let n = 0;
        while (now() < until) {
          const key = pick(keys);
          const value = { p: index, w, n: n++, r: Math.floor(next() * 1e9) };
          const op = chooseOp(next());
          try {
            counts[op]++;
            if (op === 'get') await cache.get(key);
            else if (op === 'set') await cache.set(key, value);
            else if (op === 'delete') await cache.delete(key);
            else if (op === 'deleteByPrefix') await cache.deleteByPrefix(pick(prefixes));
            else {
              const delay = Math.floor(next() * 3);
              await cache.wrap(key, async () => {
                counts.loaderCalls++;
                loaderCalls++;
                // A short load, so invalidations from other processes land while it runs.
                if (delay > 0) await new Promise((r) => setTimeout(r, delay));
                return value;
              });
            }
          } catch (error) {
            counts.errors++;
            counts.firstError ??= errorText(error);
          }
          // Let IPC and bus messages in between calls even when every call is a local hit.
          await new Promise((r) => setImmediate(r));
        }
      };
      await Promise.all(Array.from({ length: workers }, (_v, w) => worker(w)));
      return counts;
    },
    storm: async ({ key, callers, via, value, ttl, lock, loaderMs = 0, gate: name, counter }) => {
      const storm = nextStorm++;
      const result: StormResult = {
        values: [],
        statuses: {},
        errors: 0,
        loaderCalls: 0,
        counted: [],
        startedAt: 0,
        settledAt: new Array<number>(callers).fill(0),
        durationMs: 0,
      };
      const loader = async (): Promise<Json> => {
        loaderCalls++;
        result.loaderCalls++;
        result.loadStartedAt ??= now();
        if (counter) {
          try {
            result.counted.push(await counterClient(counter.url).incr(counter.key));
          } catch (error) {
            result.countError ??= errorText(error);
          }
        }
        if (loaderMs > 0) await new Promise((r) => setTimeout(r, loaderMs));
        if (name !== undefined) {
          const entry = gate(name);
          entry.started.resolve(null);
          await entry.opened.promise;
          gates.delete(name);
        }
        result.loadDoneAt ??= now();
        return { value, by: index, pid: process.pid };
      };
      const variant: StormVariant = {
        ...(ttl !== undefined ? { ttl } : {}),
        ...(lock !== undefined ? { lock } : {}),
      };
      const count = (status: string) => {
        result.statuses[status] = (result.statuses[status] ?? 0) + 1;
      };
      let call: () => Promise<Json>;
      if (via === 'wrap') {
        // What `CacheService.wrap(key, loader, { ttl, lock })` calls, minus dropping the status.
        call = () =>
          stack.wrap(key, loader, variant, true, true).then(({ value: v, status }) => {
            count(status);
            return v;
          });
      } else {
        const method = methods.get(variantId(variant));
        if (method === undefined) {
          throw new Error(
            `no @Cacheable variant ${JSON.stringify(variant)}: pass it in Fleet.start({ cacheable })`,
          );
        }
        stormLoaders.set(storm, loader);
        // The status each call reports to the request it runs in (what `X-Cache` is made of).
        const recorder = { record: count } as unknown as Parameters<typeof withCacheStatus>[0];
        call = () => withCacheStatus(recorder, () => cacheables[method](key, storm));
      }
      const seen = new Map<string, { value: Json; callers: number }>();
      result.startedAt = now();
      try {
        await Promise.all(
          Array.from({ length: callers }, async (_v, i) => {
            try {
              const got = await call();
              const text = JSON.stringify(got);
              const entry = seen.get(text) ?? { value: got, callers: 0 };
              entry.callers++;
              seen.set(text, entry);
            } catch (error) {
              result.errors++;
              result.firstError ??= errorText(error);
            } finally {
              result.settledAt[i] = now();
            }
          }),
        );
      } finally {
        stormLoaders.delete(storm);
      }
      result.values = [...seen.values()];
      result.durationMs = Math.max(...result.settledAt) - result.startedAt;
      return result;
    },
    setTagged: async ({ key, value, tags, ttl }) => {
      const calledAt = now();
      await cache.set(key, value, { tags, ...(ttl === undefined ? {} : { ttl }) });
      return { calledAt, doneAt: now() };
    },
    deleteByTag: async ({ tags }) => {
      const calledAt = now();
      await cache.deleteByTag(tags);
      return { calledAt, doneAt: now() };
    },
    watchMiss: async ({ key, timeoutMs, intervalMs }) => {
      const first = await read(key);
      const armedAt = now();
      const watchId = nextWatch++;
      const outcome = deferred<{ seenAt: number; reads: number }>();
      watches.set(watchId, outcome.promise);
      if (!first.hit) {
        outcome.resolve({ seenAt: armedAt, reads: 1 });
      } else {
        const deadline = armedAt + timeoutMs;
        const again = intervalMs ? () => setTimeout(poll, intervalMs) : () => setImmediate(poll);
        let reads = 1;
        const poll = () => {
          read(key).then((r) => {
            reads++;
            const at = now();
            if (!r.hit) outcome.resolve({ seenAt: at, reads });
            else if (at > deadline) {
              outcome.reject(
                new Error(
                  `${key} still read ${JSON.stringify(r)} after ${timeoutMs} ms and ${reads} reads`,
                ),
              );
            } else again();
          }, outcome.reject);
        };
        again();
      }
      return { watchId, first, armedAt };
    },
    clock: () => ({ now: now() }),
    stats: () => {
      const tiers = stack.tiers as unknown as Record<string, unknown>;
      const busState = (stack as unknown as { busState?: unknown }).busState;
      return {
        pid: process.pid,
        nest: nestVersion,
        loaderCalls,
        loadsInFlight: stack.loadsInFlight,
        failures: stack.failures,
        tiers: Object.keys(tiers).filter((name) => tiers[name] !== undefined),
        ...(typeof busState === 'string' ? { busState } : {}),
        rssBytes: process.memoryUsage().rss,
      };
    },
    close: async () => {
      state.closed = true;
      await app.close();
      return null;
    },
  };

  process.on('message', (request: FleetRequest) => {
    void (async () => {
      let reply: FleetMessage;
      try {
        const handler = handlers[request.op] as (args: unknown) => unknown;
        if (!handler) throw new Error(`unknown command ${String(request.op)}`);
        const result = await handler(request.args);
        reply = { type: 'reply', id: request.id, ok: true, result: result ?? null };
      } catch (error) {
        reply = { type: 'reply', id: request.id, ok: false, error: errorText(error) };
      }
      await send(reply);
      if (request.op === 'close' && reply.ok) shutdown(0);
    })();
  });
  await send({ type: 'ready', pid: process.pid, nest: nestVersion });
}

main().catch(async (error: unknown) => {
  await send({ type: 'fatal', error: String((error as Error)?.stack ?? error) });
  process.exit(1);
});
