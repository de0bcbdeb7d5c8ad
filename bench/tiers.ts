/**
 * Two tiers (L1 + Redis L2 + bus) side by side with BentoCache (L1 + L2 + Redis bus) and
 * cacheable (primary + secondary), in the same run: hits (get, wrap), cold reads (L2 hit, L1
 * miss), writes that invalidate another instance's L1, and propagation across three processes.
 * The peers come from bench/peers (their own package.json: BentoCache needs ioredis 5).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { CacheModule, CacheService, type CacheModuleOptions } from '../lib';
import { CacheStack } from '../lib/core/cache-stack';
import {
  concurrent,
  formatOps,
  interleave,
  median,
  percentile,
  ratio,
  type Contender,
} from './measure';
import type { TierClient } from './peers/peers';

/** What bench/run.ts hands a scenario: its settings and its output. */
export interface BenchContext {
  url: string;
  quick: boolean;
  rounds: number;
  roundMs: number;
  log(line?: string): void;
  table(headers: string[], rows: string[][]): void;
  /** A "≥ wanted×" target. */
  target(description: string, achieved: number, wanted: number): void;
  /** Any other target, already judged. */
  check(target: string, value: string, met: boolean): void;
}

export type { TierClient };

const value = (i: number) => ({ id: i, name: `Product ${i}`, price: 9.99, tags: ['a', 'b'] });

/** Our options for the two-tier mode, shared by the in-process instances and the children. */
export function twoTierOptions(url: string, namespace: string): CacheModuleOptions {
  return { provider: 'redis', redis: { url }, namespace, ttl: 300, l1: true };
}

/** A CacheService in its own Nest application context, behind the common client shape. */
export async function cachekitClient(options: CacheModuleOptions): Promise<TierClient> {
  @Module({ imports: [CacheModule.forRoot(options)] })
  class TierBenchModule {}
  const app = await NestFactory.createApplicationContext(TierBenchModule, { logger: false });
  await app.init();
  const cache = app.get(CacheService);
  // L1 is not read until the bus is subscribed: wait for it, so no round measures the start-up.
  const stack = app.get(CacheStack, { strict: false });
  for (let waited = 0; stack.busState === 'deaf'; waited += 10) {
    if (waited >= 10_000) throw new Error('tiers: the bus did not subscribe within 10 s');
    await sleep(10);
  }
  return {
    get: (key) => cache.get(key),
    set: (key, v) => cache.set(key, v),
    wrap: (key, load) => cache.wrap(key, load),
    close: () => app.close(),
  };
}

type Peers = typeof import('./peers/peers');

async function loadPeers(): Promise<Peers> {
  try {
    return await import('./peers/peers');
  } catch (error) {
    throw new Error(
      'The tiers scenario needs the peers in bench/peers: run `node scripts/ensure-deps.js bench/peers` ' +
        `(\`npm run bench\` does it). ${String(error)}`,
    );
  }
}

interface Library {
  name: string;
  /** Instance A: the reader (and the writer of the write scenario). */
  a: TierClient;
  /** Instance B, same namespace: the other writer (cold reads) or the L1 holder (invalidation). */
  b: TierClient;
}

/**
 * Rounds of `size` distinct keys per contender, interleaved; before each timed batch, `prepare`
 * sets the keys up (untimed), then the bus is given time to drain. Each key is used once, so
 * every op is the case under test (an L1 miss, an invalidating write) for every library.
 */
async function batchRounds(
  contenders: Array<{
    name: string;
    prepare(keys: string[]): Promise<void>;
    op(key: string, i: number): Promise<unknown>;
    /** Untimed, after the batch: a count to report (misses, stale reads). */
    after?(keys: string[]): Promise<number>;
  }>,
  options: { rounds: number; size: number; prefix: string },
): Promise<Array<{ name: string; opsPerSec: number; latencies: number[]; count: number }>> {
  const results = contenders.map((c) => ({
    name: c.name,
    rounds: [] as number[],
    latencies: [] as number[],
    count: 0,
  }));
  // Round -1 warms up (JIT, connections) and is not recorded.
  for (let round = -1; round < options.rounds; round++) {
    const r = Math.max(round, 0);
    for (let n = 0; n < contenders.length; n++) {
      const index = (n + r) % contenders.length;
      const c = contenders[index];
      const keys = Array.from(
        { length: options.size },
        (_, i) => `${options.prefix}:${round + 1}:${i}`,
      );
      await c.prepare(keys);
      await sleep(100); // let the bus messages of the preparation arrive
      const latencies: number[] = [];
      const started = process.hrtime.bigint();
      for (let i = 0; i < keys.length; i++) {
        const t = process.hrtime.bigint();
        await c.op(keys[i], i);
        latencies.push(Number(process.hrtime.bigint() - t) / 1e3);
      }
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (round < 0) continue;
      results[index].rounds.push(keys.length / seconds);
      results[index].latencies.push(...latencies);
      if (c.after) results[index].count += await c.after(keys);
    }
  }
  return results.map((r) => ({
    name: r.name,
    opsPerSec: median(r.rounds),
    latencies: r.latencies,
    count: r.count,
  }));
}

