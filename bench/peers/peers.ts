/**
 * The peers of the two-tier benchmark (bench/tiers.ts), built from this folder's own
 * node_modules: BentoCache needs ioredis 5, the project uses ioredis 6. Install with
 * `node scripts/ensure-deps.js bench/peers` (`npm run bench` does it first).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BentoCache, bentostore } from 'bentocache';
import { memoryDriver } from 'bentocache/drivers/memory';
import { redisBusDriver, redisDriver } from 'bentocache/drivers/redis';
import { Cacheable } from 'cacheable';
import KeyvRedis from '@keyv/redis';

/** The operations the benchmark runs, the same shape for every library. */
export interface TierClient {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown): Promise<unknown>;
  /** Read-through: the loader runs on a miss only. */
  wrap(key: string, load: () => Promise<unknown>): Promise<unknown>;
  close(): Promise<void>;
}

/** Entry TTL of every peer (ms): long enough that nothing expires during a run. */
const TTL_MS = 300_000;

/** The installed version of a peer package (from its package.json). */
export function peerVersion(pkg: string): string {
  const file = join(__dirname, 'node_modules', pkg, 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

function connection(url: string): { host: string; port: number } {
  const parsed = new URL(url);
  return { host: parsed.hostname, port: Number(parsed.port) };
}

/**
 * BentoCache with a memory L1 (10 k items, its default serialized form), a Redis L2 and the
 * Redis bus: what its docs recommend for several instances. Instances built with the same
 * `prefix` share entries and invalidate each other's L1.
 */
export function bentoCacheClient(url: string, prefix: string): TierClient {
  const bento = new BentoCache({
    default: 'tiers',
    prefix,
    ttl: TTL_MS,
    stores: {
      tiers: bentostore()
        .useL1Layer(memoryDriver({ maxItems: 10_000 }))
        .useL2Layer(redisDriver({ connection: connection(url) }))
        .useBus(redisBusDriver({ connection: connection(url) })),
    },
  });
  return {
    get: (key) => bento.get({ key }),
    set: (key, value) => bento.set({ key, value }),
    wrap: (key, load) => bento.getOrSet({ key, factory: load }),
    close: () => bento.disconnectAll(),
  };
}

/**
 * cacheable with its default in-memory primary and @keyv/redis as secondary. It has no bus in
 * this form: another instance's primary keeps a value overwritten elsewhere until its TTL.
 */
export function cacheableClient(url: string, namespace: string): TierClient {
  const cache = new Cacheable({ secondary: new KeyvRedis(url), namespace, ttl: TTL_MS });
  return {
    get: (key) => cache.get(key),
    set: (key, value) => cache.set(key, value),
    wrap: (key, load) => cache.getOrSet(key, load),
    close: () => cache.disconnect(),
  };
}
