/**
 * What the loading options (issue 13) cost, in the same run: hits on entries that carry an
 * envelope (`grace`, `refreshAhead`) against plain entries, through `CacheService.wrap`,
 * `@Cacheable` and the L1 of two tiers; and what `lock` adds to a cold miss on Redis, counted in
 * commands (INFO commandstats deltas), in round trips on the caller's path (the commands whose
 * replies the caller waited for, in dependent waves) and in latency.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Redis } from 'ioredis';
import type { Command } from 'ioredis';
import {
  CacheAdapter,
  Cacheable,
  CacheModule,
  CacheService,
  type CacheModuleOptions,
  type WrapOptions,
} from '../lib';
import { CacheStack } from '../lib/core/cache-stack';
import { isSealed } from '../lib/core/entry-envelope';
import { formatOps, interleave, median, percentile, ratio, type Contender } from './measure';
import type { BenchContext } from './tiers';

const value = (i: number) => ({ id: i, name: `Product ${i}`, price: 9.99, tags: ['a', 'b'] });

type App = Awaited<ReturnType<typeof NestFactory.createApplicationContext>>;

async function appWith(
  options: CacheModuleOptions,
  providers: Array<new (...args: never[]) => unknown> = [],
): Promise<App> {
  @Module({ imports: [CacheModule.forRoot(options)], providers })
  class LoadingBenchModule {}
  const app = await NestFactory.createApplicationContext(LoadingBenchModule, { logger: false });
  await app.init();
  // With `l1`, the L1 is not read until the bus is subscribed: wait for it.
  const stack = app.get(CacheStack, { strict: false });
  for (let waited = 0; stack.busState === 'deaf'; waited += 10) {
    if (waited >= 10_000) throw new Error('loading: the bus did not subscribe within 10 s');
    await sleep(10);
  }
  return app;
}

/** What the backend holds for `key`, once the background write of a load has landed. */
async function storedEntry(app: App, key: string): Promise<unknown> {
  const adapter = app.get(CacheAdapter);
  for (let waited = 0; waited < 10_000; waited += 10) {
    const stored = await adapter.get(key);
    if (stored !== undefined) return stored;
    await sleep(10);
  }
  throw new Error(`loading: ${JSON.stringify(key)} was not stored within 10 s`);
}

// --- Hits on entries with and without metadata ---------------------------------------------------

const N = 1000;
const ids = Array.from({ length: N }, (_, i) => i);

/** The same lookup three ways: a plain entry, one written with grace, one with refreshAhead. */
@Injectable()
class Catalog {
  loads = 0;

  @Cacheable('plain:{id}')
  plain(id: number): Promise<ReturnType<typeof value>> {
    this.loads++;
    return Promise.resolve(value(id));
  }

  @Cacheable('grace:{id}', { grace: 60 })
  graced(id: number): Promise<ReturnType<typeof value>> {
    this.loads++;
    return Promise.resolve(value(id));
  }

  @Cacheable('ahead:{id}', { refreshAhead: 0.9 })
  ahead(id: number): Promise<ReturnType<typeof value>> {
    this.loads++;
    return Promise.resolve(value(id));
  }
}

interface WrapKind {
  name: string;
  prefix: string;
  /** `undefined`: `wrap(key, loader)`; otherwise the per-call options. */
  options?: WrapOptions<unknown>;
  /** Whether the stored entry is an envelope (checked before measuring). */
  sealed: boolean;
  /** `true`: in the application whose module sets `grace: 60`. */
  moduleGrace?: boolean;
  /** Shown to split a cost, not a target. */
  reference?: boolean;
}

const WRAP_KINDS: WrapKind[] = [
  { name: 'plain entry: wrap(key, loader)', prefix: 'plain', sealed: false },
  {
    name: 'grace entry: wrap(key, loader, { grace: 60 })',
    prefix: 'grace',
    options: { grace: 60 },
    sealed: true,
  },
  {
    name: 'refreshAhead entry: wrap(key, loader, { refreshAhead: 0.9 })',
    prefix: 'ahead',
    options: { refreshAhead: 0.9 },
    sealed: true,
  },
  {
    name: 'grace entry, module grace: 60: wrap(key, loader)',
    prefix: 'mgrace',
    sealed: true,
    moduleGrace: true,
  },
  {
    name: 'reference: plain entry, wrap(key, loader, { ttl: 300 })',
    prefix: 'plain',
    options: { ttl: 300 },
    sealed: false,
    reference: true,
  },
  {
    name: 'reference: plain entry, wrap(key, loader, { grace: 60 })',
    prefix: 'pgrace',
    options: { grace: 60 },
    sealed: false,
    reference: true,
  },
];