// --- Propagation across processes -------------------------------------------------------------

type ChildMessage =
  | { op: 'ready' }
  | { op: 'primed' }
  | { op: 'watching' }
  | { op: 'seen'; at: string | null }
  | { op: 'written'; at: string };

class Child {
  private readonly waiting: Array<(message: ChildMessage | Error) => void> = [];
  private readonly inbox: ChildMessage[] = [];
  readonly process: ChildProcess;

  constructor(library: string, url: string, namespace: string) {
    this.process = spawn(
      process.execPath,
      [
        '-r',
        'ts-node/register/transpile-only',
        join(__dirname, 'tiers-child.ts'),
        library,
        url,
        namespace,
      ],
      {
        env: { ...process.env, TS_NODE_PROJECT: join(__dirname, 'tsconfig.json') },
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      },
    );
    this.process.on('message', (message: ChildMessage) => {
      const waiter = this.waiting.shift();
      if (waiter) waiter(message);
      else this.inbox.push(message);
    });
    this.process.on('exit', (code) => {
      for (const waiter of this.waiting.splice(0)) {
        waiter(new Error(`propagation child exited with ${code}`));
      }
    });
  }

  /** The next message; a child starts in seconds (ts-node), then answers in milliseconds. */
  next(timeoutMs = 30_000): Promise<ChildMessage> {
    const queued = this.inbox.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error('propagation child did not answer')),
        timeoutMs,
      );
      this.waiting.push((message) => {
        clearTimeout(timer);
        if (message instanceof Error) reject(message);
        else resolve(message);
      });
    });
  }

  send(message: object): void {
    this.process.send(message);
  }

  async stop(): Promise<void> {
    if (this.process.exitCode !== null || this.process.signalCode !== null) return;
    const exited = new Promise((resolve) => this.process.once('exit', resolve));
    if (this.process.connected) this.send({ op: 'close' });
    const timer = setTimeout(() => this.process.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

/**
 * One writer and two reader processes. Per write: both readers read the key (it is in their
 * L1), start polling it (a read every ~0.1 ms), then the writer sets a new version.
 * Measured: from the start of the writer's `set` to the first read returning the new version,
 * on the same monotonic clock (process.hrtime is system-wide on one machine).
 */
async function propagation(
  children: Child[],
  writes: number,
): Promise<{ latencies: number[]; lost: number }> {
  const [writer, ...readers] = children;
  const latencies: number[] = [];
  let lost = 0;
  const warmup = 20;
  for (let n = 1; n <= warmup + writes; n++) {
    const key = `prop:${n % 20}`;
    for (const r of readers) r.send({ op: 'prime', key });
    for (const r of readers) await r.next();
    for (const r of readers) r.send({ op: 'watch', key, version: n });
    for (const r of readers) await r.next();
    writer.send({ op: 'write', key, version: n });
    const written = await writer.next();
    for (const r of readers) {
      const seen = await r.next();
      if (n <= warmup || written.op !== 'written' || seen.op !== 'seen') continue;
      if (seen.at === null) lost++;
      else latencies.push(Number(BigInt(seen.at) - BigInt(written.at)) / 1e6);
    }
  }
  return { latencies, lost };
}

/** Three children per library, all started at once (each takes seconds to load). */
async function startChildren(url: string, libraries: string[]): Promise<Child[][]> {
  const groups = libraries.map((library) =>
    [0, 1, 2].map(() => new Child(library, url, `tiers-prop-${library}`)),
  );
  try {
    for (const child of groups.flat()) {
      const message = await child.next(180_000);
      if (message.op !== 'ready') throw new Error(`child sent ${message.op} before ready`);
    }
  } catch (error) {
    await Promise.all(groups.flat().map((c) => c.stop()));
    throw error;
  }
  return groups;
}

// --- The scenario -------------------------------------------------------------------------------

/** Runs the tiers scenario: its tables go to `ctx.log`, its targets to `ctx.target`/`check`. */
export async function tiersScenario(ctx: BenchContext): Promise<void> {
  const peers = await loadPeers();
  const { url, quick } = ctx;
  ctx.log('## Two tiers: L1 + Redis L2 + bus, against BentoCache and cacheable');
  ctx.log(
    `- peers: bentocache ${peers.peerVersion('bentocache')} (memory L1 of 10 k items, Redis L2, Redis bus), ` +
      `cacheable ${peers.peerVersion('cacheable')} (default memory primary, @keyv/redis ` +
      `${peers.peerVersion('@keyv/redis')} secondary, no bus), ioredis ${peers.peerVersion('ioredis')} for BentoCache`,
  );
  ctx.log('- A and B are two instances of each library in this process, on one Redis namespace');
  ctx.log();

  const libraries: Library[] = [
    {
      name: 'cachekit two-tier',
      a: await cachekitClient(twoTierOptions(url, 'tiers')),
      b: await cachekitClient(twoTierOptions(url, 'tiers')),
    },
    {
      name: 'BentoCache L1+L2+bus',
      a: peers.bentoCacheClient(url, 'tiers-bento'),
      b: peers.bentoCacheClient(url, 'tiers-bento'),
    },
    {
      name: 'cacheable primary+secondary',
      a: peers.cacheableClient(url, 'tiers-cacheable'),
      b: peers.cacheableClient(url, 'tiers-cacheable'),
    },
  ];
  const memory = await cachekitClient({ provider: 'memory', ttl: 300 });
  const redisOnly = await cachekitClient({
    provider: 'redis',
    redis: { url },
    namespace: 'tiers-redis',
    ttl: 300,
  });
  const [ours, bento] = libraries;
  try {
    // -- Hits: get and wrap on keys instance A holds in L1.
    const N = 1000;
    const keys = Array.from({ length: N }, (_, i) => `hit:${i}`);
    for (const client of [...libraries.map((l) => l.a), memory, redisOnly]) {
      for (let i = 0; i < N; i++) await client.set(keys[i], value(i));
      for (let i = 0; i < N; i++) {
        if ((await client.get(keys[i])) === undefined) throw new Error('tiers: a hit key missed');
      }
    }
    let loads = 0;
    const load = () => {
      loads++;
      return Promise.resolve(value(-1));
    };
    const loop =
      (fn: (key: string) => Promise<unknown>): Contender['run'] =>
      async (ops) => {
        for (let i = 0; i < ops; i++) await fn(keys[i % N]);
      };
    const hitRows: string[][] = [];
    const hits: Record<'get' | 'wrap', number[]> = { get: [], wrap: [] };
    const contenderNames = [
      'cachekit memory only',
      ...libraries.map((l) => l.name),
      'reference: cachekit Redis only (no L1)',
    ];
    const clients = [memory, ...libraries.map((l) => l.a), redisOnly];
    for (const op of ['get', 'wrap'] as const) {
      const measured = await interleave(
        clients.map((client, i) => ({
          name: contenderNames[i],
          run: loop(op === 'get' ? (key) => client.get(key) : (key) => client.wrap(key, load)),
        })),
        { rounds: ctx.rounds, roundMs: ctx.roundMs },
      );
      hits[op] = measured.map((m) => m.opsPerSec);
    }
    if (loads > 0) throw new Error(`tiers: wrap ran its loader ${loads} times on hits`);
    for (let i = 0; i < clients.length; i++) {
      hitRows.push([
        contenderNames[i],
        formatOps(hits.get[i]),
        i === 1 ? '' : ratio(hits.get[1], hits.get[i]),
        formatOps(hits.wrap[i]),
        i === 1 ? '' : ratio(hits.wrap[1], hits.wrap[i]),
      ]);
    }
    ctx.log('### Hits (L1): get and wrap, 1 k keys, object values, one caller');
    ctx.table(
      ['contender', 'get ops/s', 'two-tier get ÷ it', 'wrap ops/s', 'two-tier wrap ÷ it'],
      hitRows,
    );
    ctx.target('two-tier get hit vs cachekit memory get', hits.get[1] / hits.get[0], 0.6);
    ctx.target('two-tier get hit vs BentoCache two-tier get', hits.get[1] / hits.get[2], 5);

    // -- Cold reads: B wrote the keys, A reads each once (L2 hit, L1 miss, L1 fill).
    const size = quick ? 300 : 2000;
    const rounds = quick ? 2 : 7;
    const cold = await batchRounds(
      [
        ...libraries.map((l) => ({
          name: l.name,
          prepare: async (batch: string[]) => {
            await concurrent(batch.length, 16, (i) => l.b.set(batch[i], value(i)));
          },
          op: (key: string) => l.a.get(key),
          after: async (batch: string[]) => {
            let misses = 0;
            for (const key of batch) if ((await l.a.get(key)) === undefined) misses++;
            return misses;
          },
        })),
        {
          name: 'reference: cachekit Redis only (no L1)',
          prepare: async (batch: string[]) => {
            await concurrent(batch.length, 16, (i) => redisOnly.set(batch[i], value(i)));
          },
          op: (key: string) => redisOnly.get(key),
        },
      ],
      { rounds, size, prefix: 'cold' },
    );
    ctx.log(
      `### Cold reads (L2 hit, L1 miss): instance B wrote ${size} keys, A reads each once; ${rounds} rounds`,
    );
    ctx.table(
      ['contender', 'ops/s', 'p50 / p99 µs', 'two-tier ÷ it', 'misses after'],
      cold.map((c, i) => [
        c.name,
        formatOps(c.opsPerSec),
        `${percentile(c.latencies, 50).toFixed(0)} / ${percentile(c.latencies, 99).toFixed(0)}`,
        i === 0 ? '' : ratio(cold[0].opsPerSec, c.opsPerSec),
        i === 3 ? '' : String(c.count),
      ]),
    );

    // -- Writes with invalidation: A overwrites keys that B holds in its L1.
    const writes = await batchRounds(
      [
        ...libraries.map((l) => ({
          name: l.name,
          prepare: async (batch: string[]) => {
            await concurrent(batch.length, 16, (i) => l.a.set(batch[i], value(i)));
            await sleep(100);
            await concurrent(batch.length, 16, (i) => l.b.get(batch[i])); // now in B's L1
          },
          op: (key: string, i: number) => l.a.set(key, value(i + 1_000_000)),
          after: async (batch: string[]) => {
            await sleep(50);
            let stale = 0;
            for (let i = 0; i < batch.length; i++) {
              const read = (await l.b.get(batch[i])) as { id: number } | undefined;
              if (read?.id !== i + 1_000_000) stale++;
            }
            return stale;
          },
        })),
        {
          name: 'reference: cachekit Redis only (no L1)',
          prepare: async (batch: string[]) => {
            await concurrent(batch.length, 16, (i) => redisOnly.set(batch[i], value(i)));
          },
          op: (key: string, i: number) => redisOnly.set(key, value(i + 1_000_000)),
        },
      ],
      { rounds, size, prefix: 'inv' },
    );
    ctx.log(
      `### Writes with invalidation: A overwrites ${size} keys held in B's L1; B's stale reads 50 ms later`,
    );
    ctx.table(
      ['contender', 'set ops/s', 'p50 / p99 µs', 'two-tier ÷ it', 'stale reads on B'],
      writes.map((w, i) => [
        w.name,
        formatOps(w.opsPerSec),
        `${percentile(w.latencies, 50).toFixed(0)} / ${percentile(w.latencies, 99).toFixed(0)}`,
        i === 0 ? '' : ratio(writes[0].opsPerSec, w.opsPerSec),
        i === 3 ? '' : `${w.count} of ${rounds * size}`,
      ]),
    );
  } finally {
    await Promise.all([
      ...libraries.flatMap((l) => [l.a.close(), l.b.close()]),
      memory.close(),
      redisOnly.close(),
    ]);
  }

  // -- Propagation across three processes (a writer, two readers).
  const count = quick ? 100 : 1000;
  const rows: string[][] = [];
  let oursP99 = NaN;
  // The floor (the same protocol with a bare Map and pub/sub) costs three more processes to
  // start: the full run only.
  const groups = await startChildren(
    url,
    quick ? ['cachekit', 'bentocache'] : ['cachekit', 'bentocache', 'raw'],
  );
  const names = [ours.name, bento.name, 'reference: a Map + raw ioredis SET, PUBLISH, SUBSCRIBE'];
  try {
    for (const [i, group] of groups.entries()) {
      const library = names[i];
      const { latencies, lost } = await propagation(group, count);
      const p99 = percentile(latencies, 99);
      if (i === 0) oursP99 = lost > 0 ? Infinity : p99;
      rows.push([
        library,
        percentile(latencies, 50).toFixed(2),
        p99.toFixed(2),
        Math.max(...latencies).toFixed(2),
        String(lost),
      ]);
    }
  } finally {
    await Promise.all(groups.flat().map((c) => c.stop()));
  }
  rows.splice(2, 0, [
    'cacheable primary+secondary',
    'n/a',
    'n/a',
    'n/a',
    'no bus: stale until TTL',
  ]);
  ctx.log(
    `### Propagation: 3 processes (1 writer, 2 readers reading the key every ~0.1 ms), ${count} writes`,
  );
  ctx.table(['library', 'p50 ms', 'p99 ms', 'max ms', 'not seen within 2 s'], rows);
  ctx.check(
    'two-tier propagation p99 < 5 ms (3 processes, loopback)',
    `${oursP99.toFixed(2)} ms`,
    oursP99 < 5,
  );
}
