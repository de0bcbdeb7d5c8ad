import { Redis } from 'ioredis';
import { eventually } from '../support/eventually';
import {
  Fleet,
  summarize,
  type FleetCacheOptions,
  type FleetCommands,
  type Json,
  type StormLock,
  type StormResult,
  type StormVariant,
} from '../support/fleet';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/**
 * Issue 13, item 4: one loader across instances. Four real Node processes, each its own Nest
 * application on one Redis, fire 250 concurrent calls each on one cold key, through
 * `CacheService.wrap` and through a `@Cacheable` method, with `lock`. The loader counts its runs
 * with `INCR` on a separate Redis (so runs are counted across processes, and still counted when
 * the cache's Redis is down). Asserted: how many times the loader ran in total and what every
 * caller got; a control without the lock shows the count can be wrong. Waiting times and Redis
 * commands (INFO commandstats, read around a storm) are measured and printed, never asserted,
 * except one generous upper bound where the issue promises one (`lock.wait` when Redis is down).
 */

const PROCESSES = 4;
const CALLERS = 250;

/** The `@Cacheable` methods every child provides (decorator options are fixed per class). */
const CACHEABLE: StormVariant[] = [{ ttl: 60, lock: true }, { ttl: 60 }];
/** Every fleet's storms with a lock use these timings unless a test says otherwise. */
const LOCK: StormLock = true;

/** Counts loader runs (`INCR`); never faulted. */
let counting: RedisServer;
/** The Redis of the plain fleet and of the two-tier one (namespaces side by side). */
let shared: RedisServer;
/** The Redis of the failover fleet. */
let lone: RedisServer;
let counter: Redis;
let raw: Redis;
/** `provider: 'redis'`, no L1: waiters poll Redis. */
let plain: Fleet;
/** `l1: true`: the bus wakes waiters. A namespace that starts with the plain fleet's. */
let twoTier: Fleet;
/** `failover: true` on its own Redis (killed in the fail-open tests). */
let failover: Fleet;
let nsPlain: string;
let nsTwoTier: string;
let nsFailover: string;
let nextCounter = 0;

beforeAll(async () => {
  [counting, shared, lone] = await Promise.all([
    RedisServer.start(),
    RedisServer.start(),
    RedisServer.start(),
  ]);
  counter = new Redis(counting.url, { maxRetriesPerRequest: 1 });
  raw = new Redis(shared.url, { maxRetriesPerRequest: 1 });
  nsPlain = uniqueNamespace('lock');
  // Looks like the plain namespace continued: a sloppy `SCAN nsPlain*` would reach its keys.
  nsTwoTier = `${nsPlain}-l1`;
  nsFailover = uniqueNamespace('lockfo');
  const base = { provider: 'redis', ttl: 300 } as const;
  const options: Array<[FleetCacheOptions, string]> = [
    [{ ...base, redis: { url: shared.url }, namespace: nsPlain }, 'plain'],
    [{ ...base, redis: { url: shared.url }, namespace: nsTwoTier, l1: true }, 'two-tier'],
    [
      {
        ...base,
        redis: { url: lone.url },
        namespace: nsFailover,
        failover: { cooldown: 0.5, failureThreshold: 3 },
      },
      'failover',
    ],
  ];
  const started = Date.now();
  const fleets = await Promise.allSettled(
    options.map(([cache]) => Fleet.start(PROCESSES, { cache, cacheable: CACHEABLE })),
  );
  const booted = fleets.flatMap((f) => (f.status === 'fulfilled' ? [f.value] : []));
  const failed = fleets.find((f): f is PromiseRejectedResult => f.status === 'rejected');
  if (failed) {
    await Promise.all(booted.map((fleet) => fleet.stop()));
    throw failed.reason;
  }
  [plain, twoTier, failover] = booted;
  console.log(
    `fleet-lock: ${options.length} fleets of ${PROCESSES} processes booted in ${Date.now() - started} ms ` +
      `(@nestjs/core ${plain.nest}; clock error <= ` +
      `${Math.max(plain.clockError, twoTier.clockError, failover.clockError).toFixed(3)} ms)`,
  );
}, 120_000);