/**
 * Fills the keys of every kind through `wrap` (as an application would: `pgrace` keys are
 * written plain, with `set`, to split the cost of the options from the cost of the envelope),
 * then checks how they are stored.
 */
async function fill(apps: { base: App; graced: App }, kinds: WrapKind[]): Promise<void> {
  for (const kind of kinds) {
    const app = kind.moduleGrace ? apps.graced : apps.base;
    const cache = app.get(CacheService);
    for (const id of ids) {
      const key = `${kind.prefix}:${id}`;
      if (kind.prefix === 'pgrace') await cache.set(key, value(id));
      else await cache.wrap(key, () => value(id), kind.options);
    }
    const stored = await storedEntry(app, `${kind.prefix}:${N - 1}`);
    if (isSealed(stored) !== kind.sealed) {
      throw new Error(`loading: ${kind.name} is ${kind.sealed ? 'not ' : ''}stored in an envelope`);
    }
  }
}

/** `wrap` hits on every kind of entry, in two applications: `grace` unset and `grace: 60`. */
async function wrapHits(
  ctx: BenchContext,
  label: string,
  options: (namespace: string) => CacheModuleOptions,
): Promise<void> {
  const base = await appWith(options('ld-hits'));
  const graced = await appWith({ ...options('ld-hits-grace'), grace: 60 });
  try {
    let loads = 0;
    const load = () => {
      loads++;
      return value(-1);
    };
    await fill({ base, graced }, WRAP_KINDS);
    const measured = await interleave(
      WRAP_KINDS.map((kind): Contender => {
        const cache = (kind.moduleGrace ? graced : base).get(CacheService);
        return {
          name: kind.name,
          run: async (ops) => {
            for (let i = 0; i < ops; i++) {
              await cache.wrap(`${kind.prefix}:${ids[i % N]}`, load, kind.options);
            }
          },
        };
      }),
      { rounds: ctx.rounds, roundMs: ctx.roundMs },
    );
    if (loads > 0) throw new Error(`loading: wrap ran its loader ${loads} times on hits`);
    ctx.log(`### ${label}: CacheService.wrap hits, 1 k keys, object values, one caller`);
    ctx.table(
      ['entry and call', 'ops/s', '÷ plain wrap(key, loader)'],
      measured.map((m) => [
        m.name,
        formatOps(m.opsPerSec),
        ratio(m.opsPerSec, measured[0].opsPerSec),
      ]),
    );
    // The metadata's cost, call for call: an entry with metadata against a plain entry read by
    // the same call (per-call options cost the same whichever entry they read: see the
    // reference rows).
    const sameCall = WRAP_KINDS.findIndex((kind) => kind.prefix === 'pgrace');
    WRAP_KINDS.forEach((kind, i) => {
      if (i === 0 || kind.reference) return;
      const baseline = kind.options === undefined ? 0 : sameCall;
      ctx.target(
        `${label} wrap hit, ${kind.name.split(':')[0]} vs a plain entry, same call`,
        measured[i].opsPerSec / measured[baseline].opsPerSec,
        0.8,
      );
    });
  } finally {
    await Promise.all([base.close(), graced.close()]);
  }
}

async function cacheableHits(ctx: BenchContext): Promise<void> {
  const app = await appWith({ ttl: 300 }, [Catalog]);
  try {
    const catalog = app.get(Catalog);
    for (const id of ids) {
      await catalog.plain(id);
      await catalog.graced(id);
      await catalog.ahead(id);
    }
    if (
      isSealed(await storedEntry(app, `plain:${N - 1}`)) ||
      !isSealed(await storedEntry(app, `grace:${N - 1}`)) ||
      !isSealed(await storedEntry(app, `ahead:${N - 1}`))
    ) {
      throw new Error('loading: @Cacheable entries are not stored as expected');
    }
    catalog.loads = 0;
    const method = (name: string, call: (id: number) => Promise<unknown>): Contender => ({
      name,
      run: async (ops) => {
        for (let i = 0; i < ops; i++) await call(ids[i % N]);
      },
    });
    const measured = await interleave(
      [
        method("@Cacheable('plain:{id}')", (id) => catalog.plain(id)),
        method("@Cacheable('grace:{id}', { grace: 60 })", (id) => catalog.graced(id)),
        method("@Cacheable('ahead:{id}', { refreshAhead: 0.9 })", (id) => catalog.ahead(id)),
      ],
      { rounds: ctx.rounds, roundMs: ctx.roundMs },
    );
    if (catalog.loads > 0)
      throw new Error(`loading: @Cacheable ran ${catalog.loads} times on hits`);
    ctx.log('### Memory: @Cacheable hits on a service method, 1 k keys');
    ctx.table(
      ['method', 'ops/s', '÷ plain @Cacheable'],
      measured.map((m) => [
        m.name,
        formatOps(m.opsPerSec),
        ratio(m.opsPerSec, measured[0].opsPerSec),
      ]),
    );
    ctx.target(
      '@Cacheable hit, grace entry vs plain',
      measured[1].opsPerSec / measured[0].opsPerSec,
      0.8,
    );
    ctx.target(
      '@Cacheable hit, refreshAhead entry vs plain',
      measured[2].opsPerSec / measured[0].opsPerSec,
      0.8,
    );
  } finally {
    await app.close();
  }
}

