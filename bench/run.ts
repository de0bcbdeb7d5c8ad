/**
 * nestjs-cachekit benchmarks: each scenario measures this module side by side with what a Nest
 * user would otherwise pick, in the same run, with interleaved rounds, and prints medians and
 * ratios. `npm run bench` writes bench/RESULTS.md; `npm run bench -- --quick` is a smoke run
 * (CI) that prints the same tables with fewer, shorter rounds. Nothing here asserts on time.
 */
import 'reflect-metadata';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'node:http';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import { createCache } from 'cache-manager';
import { Keyv } from 'keyv';
import KeyvRedis from '@keyv/redis';
import autocannon from 'autocannon';
import { Cacheable, CacheModule, CacheService, type CacheModuleOptions } from '../lib';
import { freePort, RedisServer } from '../test/support/redis-server';
import { concurrent, formatOps, interleave, percentile, ratio, type Contender } from './measure';
import { loadingScenario } from './loading';
import { tagsScenario } from './tags';
import { serializerScenario } from './serializer';
import { bulkScenario } from './bulk';
import { eventsScenario } from './events';
import { tiersScenario, type BenchContext } from './tiers';

const quick = process.argv.includes('--quick');
// `--only memory,redis`: run some scenarios (then RESULTS.md is left as it is).
const onlyArg = process.argv.find((arg, i) => process.argv[i - 1] === '--only');
const only = onlyArg?.split(',');
const SCENARIOS = [
  'memory',
  'footprint',
  'decorator',
  'redis',
  'stampede',
  'http',
  'tiers',
  'loading',
  'tags',
  'events',
  'serializer',
  'bulk',
];
if (only?.some((name) => !SCENARIOS.includes(name))) {
  throw new Error(`--only takes a comma-separated list of: ${SCENARIOS.join(', ')}`);
}
const selected = (name: string) => !only || only.includes(name);
const ROUNDS = quick ? 3 : 9;
const ROUND_MS = quick ? 60 : 250;
const KEYS = 10_000;
const out: string[] = [];
const summary: Array<{ target: string; value: string; met: boolean }> = [];

function log(line = ''): void {
  out.push(line);
  process.stdout.write(line + '\n');
}

function table(headers: string[], rows: string[][]): void {
  log(`| ${headers.join(' | ')} |`);
  log(`| ${headers.map(() => '---').join(' | ')} |`);
  for (const row of rows) log(`| ${row.join(' | ')} |`);
  log();
}

function target(description: string, achieved: number, wanted: number): void {
  summary.push({
    target: `${description} ≥ ${wanted}×`,
    value: `${achieved.toFixed(2)}×`,
    met: achieved >= wanted,
  });
}

