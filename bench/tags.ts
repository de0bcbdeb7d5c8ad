/**
 * What tags (issue 14) cost, in the same run: `deleteByTag` of a tag carried by 1 k and by
 * 100 k entries (lazy invalidation: the same cost whatever the count), against
 * `deleteByPrefix` over the same entries (which visits each one); and what a tag costs a read,
 * against an untagged entry.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { CacheModule, CacheService, type CacheModuleOptions } from '../lib';
import { CacheStack } from '../lib/core/cache-stack';
import { formatOps, interleave, median, ratio } from './measure';
import type { BenchContext } from './tiers';

type App = Awaited<ReturnType<typeof NestFactory.createApplicationContext>>;

let apps = 0;

async function appWith(options: CacheModuleOptions): Promise<App> {
  @Module({ imports: [CacheModule.forRoot(options)] })
  class TagsBenchModule {}
  const app = await NestFactory.createApplicationContext(TagsBenchModule, { logger: false });
  await app.init();
  // With `l1`, the L1 is not read until the bus is subscribed: wait for it.
  const stack = app.get(CacheStack, { strict: false });
  for (let waited = 0; stack.busState === 'deaf'; waited += 10) {
    if (waited >= 10_000) throw new Error('tags: the bus did not subscribe within 10 s');
    await sleep(10);
  }
  return app;
}

interface Backend {
  name: string;
  options(namespace: string): CacheModuleOptions;
}

const value = (i: number) => ({ id: i, name: `Product ${i}`, price: 9.99 });

/** Writes `count` entries carrying `tag` (and one tag of their own), 1 000 at a time. */
async function fill(cache: CacheService, prefix: string, count: number, tag: string) {
  for (let from = 0; from < count; from += 1000) {
    const writes: Array<Promise<void>> = [];
    for (let i = from; i < Math.min(count, from + 1000); i++) {
      writes.push(cache.set(`${prefix}${i}`, value(i), { ttl: 600, tags: [tag, `item:${i}`] }));
    }
    await Promise.all(writes);
  }
}

/** Microseconds of each of `times` awaited calls of `call`. */
async function timed(times: number, call: () => Promise<unknown>): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < times; i++) {
    const started = process.hrtime.bigint();
    await call();
    samples.push(Number(process.hrtime.bigint() - started) / 1e3);
  }
  return samples;
}

async function invalidationCost(ctx: BenchContext, backends: Backend[]): Promise<void> {
  const counts = ctx.quick ? [1_000, 10_000] : [1_000, 100_000];
  const rows: string[][] = [];
  for (const backend of backends) {
    const byCount: number[] = [];
    for (const count of counts) {
      const app = await appWith(backend.options(`bench-tags-${process.pid}-${++apps}`));
      try {
        const cache = app.get(CacheService);
        await fill(cache, 'p:', count, 'all');
        // Each call invalidates the tag again: the same work however many entries carry it.
        const byTag = median(await timed(ctx.quick ? 20 : 100, () => cache.deleteByTag('all')));
        // Every entry carrying the tag now misses (a sample, spread over the range).
        for (let i = 0; i < count; i += Math.ceil(count / 50)) {
          if ((await cache.get(`p:${i}`)) !== undefined) {
            throw new Error(`tags: p:${i} still answers after deleteByTag`);
          }
        }
        await fill(cache, 'q:', count, 'other');
        const started = process.hrtime.bigint();
        const deleted = await cache.deleteByPrefix('q:');
        const byPrefix = Number(process.hrtime.bigint() - started) / 1e6;
        if (deleted !== count) throw new Error(`tags: deleteByPrefix deleted ${deleted}`);
        byCount.push(byTag);
        rows.push([
          backend.name,
          count.toLocaleString('en-US'),
          byTag.toFixed(0),
          byPrefix.toFixed(1),
        ]);
      } finally {
        await app.close();
      }
    }
    const growth = byCount[byCount.length - 1] / byCount[0];
    ctx.check(
      `${backend.name}: deleteByTag at ${counts[1].toLocaleString('en-US')} entries ÷ at ${counts[0].toLocaleString('en-US')} ≤ 2 (constant cost)`,
      `${growth.toFixed(2)}×`,
      growth <= 2,
    );
  }
  ctx.log('### deleteByTag of a tag every entry carries, against deleteByPrefix over as many');
  ctx.table(['backend', 'entries', 'deleteByTag p50 µs', 'deleteByPrefix ms (one call)'], rows);
}

async function readCost(ctx: BenchContext, backends: Backend[]): Promise<void> {
  const rows: string[][] = [];
  for (const backend of backends) {
    const app = await appWith(backend.options(`bench-tags-${process.pid}-${++apps}`));
    try {
      const cache = app.get(CacheService);
      const N = 1000;
      for (let i = 0; i < N; i++) {
        await cache.set(`plain:${i}`, value(i), 600);
        await cache.set(`tagged:${i}`, value(i), { ttl: 600, tags: ['products', `product:${i}`] });
      }
      // One invalidation of an unrelated tag: the entries are checked against real records.
      await cache.deleteByTag('unrelated');
      const measured = await interleave(
        ['plain', 'tagged'].map((prefix) => ({
          name: `${prefix} entry`,
          run: async (ops: number) => {
            for (let i = 0; i < ops; i++) {
              if ((await cache.get(`${prefix}:${i % N}`)) === undefined) {
                throw new Error(`tags: ${prefix}:${i % N} missed`);
              }
            }
          },
        })),
        { rounds: ctx.rounds, roundMs: ctx.roundMs },
      );
      rows.push([
        backend.name,
        formatOps(measured[0].opsPerSec),
        formatOps(measured[1].opsPerSec),
        ratio(measured[1].opsPerSec, measured[0].opsPerSec),
      ]);
    } finally {
      await app.close();
    }
  }
  ctx.log('### get hits: an entry with two tags against an untagged one, 1 k keys, one caller');
  ctx.log(
    '- Redis without l1 reads the tags’ records with the entry’s read (one more round trip); with l1 and a live bus, times read or heard are kept in process',
  );
  ctx.table(['backend', 'untagged get/s', 'tagged get/s', 'tagged ÷ untagged'], rows);
}

/** Runs the tags scenario: its tables go to `ctx.log`, its targets to `ctx.check`. */
export async function tagsScenario(ctx: BenchContext): Promise<void> {
  ctx.log('## Tags: invalidation cost by number of entries; read cost of a tag');
  ctx.log();
  const backends: Backend[] = [
    {
      name: 'memory',
      options: (namespace) => ({ namespace, ttl: 600, memory: { maxEntries: 250_000 } }),
    },
    {
      name: 'redis',
      options: (namespace) => ({ provider: 'redis', redis: { url: ctx.url }, namespace, ttl: 600 }),
    },
    {
      name: 'redis + l1',
      options: (namespace) => ({
        provider: 'redis',
        redis: { url: ctx.url },
        namespace,
        ttl: 600,
        l1: true,
      }),
    },
  ];
  await invalidationCost(ctx, backends);
  await readCost(ctx, backends);
}