// --- Cold misses on Redis: what the lock adds --------------------------------------------------

/** One command as the instrumented client saw it: sequence numbers of its send and its reply. */
interface Sent {
  name: string;
  /** The arguments as text (keys, payloads), to tell which call a command belongs to. */
  args: string[];
  sent: number;
  replied?: number;
}

/** Records every command `client` sends, in `sent`, ordered by one sequence counter. */
class CommandLog {
  readonly sent: Sent[] = [];
  private seq = 0;

  constructor(client: Redis) {
    const send = client.sendCommand.bind(client);
    client.sendCommand = (command: Command, stream?: Parameters<Redis['sendCommand']>[1]) => {
      const args = command.args.map((arg) => (typeof arg === 'string' ? arg : String(arg)));
      const entry: Sent = { name: command.name, args, sent: this.next() };
      this.sent.push(entry);
      const done = () => {
        entry.replied = this.next();
      };
      command.promise.then(done, done);
      return send(command, stream);
    };
  }

  next(): number {
    return ++this.seq;
  }

  /**
   * Round trips the caller of one operation on `key` waited for: the commands about `key` sent
   * from `from` (an index into `sent`) whose replies came before the caller resumed (`resumed`),
   * counted in waves: a command sent before any reply of the wave in progress rides with it (one
   * round trip), one sent after a reply it may depend on starts the next wave. Commands about
   * other keys (the previous call's background write and release) are left out.
   */
  callerRoundTrips(
    key: string,
    from: number,
    resumed: number,
  ): { trips: number; commands: number } {
    const waves = new Map<Sent, number>();
    let trips = 0;
    let commands = 0;
    for (const command of this.sent.slice(from)) {
      if (command.sent > resumed) break;
      if (!command.args.some((arg) => arg.includes(key))) continue;
      let wave = 1;
      for (const [before, w] of waves) {
        if (before.replied !== undefined && before.replied < command.sent)
          wave = Math.max(wave, w + 1);
      }
      waves.set(command, wave);
      if (command.replied !== undefined && command.replied < resumed) {
        trips = Math.max(trips, wave);
        commands++;
      }
    }
    return { trips, commands };
  }
}

async function commandStats(admin: Redis): Promise<Map<string, number>> {
  const text = await admin.info('commandstats');
  const calls = new Map<string, number>();
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    calls.set(match[1], Number(match[2]));
  }
  return calls;
}

/** Commands of the server that are not the cache's: this bench's own, heartbeats, handshakes. */
const NOT_OURS = new Set([
  'info',
  'ping',
  'client',
  'select',
  'subscribe',
  'hello',
  'command',
  'config',
]);

interface ColdContender {
  name: string;
  options: Omit<CacheModuleOptions, 'redis'>;
  wrap?: WrapOptions<unknown>;
}

interface ColdResult {
  name: string;
  rounds: number[];
  latencies: number[];
  /** Latencies of cold misses 1 ms apart: no background work of the previous one in the way. */
  spaced: number[];
  trips: number[];
  awaited: number[];
  /** Commands the application's client sent. */
  sent: number;
  /** Calls per command as the server counts them. */
  commands: Map<string, number>;
  misses: number;
}