function version(pkg: string): string {
  // Read the file directly: some packages (lru-cache) do not export ./package.json.
  const file = join(__dirname, '..', 'node_modules', pkg, 'package.json');
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

const value = (i: number) => ({ id: i, name: `Product ${i}`, price: 9.99, tags: ['a', 'b'] });

async function cacheServiceFor(options: CacheModuleOptions) {
  @Module({ imports: [CacheModule.forRoot(options)] })
  class BenchModule {}
  const app = await NestFactory.createApplicationContext(BenchModule, { logger: false });
  return { app, cache: app.get(CacheService) };
}

// --- Memory: get/set --------------------------------------------------------------------

async function memoryScenario(): Promise<void> {
  log('## Memory: get (hit) and set, object values, 10 k keys');
  const keys = Array.from({ length: KEYS }, (_, i) => `product:${i}`);
  const values = keys.map((_, i) => value(i));
  const map = new Map<string, unknown>();
  const lru = new LRUCache<string, object>({ max: KEYS, ttl: 300_000 });
  const cm = createCache({ ttl: 300_000 });
  const { app, cache } = await cacheServiceFor({ ttl: 300 });
  for (let i = 0; i < KEYS; i++) {
    map.set(keys[i], values[i]);
    lru.set(keys[i], values[i]);
    await cm.set(keys[i], values[i]);
    await cache.set(keys[i], values[i]);
  }
  const loop =
    (fn: (i: number) => unknown): Contender['run'] =>
    async (ops) => {
      for (let i = 0; i < ops; i++) await fn(i % KEYS);
    };
  const gets = await interleave(
    [
      { name: 'awaited Map', run: loop((i) => map.get(keys[i])) },
      {
        name: 'lru-cache (sync)',
        run: (ops) => {
          for (let i = 0; i < ops; i++) lru.get(keys[i % KEYS]);
          return Promise.resolve();
        },
      },
      { name: 'cache-manager createCache()', run: loop((i) => cm.get(keys[i])) },
      { name: 'cachekit CacheService.get', run: loop((i) => cache.get(keys[i])) },
    ],
    { rounds: ROUNDS, roundMs: ROUND_MS },
  );
  const sets = await interleave(
    [
      { name: 'awaited Map', run: loop((i) => map.set(keys[i], values[i])) },
      {
        name: 'lru-cache (sync)',
        run: (ops) => {
          for (let i = 0; i < ops; i++) lru.set(keys[i % KEYS], values[i % KEYS]);
          return Promise.resolve();
        },
      },
      { name: 'cache-manager createCache()', run: loop((i) => cm.set(keys[i], values[i])) },
      { name: 'cachekit CacheService.set', run: loop((i) => cache.set(keys[i], values[i])) },
    ],
    { rounds: ROUNDS, roundMs: ROUND_MS },
  );
  const ours = (list: typeof gets) => list[list.length - 1].opsPerSec;
  table(
    ['contender', 'get ops/s', 'cachekit get ÷ it', 'set ops/s', 'cachekit set ÷ it'],
    gets.map((g, i) => [
      g.name,
      formatOps(g.opsPerSec),
      ratio(ours(gets), g.opsPerSec),
      formatOps(sets[i].opsPerSec),
      ratio(ours(sets), sets[i].opsPerSec),
    ]),
  );
  target('memory get vs awaited Map', ours(gets) / gets[0].opsPerSec, 0.6);
  target('memory get vs cache-manager', ours(gets) / gets[2].opsPerSec, 3);
  target('memory set vs awaited Map', ours(sets) / sets[0].opsPerSec, 0.5);
  await app.close();
}

// --- Memory footprint -----------------------------------------------------------------------

function runChild(file: string, args: string[], nodeArgs: string[] = []): ChildProcess {
  return spawn(
    process.execPath,
    [...nodeArgs, '-r', 'ts-node/register/transpile-only', join(__dirname, file), ...args],
    {
      env: { ...process.env, TS_NODE_PROJECT: join(__dirname, 'tsconfig.json') },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
}

async function childOutput(child: ChildProcess): Promise<string> {
  let text = '';
  child.stdout?.on('data', (chunk: Buffer) => (text += chunk.toString()));
  await new Promise((resolve) => child.on('exit', resolve));
  return text;
}

async function footprintScenario(): Promise<void> {
  const entries = quick ? 20_000 : 100_000;
  log(
    `## Memory footprint: heap bytes of overhead per entry at ${entries / 1000} k entries with a TTL`,
  );
  const rows: string[][] = [];
  const results: Record<string, number> = {};
  for (const contender of ['map', 'lru-cache', 'cache-manager', 'cachekit']) {
    const text = await childOutput(
      runChild('footprint.ts', [contender, String(entries)], ['--expose-gc']),
    );
    const parsed = JSON.parse(text.trim().split('\n').pop() ?? '{}') as { bytesPerEntry?: number };
    results[contender] = parsed.bytesPerEntry ?? NaN;
    rows.push([
      contender === 'map' ? 'Map (no TTL, no bound)' : contender,
      `${results[contender].toFixed(0)} B`,
    ]);
  }
  table(['contender', 'bytes/entry'], rows);
  summary.push({
    target: 'memory overhead ≤ 100 B/entry',
    value: `${results.cachekit.toFixed(0)} B`,
    met: results.cachekit <= 100,
  });
}

// --- Redis ------------------------------------------------------------------------------------

async function redisScenario(server: RedisServer): Promise<void> {
  log('## Redis: get and set against raw ioredis and cache-manager + @keyv/redis');
  const raw = new Redis(server.url);
  const piped = new Redis(server.url, { enableAutoPipelining: true });
  const keyv = new Keyv({ store: new KeyvRedis(server.url), namespace: 'cm' });
  const cm = createCache({ stores: [keyv] });
  const { app, cache } = await cacheServiceFor({
    provider: 'redis',
    redis: { url: server.url },
    namespace: 'ck',
    ttl: 300,
  });
  const N = 2_000;
  const payload = JSON.stringify(value(1));
  for (let i = 0; i < N; i++) {
    await raw.set(`raw:${i}`, payload);
    await cache.set(`k:${i}`, value(i));
    await cm.set(`k:${i}`, value(i));
  }
  const rows: string[][] = [];
  for (const concurrency of [1, 100]) {
    for (const op of ['get', 'set'] as const) {
      const latencies: Record<string, number[]> = {};
      const contender = (name: string, fn: (i: number) => Promise<unknown>): Contender => ({
        name,
        run: (ops) => concurrent(ops, concurrency, (i) => fn(i % N), (latencies[name] ??= [])),
      });
      const body = value(7);
      const contenders =
        op === 'get'
          ? [
              contender('raw ioredis', (i) => raw.get(`raw:${i}`).then((s) => s && JSON.parse(s))),
              contender('raw ioredis + auto-pipelining', (i) =>
                piped.get(`raw:${i}`).then((s) => s && JSON.parse(s)),
              ),
              contender('cache-manager + @keyv/redis', (i) => cm.get(`k:${i}`)),
              contender('cachekit', (i) => cache.get(`k:${i}`)),
            ]
          : [
              contender('raw ioredis', (i) =>
                raw.set(`raw:${i}`, JSON.stringify(body), 'PX', 300_000),
              ),
              contender('raw ioredis + auto-pipelining', (i) =>
                piped.set(`raw:${i}`, JSON.stringify(body), 'PX', 300_000),
              ),
              contender('cache-manager + @keyv/redis', (i) => cm.set(`k:${i}`, body, 300_000)),
              contender('cachekit', (i) => cache.set(`k:${i}`, body)),
            ];
      const measured = await interleave(contenders, {
        rounds: quick ? 2 : 5,
        roundMs: quick ? 150 : 500,
      });
      const ours = measured[3].opsPerSec;
      for (const m of measured) {
        const lat = latencies[m.name] ?? [];
        rows.push([
          `${op} c=${concurrency}`,
          m.name,
          formatOps(m.opsPerSec),
          `${percentile(lat, 50).toFixed(0)} / ${percentile(lat, 99).toFixed(0)}`,
          m === measured[3] ? '' : ratio(ours, m.opsPerSec),
        ]);
      }
      if (concurrency === 1)
        target(`redis ${op} c=1 vs raw ioredis`, ours / measured[0].opsPerSec, 0.9);
      else {
        target(`redis ${op} c=100 vs ioredis auto-pipelining`, ours / measured[1].opsPerSec, 1.0);
        target(`redis ${op} c=100 vs cache-manager`, ours / measured[2].opsPerSec, 1.0);
      }
    }
  }
  table(['op', 'contender', 'ops/s', 'p50 / p99 µs', 'cachekit ÷ it'], rows);
  await cache.clear();
  await raw.quit();
  await piped.quit();
  await keyv.disconnect();
  await app.close();
}

// --- @Cacheable hit path ---------------------------------------------------------------------

@Injectable()
class Catalog {
  @Cacheable('item:{id}')
  async find(id: number): Promise<ReturnType<typeof value>> {
    return Promise.resolve(value(id));
  }
}

async function decoratorScenario(): Promise<void> {
  log('## @Cacheable hit path on a service method vs CacheService.get');
  @Module({ imports: [CacheModule.forRoot({ ttl: 300 })], providers: [Catalog] })
  class DecoratorModule {}
  const app = await NestFactory.createApplicationContext(DecoratorModule, { logger: false });
  await app.init();
  const catalog = app.get(Catalog);
  const cache = app.get(CacheService);
  const ids = Array.from({ length: 1000 }, (_, i) => i);
  for (const id of ids) await catalog.find(id);
  await cache.set('direct', value(1));
  // The baseline is what the decorator replaces: a get of the same keys (`item:<id>`), built per
  // call as the caller would. A constant key, whose hash the string keeps, is shown for reference.
  const keys = ids.map((id) => `item:${id}`);
  const measured = await interleave(
    [
      {
        name: 'CacheService.get, same keys',
        run: async (ops) => {
          for (let i = 0; i < ops; i++) await cache.get(`item:${ids[i % 1000]}`);
        },
      },
      {
        name: '@Cacheable method (hit)',
        run: async (ops) => {
          for (let i = 0; i < ops; i++) await catalog.find(ids[i % 1000]);
        },
      },
      {
        name: 'CacheService.get, one constant key',
        run: async (ops) => {
          for (let i = 0; i < ops; i++) await cache.get('direct');
        },
      },
    ],
    { rounds: ROUNDS, roundMs: ROUND_MS },
  );
  if ((await cache.get(keys[999])) === undefined) throw new Error('@Cacheable wrote other keys');
  table(
    ['contender', 'ops/s', '@Cacheable ÷ it'],
    measured.map((m) => [
      m.name,
      formatOps(m.opsPerSec),
      ratio(measured[1].opsPerSec, m.opsPerSec),
    ]),
  );
  target(
    '@Cacheable hit vs CacheService.get (same keys)',
    measured[1].opsPerSec / measured[0].opsPerSec,
    0.7,
  );
  await app.close();
}

// --- HTTP -------------------------------------------------------------------------------------

interface Server {
  mode: string;
  port: number;
  child: ChildProcess;
}

async function startServer(mode: string): Promise<Server> {
  const port = await freePort();
  const child = runChild('http-server.ts', [mode, String(port)]);
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => chunk.toString().includes('ready') && resolve());
    child.on('exit', (code) => reject(new Error(`${mode} server exited with ${code}`)));
  });
  return { mode, port, child };
}

