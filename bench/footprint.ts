/**
 * Bytes of heap per cache entry, in a fresh process started with --expose-gc.
 * Usage: footprint.ts <contender> <entries>. Keys and values are allocated before the
 * baseline, so the figure is the cache's own overhead per entry (index, TTL bookkeeping).
 */
import 'reflect-metadata';
import { LRUCache } from 'lru-cache';
import { createCache } from 'cache-manager';
import { MemoryCacheAdapter } from '../lib';

const [contender = 'cachekit', entriesArg = '100000'] = process.argv.slice(2);
const entries = Number(entriesArg);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');

function heap(): number {
  for (let i = 0; i < 4; i++) gc!();
  return process.memoryUsage().heapUsed;
}

async function main(): Promise<void> {
  const keys = Array.from({ length: entries }, (_, i) => `product:${i}`);
  // Build a small cache first, so code compilation and inline caches are settled (and their
  // memory allocated) before the baseline is taken.
  await fill(keys.slice(0, 1000));
  const before = heap();
  const holder = await fill(keys);
  const after = heap();
  process.stdout.write(
    JSON.stringify({ contender, bytesPerEntry: (after - before) / entries }) + '\n',
  );
  if (!holder) process.exit(1);
}

async function fill(keys: string[]): Promise<unknown> {
  const value = { id: 1, name: 'Widget', price: 9.99 };
  const entries = keys.length;
  let holder: unknown;
  switch (contender) {
    case 'map': {
      const map = new Map<string, unknown>();
      for (const key of keys) map.set(key, value);
      holder = map;
      break;
    }
    case 'lru-cache': {
      const lru = new LRUCache<string, object>({ max: entries, ttl: 300_000 });
      for (const key of keys) lru.set(key, value);
      holder = lru;
      break;
    }
    case 'cache-manager': {
      const cache = createCache({ ttl: 300_000 });
      for (const key of keys) await cache.set(key, value);
      holder = cache;
      break;
    }
    case 'cachekit': {
      const adapter = new MemoryCacheAdapter({ maxEntries: entries, sweepInterval: 0 });
      for (const key of keys) await adapter.set(key, value, 300);
      holder = adapter;
      break;
    }
    default:
      throw new Error(`unknown contender ${contender}`);
  }
  return holder;
}

void main();