async function coldMisses(ctx: BenchContext): Promise<void> {
  const size = ctx.quick ? 200 : 1000;
  const rounds = ctx.quick ? 2 : 7;
  const contenders: ColdContender[] = [
    { name: 'redis: wrap', options: { provider: 'redis', namespace: 'ld-plain' } },
    {
      name: 'redis: wrap { lock: true }',
      options: { provider: 'redis', namespace: 'ld-lock' },
      wrap: { lock: true },
    },
    { name: 'redis + l1: wrap', options: { provider: 'redis', namespace: 'ld-l1', l1: true } },
    {
      name: 'redis + l1: wrap { lock: true }',
      options: { provider: 'redis', namespace: 'ld-l1lock', l1: true },
      wrap: { lock: true },
    },
  ];
  const admin = new Redis(ctx.url);
  const raw = new Redis(ctx.url);
  const clients: Redis[] = [];
  const apps: App[] = [];
  try {
    const setups = [];
    for (const c of contenders) {
      // The application's own client, so its commands can be followed (the module uses a given
      // client as it is; ioredis defaults otherwise).
      const client = new Redis(ctx.url);
      clients.push(client);
      const log = new CommandLog(client);
      const app = await appWith({ ...c.options, ttl: 300, redis: { client } });
      apps.push(app);
      setups.push({ contender: c, cache: app.get(CacheService), log });
    }
    const results: ColdResult[] = contenders.map((c) => ({
      name: c.name,
      rounds: [],
      latencies: [],
      spaced: [],
      trips: [],
      awaited: [],
      sent: 0,
      commands: new Map(),
      misses: 0,
    }));
    const rawLatencies: number[] = [];
    const rawSpaced: number[] = [];
    const spacedSize = ctx.quick ? 50 : 200;
    // Round -1 warms up (JIT, connections) and is not recorded.
    for (let round = -1; round < rounds; round++) {
      for (let n = 0; n < setups.length; n++) {
        const index = (n + Math.max(round, 0)) % setups.length;
        const { contender, cache, log } = setups[index];
        const result = results[index];
        // Ending with '.', so no key is a substring of another (`cold:1:5.`, `cold:1:50.`).
        const keys = Array.from({ length: size }, (_, i) => `cold:${round + 1}:${i}.`);
        let loads = 0;
        const before = await commandStats(admin);
        const sentBefore = log.sent.length;
        const latencies: number[] = [];
        const trips: number[] = [];
        const awaited: number[] = [];
        const started = process.hrtime.bigint();
        for (let i = 0; i < keys.length; i++) {
          const from = log.sent.length;
          const t = process.hrtime.bigint();
          await cache.wrap(
            keys[i],
            () => {
              loads++;
              return value(i);
            },
            contender.wrap,
          );
          latencies.push(Number(process.hrtime.bigint() - t) / 1e3);
          const path = log.callerRoundTrips(keys[i], from, log.next());
          trips.push(path.trips);
          awaited.push(path.commands);
        }
        const seconds = Number(process.hrtime.bigint() - started) / 1e9;
        await sleep(200); // the writes and lock releases go on in the background
        const after = await commandStats(admin);
        const sent = log.sent.length - sentBefore;
        // Then cold misses 1 ms apart: the caller's path alone, without the previous call's
        // background write and release ahead of it on the connection.
        const spaced: number[] = [];
        for (let i = 0; i < spacedSize; i++) {
          const t = process.hrtime.bigint();
          await cache.wrap(
            `spaced:${round + 1}:${i}.`,
            () => {
              loads++;
              return value(i);
            },
            contender.wrap,
          );
          spaced.push(Number(process.hrtime.bigint() - t) / 1e3);
          await sleep(1);
        }
        if (loads !== keys.length + spacedSize) {
          throw new Error(
            `loading: ${contender.name} ran ${loads} loads for ${keys.length + spacedSize} cold keys`,
          );
        }
        // A raw GET round trip between batches, back to back and 1 ms apart: the unit the extra
        // latency is counted in.
        for (let i = 0; i < 200; i++) {
          const t = process.hrtime.bigint();
          await raw.get(`cold:raw:${i}`);
          if (round >= 0) rawLatencies.push(Number(process.hrtime.bigint() - t) / 1e3);
        }
        for (let i = 0; i < spacedSize; i++) {
          const t = process.hrtime.bigint();
          await raw.get(`cold:raw:${i}`);
          if (round >= 0) rawSpaced.push(Number(process.hrtime.bigint() - t) / 1e3);
          await sleep(1);
        }
        if (round < 0) continue;
        result.spaced.push(...spaced);
        for (const key of keys.slice(0, 20))
          if ((await cache.get(key)) === undefined) result.misses++;
        result.rounds.push(keys.length / seconds);
        result.sent += sent;
        result.latencies.push(...latencies);
        result.trips.push(...trips);
        result.awaited.push(...awaited);
        for (const [name, calls] of after) {
          if (NOT_OURS.has(name)) continue;
          const delta = calls - (before.get(name) ?? 0);
          if (delta > 0) result.commands.set(name, (result.commands.get(name) ?? 0) + delta);
        }
      }
    }
    const misses = rounds * size;
    const rtt = percentile(rawLatencies, 50);
    const rttSpaced = percentile(rawSpaced, 50);
    const p50 = (r: ColdResult) => percentile(r.latencies, 50);
    const spacedP50 = (r: ColdResult) => percentile(r.spaced, 50);
    const breakdown = (r: ColdResult) =>
      [...r.commands.entries()]
        .sort((a, b) => b[1] - a[1])
        .map(([name, calls]) => `${name} ${(calls / misses).toFixed(2)}`)
        .join(', ');
    const trips = (r: ColdResult) => median(r.trips);
    ctx.log(
      `### Redis cold misses: ${size} new keys per round, one caller, a loader that resolves at once; ${rounds} rounds`,
    );
    ctx.log(
      `- commands sent: by the application's Redis client over the ${misses} cold misses and their background writes and releases, per miss; ` +
        'server commandstats: INFO commandstats deltas over the same, which also count the GET and DEL run inside the release script (one EVAL on the wire)',
    );
    ctx.log(
      '- caller-path round trips: of the commands sent for a call, those whose replies came before the call resolved, in dependent waves (commands sent together ride one trip); median per call',
    );
    ctx.log(
      `- then ${spacedSize} more cold misses per round 1 ms apart (no background work of the previous call in the way; the CPU idles in between, so round trips are slower)`,
    );
    ctx.log(
      `- a raw ioredis GET round trip, measured between batches: p50 ${rtt.toFixed(0)} µs back to back, ${rttSpaced.toFixed(0)} µs 1 ms apart`,
    );
    ctx.log();
    const rows: string[][] = [];
    for (let i = 0; i < results.length; i++) {
      const r = results[i];
      const base = results[i - (i % 2)]; // the unlocked row of the same backend
      rows.push([
        r.name,
        formatOps(median(r.rounds)),
        `${p50(r).toFixed(0)} / ${percentile(r.latencies, 99).toFixed(0)}`,
        spacedP50(r).toFixed(0),
        (r.sent / misses).toFixed(2),
        breakdown(r),
        `${trips(r)} (${median(r.awaited)} commands)`,
        r === base ? '' : `+${trips(r) - trips(base)}`,
        r === base
          ? ''
          : `+${((p50(r) - p50(base)) / rtt).toFixed(2)}; +${((spacedP50(r) - spacedP50(base)) / rttSpaced).toFixed(2)}`,
        String(r.misses),
      ]);
    }
    ctx.table(
      [
        'contender',
        'cold misses/s',
        'p50 / p99 µs',
        'p50 µs, 1 ms apart',
        'commands sent per miss',
        'server commandstats per miss',
        'caller-path round trips',
        'extra round trips (lock)',
        'extra p50 in raw GET round trips (back to back; 1 ms apart)',
        'reads missing after (of 20/round)',
      ],
      rows,
    );
    for (const i of [1, 3]) {
      const extra = trips(results[i]) - trips(results[i - 1]);
      ctx.check(
        `${results[i].name}: extra round trips on the caller's path ≤ 1`,
        `+${extra}`,
        extra <= 1,
      );
    }
  } finally {
    await Promise.all(apps.map((app) => app.close()));
    await Promise.all([...clients, admin, raw].map((client) => client.quit()));
  }
}

// --- The scenario -------------------------------------------------------------------------------

/** Runs the loading scenario: its tables go to `ctx.log`, its targets to `ctx.target`/`check`. */
export async function loadingScenario(ctx: BenchContext): Promise<void> {
  ctx.log('## Loading options: hits on entries with grace or refreshAhead; cold misses with lock');
  ctx.log(
    '- grace and refreshAhead entries are stored in an envelope (value, expiry, refresh point); plain entries stay plain',
  );
  ctx.log();
  await wrapHits(ctx, 'Memory', () => ({ ttl: 300 }));
  await cacheableHits(ctx);
  await wrapHits(ctx, 'Redis + l1 (L1 hits)', (namespace) => ({
    provider: 'redis',
    redis: { url: ctx.url },
    namespace,
    ttl: 300,
    l1: true,
  }));
  await coldMisses(ctx);
}