function get(port: number, path: string, agent: Agent): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.end();
  });
}

async function httpScenario(): Promise<void> {
  log('## HTTP (Express, server in its own process, autocannon, 50 connections)');
  const modes = ['constant', 'cacheable', 'interceptor', 'nest-cache-manager', 'interceptor-floor'];
  const labels: Record<string, string> = {
    constant: 'handler returning a constant',
    cacheable: 'cachekit @Cacheable on the handler',
    interceptor: 'cachekit CacheInterceptor',
    'nest-cache-manager': '@nestjs/cache-manager CacheInterceptor',
    'interceptor-floor': 'reference: an interceptor returning a constant (no cache)',
  };
  const servers = await Promise.all(modes.map(startServer));
  const agent = new Agent({ keepAlive: true, maxSockets: Infinity });
  try {
    for (const s of servers) {
      await get(s.port, '/item/hot', agent); // warm the cached URL
      // and the JIT, so the first measured round is not the slowest
      await autocannon({
        url: `http://127.0.0.1:${s.port}/item/hot`,
        connections: 50,
        duration: 1,
      });
    }
    const rounds = quick ? 2 : 7;
    const duration = quick ? 1 : 3;
    const results = new Map<string, { rps: number[]; p50: number[]; p99: number[] }>(
      modes.map((m) => [m, { rps: [], p50: [], p99: [] }]),
    );
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < servers.length; i++) {
        const s = servers[(i + round) % servers.length];
        const r = await autocannon({
          url: `http://127.0.0.1:${s.port}/item/hot`,
          connections: 50,
          duration,
        });
        const entry = results.get(s.mode)!;
        entry.rps.push(r.requests.average);
        entry.p50.push(r.latency.p50);
        entry.p99.push(r.latency.p99);
      }
    }
    const med = (m: string, k: 'rps' | 'p50' | 'p99') => percentile(results.get(m)![k], 50);
    table(
      ['route', 'req/s (median)', 'p50 / p99 ms', '÷ constant', '÷ @nestjs/cache-manager'],
      modes.map((m) => [
        labels[m],
        formatOps(med(m, 'rps')),
        `${med(m, 'p50')} / ${med(m, 'p99')}`,
        ratio(med(m, 'rps'), med('constant', 'rps')),
        ratio(med(m, 'rps'), med('nest-cache-manager', 'rps')),
      ]),
    );
    for (const m of ['cacheable', 'interceptor']) {
      target(`HTTP ${labels[m]} vs constant handler`, med(m, 'rps') / med('constant', 'rps'), 0.95);
      target(
        `HTTP ${labels[m]} vs @nestjs/cache-manager`,
        med(m, 'rps') / med('nest-cache-manager', 'rps'),
        1.1,
      );
    }

    log('### Cold-URL burst: 1 000 concurrent requests to one uncached URL');
    const burstAgent = new Agent({ keepAlive: false, maxSockets: Infinity });
    const rows: string[][] = [];
    for (const s of servers.filter(
      (x) => x.mode !== 'constant' && x.mode !== 'interceptor-floor',
    )) {
      const before = (JSON.parse(await get(s.port, '/stats', agent)) as { runs: number }).runs;
      await Promise.all(Array.from({ length: 1000 }, () => get(s.port, '/item/cold', burstAgent)));
      const after = (JSON.parse(await get(s.port, '/stats', agent)) as { runs: number }).runs;
      rows.push([labels[s.mode], String(after - before)]);
      if (s.mode !== 'nest-cache-manager') {
        summary.push({
          target: `burst: ${labels[s.mode]} runs the handler once`,
          value: String(after - before),
          met: after - before === 1,
        });
      }
    }
    table(['route', 'handler runs'], rows);
    burstAgent.destroy();
  } finally {
    agent.destroy();
    for (const s of servers) s.child.kill('SIGTERM');
    await Promise.all(
      servers.map(
        (s) => new Promise((r) => (s.child.exitCode !== null ? r(null) : s.child.on('exit', r))),
      ),
    );
  }
}