afterAll(async () => {
  await Promise.all([plain?.stop(), twoTier?.stop(), failover?.stop()]);
  counter?.disconnect();
  raw?.disconnect();
  await Promise.all([counting?.stop(), shared?.stop(), lone?.stop()]);
}, 30_000);

type StormArgs = FleetCommands['storm']['args'];

/** A fresh counter key on the counting Redis. */
function newCounter(): { url: string; key: string } {
  return { url: counting.url, key: `runs:${nextCounter++}` };
}

async function runs(count: { key: string }): Promise<number> {
  return Number((await counter.get(count.key)) ?? 0);
}

/** `storm` on each of `processes` at once; answers in that order. */
function storm(
  fleet: Fleet,
  args: StormArgs,
  processes = Array.from({ length: PROCESSES }, (_v, i) => i),
): Promise<StormResult[]> {
  return Promise.all(processes.map((i) => fleet.call(i, 'storm', args, 40_000)));
}

/** Calls of each Redis command so far (`INFO commandstats`). */
async function commandCalls(client: Redis): Promise<Record<string, number>> {
  const text = await client.info('commandstats');
  const calls: Record<string, number> = {};
  for (const match of text.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) {
    calls[match[1]] = Number(match[2]);
  }
  return calls;
}

function delta(before: Record<string, number>, after: Record<string, number>): string {
  return Object.keys(after)
    .filter((name) => name !== 'info' && after[name] !== (before[name] ?? 0))
    .sort()
    .map((name) => `${name} ${after[name] - (before[name] ?? 0)}`)
    .join(', ');
}

/** The one process whose loader ran in a locked storm (-1 if not exactly one). */
function holderOf(results: StormResult[]): number {
  const loaders = results.flatMap((r, i) => (r.loaderCalls > 0 ? [i] : []));
  return loaders.length === 1 ? loaders[0] : -1;
}

function describeStorm(results: StormResult[]): string {
  return results
    .map(
      (r, i) =>
        `  process ${i}: ${r.durationMs.toFixed(1)} ms, loader ${r.loaderCalls}x` +
        (r.loadStartedAt === undefined
          ? ''
          : ` (from +${(r.loadStartedAt - r.startedAt).toFixed(1)} ms)`) +
        `, statuses ` +
        `${JSON.stringify(r.statuses)}, values ${JSON.stringify(r.values)}` +
        (r.errors ? `, ${r.errors} errors (${r.firstError})` : ''),
    )
    .join('\n');
}

/** Every caller of every process got `expected`. */
function expectEveryCaller(results: StormResult[], expected: Json, callers = CALLERS): void {
  expect(results.map((r) => r.firstError ?? r.errors)).toEqual(results.map(() => 0));
  expect(results.map((r) => r.values)).toEqual(results.map(() => [{ value: expected, callers }]));
}

/** Waits until each process writes through to `server` again (reconnected, circuit closed). */
async function healthy(fleet: Fleet, namespace: string, server: RedisServer): Promise<void> {
  const probe = new Redis(server.url, { maxRetriesPerRequest: 1 });
  let round = 0;
  try {
    await eventually(async () => {
      const keys = fleet.pids.map((_p, i) => `probe:${round}:${i}`);
      round++;
      await Promise.all(keys.map((key, i) => fleet.call(i, 'set', { key, value: i })));
      return (await probe.exists(...keys.map((k) => `${namespace}:${k}`))) === keys.length;
    }, 20_000);
  } finally {
    probe.disconnect();
  }
}

/** Every key of the shared Redis matching `pattern` (SCAN). */
async function scan(pattern: string): Promise<string[]> {
  const found: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await raw.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    found.push(...keys);
    cursor = next;
  } while (cursor !== '0');
  return found.sort();
}