// --- Stampede ---------------------------------------------------------------------------------

async function stampedeScenario(server: RedisServer): Promise<void> {
  log('## Stampede: 1 000 concurrent misses on one key');
  const rows: string[][] = [];
  for (const provider of ['memory', 'redis'] as const) {
    const { app, cache } = await cacheServiceFor({
      provider,
      redis: { url: server.url },
      namespace: `stampede-${provider}`,
    });
    let loads = 0;
    const loader = async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 20));
      return value(1);
    };
    await Promise.all(Array.from({ length: 1000 }, () => cache.wrap('hot', loader)));
    rows.push([`cachekit wrap (${provider})`, String(loads)]);
    summary.push({
      target: `stampede (${provider}): loader runs once`,
      value: String(loads),
      met: loads === 1,
    });
    await cache.clear();
    await app.close();
  }
  const cm = createCache();
  let cmLoads = 0;
  await Promise.all(
    Array.from({ length: 1000 }, () =>
      cm.wrap('hot', async () => {
        cmLoads++;
        await new Promise((r) => setTimeout(r, 20));
        return value(1);
      }),
    ),
  );
  rows.push(['cache-manager wrap (memory)', String(cmLoads)]);
  table(['contender', 'loader runs'], rows);
}

async function main(): Promise<void> {
  const started = Date.now();
  log(`# nestjs-cachekit benchmarks${quick ? ' (quick smoke run)' : ''}`);
  log();
  log(
    `- machine: ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB`,
  );
  log(`- node ${process.version}; redis-server started by the bench on a free loopback port`);
  log(
    `- peers: lru-cache ${version('lru-cache')}, cache-manager ${version('cache-manager')}, ` +
      `@keyv/redis ${version('@keyv/redis')}, ioredis ${version('ioredis')}, ` +
      `@nestjs/cache-manager ${version('@nestjs/cache-manager')}, @nestjs/core ${version('@nestjs/core')}`,
  );
  log(
    `- method: medians of ${ROUNDS} interleaved rounds (Redis: ${quick ? 2 : 5}; HTTP: ${quick ? 2 : 7} of ${quick ? 1 : 3} s after a 1 s warm-up); ratios are cachekit ÷ peer in the same run`,
  );
  log();
  const server = await RedisServer.start();
  const context: BenchContext = {
    url: server.url,
    quick,
    rounds: ROUNDS,
    roundMs: ROUND_MS,
    log,
    table,
    target,
    check: (description, value, met) => summary.push({ target: description, value, met }),
  };
  const scenarios: Record<string, () => Promise<void>> = {
    memory: memoryScenario,
    footprint: footprintScenario,
    decorator: decoratorScenario,
    redis: () => redisScenario(server),
    stampede: () => stampedeScenario(server),
    http: httpScenario,
    tiers: () => tiersScenario(context),
    loading: () => loadingScenario(context),
    tags: () => tagsScenario(context),
    events: () => eventsScenario(context),
    serializer: () => serializerScenario(context),
    bulk: () => bulkScenario(context),
  };
  const took: string[] = [];
  try {
    for (const name of SCENARIOS.filter(selected)) {
      const start = Date.now();
      await scenarios[name]();
      took.push(`${name} ${((Date.now() - start) / 1000).toFixed(0)} s`);
    }
  } finally {
    await server.stop();
  }
  log('## Targets');
  table(
    ['target', 'measured', 'met'],
    summary.map((s) => [s.target, s.value, s.met ? 'yes' : '**no**']),
  );
  log(`_Run took ${((Date.now() - started) / 1000).toFixed(0)} s (${took.join(', ')})._`);
  if (!quick && !only) writeFileSync(join(__dirname, 'RESULTS.md'), out.join('\n') + '\n');
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