/** The lock keys of `namespace` on the shared Redis. */
function locksOf(namespace: string): Promise<string[]> {
  return scan(`${namespace}#lock:*`);
}

describe(`a lock across ${PROCESSES} processes x ${CALLERS} callers on one cold key`, () => {
  it.each<['wrap' | 'cacheable']>([['wrap'], ['cacheable']])(
    'runs the loader once in total and answers every caller with its value (via %s)',
    async (via) => {
      const count = newCounter();
      const key = `cold:${via}`;
      const results = await storm(plain, {
        key,
        callers: CALLERS,
        via,
        value: `v-${via}`,
        ttl: 60,
        lock: LOCK,
        loaderMs: 300,
        counter: count,
      });
      console.log(`lock via ${via}: ${await runs(count)} loader run(s)\n${describeStorm(results)}`);
      expect(await runs(count)).toBe(1);
      const holder = holderOf(results);
      expect(holder).toBeGreaterThanOrEqual(0);
      expectEveryCaller(results, { value: `v-${via}`, by: holder, pid: plain.pids[holder] });
      // The holder's callers: one load, the rest shared it; everyone else read the stored value.
      expect(results.map((r) => r.statuses)).toEqual(
        results.map((_r, i) =>
          i === holder ? { miss: 1, shared: CALLERS - 1 } : { hit: CALLERS },
        ),
      );
      expect(JSON.parse((await raw.get(`${nsPlain}:${key}`)) ?? 'null')).toEqual({
        value: `v-${via}`,
        by: holder,
        pid: plain.pids[holder],
      });
    },
  );

  it.each<['wrap' | 'cacheable']>([['wrap'], ['cacheable']])(
    'control: without the lock every process runs the loader (via %s)',
    async (via) => {
      const count = newCounter();
      const gate = `control-${via}`;
      const running = storm(plain, {
        key: `control:${via}`,
        callers: CALLERS,
        via,
        value: 'v',
        ttl: 60,
        gate,
        counter: count,
      });
      // Every process's loader is running before any returns: nothing is stored yet, so no
      // process can have read another's value. Without a lock, nothing stops the four loads.
      await Promise.all(plain.pids.map((_p, i) => plain.call(i, 'gate', { gate })));
      await plain.all('release', { gate });
      const results = await running;
      console.log(
        `no lock via ${via}: ${await runs(count)} loader runs\n${describeStorm(results)}`,
      );
      expect(await runs(count)).toBe(PROCESSES);
      expect(results.map((r) => r.loaderCalls)).toEqual(results.map(() => 1));
      results.forEach((r, i) =>
        expect(r.values).toEqual([
          { value: { value: 'v', by: i, pid: plain.pids[i] }, callers: CALLERS },
        ]),
      );
    },
  );

  it('wakes waiters by polling (plain Redis) or by the bus (l1), measured', async () => {
    const lines: string[] = [];
    for (const [label, fleet] of [
      ['polling (no l1)', plain],
      ['bus (l1: true)', twoTier],
    ] as const) {
      const count = newCounter();
      const before = await commandCalls(raw);
      const results = await storm(fleet, {
        key: 'woken',
        callers: CALLERS,
        via: 'wrap',
        value: label,
        ttl: 60,
        lock: LOCK,
        loaderMs: 300,
        counter: count,
      });
      const after = await commandCalls(raw);
      expect(await runs(count)).toBe(1);
      const holder = holderOf(results);
      expect(holder).toBeGreaterThanOrEqual(0);
      expectEveryCaller(results, { value: label, by: holder, pid: fleet.pids[holder] });
      const loaded = fleet.toParent(holder, results[holder].loadDoneAt ?? NaN);
      const waited = results.flatMap((r, i) =>
        i === holder ? [] : r.settledAt.map((at) => fleet.toParent(i, at) - loaded),
      );
      const s = summarize(waited);
      const gets = (after.get ?? 0) - (before.get ?? 0);
      const ms = (n: number) => `${n.toFixed(1)} ms`;
      lines.push(
        `  ${label}: waiters settled after the loader returned: p50 ${ms(s.p50)}, p99 ${ms(s.p99)}, ` +
          `max ${ms(s.max)}, min ${ms(s.min)} (n=${s.count}); storm ` +
          `${ms(Math.max(...results.map((r) => r.durationMs)))}; Redis commands: ` +
          `GET ${gets} (${gets - PROCESSES * CALLERS} beyond one per caller; all: ${delta(before, after)})`,
      );
    }
    console.log(
      `lock waiters (${PROCESSES} processes x ${CALLERS} callers, loader 300 ms; clock error <= ` +
        `${Math.max(plain.clockError, twoTier.clockError).toFixed(3)} ms):\n${lines.join('\n')}`,
    );
  });

  it('keeps lock keys apart from user keys and from other namespaces', async () => {
    // User keys named like lock keys, in the plain namespace: the lock of `g` must not be one of
    // them (or a lock taken would overwrite a user value, or a user value would hold the lock).
    const userKeys = ['#lock:g', `${nsTwoTier}#lock:g`, `#lock:#lock:g`, 'g#lock:'];
    for (const key of userKeys) await plain.call(0, 'set', { key, value: `user ${key}` });
    for (const key of ['g', '#lock:g']) {
      const count = newCounter();
      const results = await storm(plain, {
        key,
        callers: CALLERS,
        via: 'wrap',
        value: `loaded ${key}`,
        ttl: 60,
        lock: { ttl: 10, wait: 5 },
        loaderMs: 100,
        counter: count,
      });
      if (key === '#lock:g') {
        // A user key named `#lock:g` holds a user value: a hit, nobody loads.
        expect(await runs(count)).toBe(0);
        expectEveryCaller(results, `user ${key}`);
      } else {
        expect(await runs(count)).toBe(1);
        const holder = holderOf(results);
        expectEveryCaller(results, { value: `loaded ${key}`, by: holder, pid: plain.pids[holder] });
      }
    }
    // A cold key named like a lock, and the key whose lock that would be, loaded one after the other.
    await plain.call(0, 'delete', { key: '#lock:g' });
    await plain.call(0, 'delete', { key: 'g' });
    for (const key of ['#lock:g', 'g']) {
      const count = newCounter();
      const results = await storm(plain, {
        key,
        callers: CALLERS,
        via: 'wrap',
        value: `again ${key}`,
        ttl: 60,
        lock: { ttl: 10, wait: 5 },
        loaderMs: 100,
        counter: count,
      });
      expect(await runs(count)).toBe(1);
      const holder = holderOf(results);
      expectEveryCaller(results, { value: `again ${key}`, by: holder, pid: plain.pids[holder] });
    }
    for (const key of userKeys.filter((k) => k !== '#lock:g')) {
      expect(await plain.call(3, 'get', { key })).toEqual({ hit: true, value: `user ${key}` });
    }
    // Every lock is released once its value is stored (in the background: polled).
    await eventually(async () => (await locksOf(nsPlain)).length === 0, 5000);

    // Locks held in both namespaces; `clear` and `deleteByPrefix` of either leave the other's.
    const gate = 'held';
    const holding = [plain, twoTier].map((fleet) =>
      fleet.call(0, 'storm', {
        key: 'held',
        callers: 1,
        via: 'wrap',
        value: 'held',
        ttl: 60,
        lock: { ttl: 20, wait: 5 },
        gate,
      }),
    );
    await Promise.all([plain, twoTier].map((fleet) => fleet.call(0, 'gate', { gate })));
    const tokens = async () =>
      Promise.all([nsPlain, nsTwoTier].map((ns) => raw.get(`${ns}#lock:held`)));
    const held = await tokens();
    expect(held.every((token) => typeof token === 'string')).toBe(true);
    await twoTier.call(1, 'clear', {});
    await twoTier.call(1, 'deleteByPrefix', { prefix: '' });
    expect(await tokens()).toEqual(held);
    await plain.call(1, 'deleteByPrefix', { prefix: '#lock' });
    expect(await raw.exists(`${nsPlain}:#lock:g`)).toBe(0); // the user key went
    expect(await tokens()).toEqual(held); // the locks did not
    await plain.call(1, 'clear', {});
    expect(await tokens()).toEqual(held);
    expect(await scan(`${nsPlain}:*`)).toEqual([]);
    await Promise.all([plain, twoTier].map((fleet) => fleet.call(0, 'release', { gate })));
    const [mine, theirs] = await Promise.all(holding);
    expect(mine.values).toEqual([
      { value: { value: 'held', by: 0, pid: plain.pids[0] }, callers: 1 },
    ]);
    expect(theirs.values).toEqual([
      { value: { value: 'held', by: 0, pid: twoTier.pids[0] }, callers: 1 },
    ]);
    await eventually(
      async () => (await locksOf(nsPlain)).length + (await locksOf(nsTwoTier)).length === 0,
      5000,
    );
  });

  it('releases only its own lock: a holder whose lock expired leaves its successor the lock', async () => {
    const key = 'expired-holder';
    const lockKey = `${nsPlain}#lock:${key}`;
    const args: StormArgs = { key, callers: 1, via: 'wrap', value: 'first', ttl: 60 };
    // Process 0 holds a 1 s lock and is still loading when it expires.
    const first = plain.call(0, 'storm', { ...args, lock: { ttl: 1, wait: 10 }, gate: 'slow' });
    await plain.call(0, 'gate', { gate: 'slow' });
    const expiredToken = await raw.get(lockKey);
    expect(expiredToken).not.toBeNull();
    await eventually(async () => (await raw.exists(lockKey)) === 0, 10_000, 20);
    // Process 1 takes the lock over (a long one) and loads.
    const second = plain.call(1, 'storm', {
      ...args,
      value: 'second',
      lock: { ttl: 30, wait: 10 },
      gate: 'next',
    });
    await plain.call(1, 'gate', { gate: 'next' });
    const token = await raw.get(lockKey);
    expect(token).not.toBeNull();
    expect(token).not.toBe(expiredToken);
    // Process 0 finishes, stores and releases: its release must not delete process 1's lock.
    const before = await commandCalls(raw);
    await plain.call(0, 'release', { gate: 'slow' });
    expect((await first).values).toEqual([
      { value: { value: 'first', by: 0, pid: plain.pids[0] }, callers: 1 },
    ]);
    // Its release (a Lua compare-and-delete, EVAL) has run, or the lock has gone some other way.
    await eventually(
      async () =>
        ((await commandCalls(raw)).eval ?? 0) > (before.eval ?? 0) ||
        (await raw.get(lockKey)) !== token,
      10_000,
      10,
    );
    expect(await raw.get(lockKey)).toBe(token);
    await plain.call(1, 'release', { gate: 'next' });
    expect((await second).loaderCalls).toBe(1);
    await eventually(async () => (await raw.exists(lockKey)) === 0, 5000);
  });

  type Fault = 'freeze' | 'kill';
  it.each<['plain redis' | 'failover', Fault]>([
    ['plain redis', 'freeze'],
    ['plain redis', 'kill'],
    ['failover', 'freeze'],
    ['failover', 'kill'],
  ])(
    'fails open when Redis is down (%s, Redis %s): each process loads once, nobody waits past lock.wait',
    async (mode, fault) => {
      const [fleet, server, namespace] =
        mode === 'failover' ? [failover, lone, nsFailover] : ([plain, shared, nsPlain] as const);
      const wait = 1;
      const count = newCounter();
      const calls = await fleet.all('stats', {});
      if (fault === 'freeze') server.freeze();
      else await server.kill();
      let results: StormResult[];
      try {
        results = await storm(fleet, {
          key: `down:${fault}`,
          callers: CALLERS,
          via: 'wrap',
          value: 'local',
          ttl: 60,
          lock: { ttl: 10, wait },
          loaderMs: 50,
          counter: count,
        });
      } finally {
        if (fault === 'freeze') server.thaw();
        else await server.restart();
      }
      const stats = await fleet.all('stats', {});
      console.log(
        `fail open (${mode}, Redis ${fault}): ${await runs(count)} loader runs; failures logged ` +
          `${stats.map((s, i) => s.failures - calls[i].failures).join(', ')}\n${describeStorm(results)}`,
      );
      // Redis cannot hand one process's value to another: each loads, once for its 250 callers.
      expect(results.map((r) => r.loaderCalls)).toEqual(results.map(() => 1));
      expect(await runs(count)).toBe(PROCESSES);
      results.forEach((r, i) =>
        expect(r.values).toEqual([
          { value: { value: 'local', by: i, pid: fleet.pids[i] }, callers: CALLERS },
        ]),
      );
      expect(results.map((r) => r.errors)).toEqual(results.map(() => 0));
      // An upper bound only, with a wide margin for a loaded machine (the read before the lock
      // may itself take the client's command timeout, 1 s).
      for (const r of results) expect(r.durationMs).toBeLessThan(wait * 1000 + 5000);
      await healthy(fleet, namespace, server);
      if (server === shared)
        await eventually(() =>
          raw.ping().then(
            () => true,
            () => false,
          ),
        );
    },
    60_000,
  );

  it('takes over after the lock TTL when its holder is killed mid-load', async () => {
    const count = newCounter();
    const key = 'orphaned';
    const args: StormArgs = {
      key,
      callers: CALLERS,
      via: 'wrap',
      value: 'survivor',
      ttl: 60,
      lock: { ttl: 1, wait: 10 },
      // Far below the lock's TTL: the survivor that takes over stores before its lock expires.
      loaderMs: 20,
      counter: count,
    };
    const victim = PROCESSES - 1;
    const survivors = Array.from({ length: PROCESSES - 1 }, (_v, i) => i);
    const doomed = plain.call(victim, 'storm', { ...args, gate: 'never' }, 40_000).then(
      () => 'answered',
      (error: Error) => error.message,
    );
    await plain.call(victim, 'gate', { gate: 'never' }); // its loader runs: it holds the lock
    const lockKey = `${nsPlain}#lock:${key}`;
    expect(await raw.exists(lockKey)).toBe(1);
    const before = await commandCalls(raw);
    const waiting = storm(plain, args, survivors);
    // Each survivor has tried the lock (SET NX) and found it taken: they wait for the holder.
    await eventually(
      async () => ((await commandCalls(raw)).set ?? 0) - (before.set ?? 0) >= survivors.length,
      10_000,
      5,
    );
    const token = await raw.get(lockKey);
    const killedAt = Date.now();
    await plain.kill(victim, 'SIGKILL');
    const results = await waiting;
    expect(await doomed).toMatch(/exited \(signal SIGKILL\)/);
    expect(token).not.toBeNull(); // the victim's lock was still held when it died
    const holder = holderOf(results);
    console.log(
      `takeover: loader runs ${await runs(count)}; the survivor's loader started ` +
        `${holder >= 0 ? (plain.toParent(holder, results[holder].loadStartedAt ?? NaN) - killedAt).toFixed(0) : '?'} ms ` +
        `after the kill\n${describeStorm(results)}`,
    );
    expect(await runs(count)).toBe(2); // the victim's, then exactly one survivor's
    expect(holder).toBeGreaterThanOrEqual(0);
    expect(survivors).toContain(holder);
    expectEveryCaller(results, { value: 'survivor', by: holder, pid: plain.pids[holder] });
  });
});
