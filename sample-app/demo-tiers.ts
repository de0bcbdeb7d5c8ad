import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';

/**
 * `npm run demo:tiers`: two instances of a Nest app share one Redis, each with its own L1
 * (`CacheModule.forRoot({ provider: 'redis', l1: true })`), and an update in one invalidates the
 * other's L1 through the Redis pub/sub bus. It starts its own `redis-server` on a free loopback
 * port (or uses `CACHE_REDIS_URL`), two instances as child processes (`demo-tiers.instance.ts`),
 * narrates what each read does, and stops everything it started, by pid. It exits non-zero when
 * the cache does not behave as narrated, so it doubles as a smoke check.
 */

const NEW_NAME = 'Ada King';
/** How long B may keep serving the old name after A's update before the demo fails. */
const PROPAGATION_LIMIT_MS = 5000;

/** The demo saw something other than what it narrates. */
class DemoFailure extends Error {}

/** What `GET /users/:id` answers, plus its `X-Cache` header. */
interface UserRead {
  name: string;
  renderedAt: string;
  databaseReads: number;
  cache: string;
  /** When the request was sent (`performance.now()`). */
  sentAt: number;
}

/** A child process this demo started and must stop. */
interface Started {
  label: string;
  child: ChildProcess;
}

const started: Started[] = [];
let workDir: string | undefined;
let redis: Redis | undefined;

function expect(condition: boolean, message: string): void {
  if (!condition) throw new DemoFailure(message);
}

function say(line = ''): void {
  process.stdout.write(`${line}\n`);
}

/** A free TCP port on 127.0.0.1 (the OS picks it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Prefixes each line a child writes, so its logs stay apart from the narration. */
function relay(label: string, child: ChildProcess): void {
  const write = (chunk: Buffer): void => {
    for (const line of chunk.toString().split('\n')) {
      if (line.trim()) process.stderr.write(`    [${label}] ${line}\n`);
    }
  };
  child.stdout?.on('data', write);
  child.stderr?.on('data', write);
}

/** Starts `redis-server` on a free loopback port (another port if that one was taken). */
async function startRedis(): Promise<{ url: string; pid: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      { cwd: workDir, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    started.push({ label: 'redis-server', child });
    const ready = await new Promise<boolean>((resolve, reject) => {
      let output = '';
      const timer = setTimeout(() => resolve(false), 5000);
      child.on('error', (error: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(
          error.code === 'ENOENT'
            ? new DemoFailure(
                'redis-server is not installed (apt-get install redis-server, brew install redis), ' +
                  'or set CACHE_REDIS_URL to a Redis the demo may use.',
              )
            : error,
        );
      });
      child.on('exit', () => {
        clearTimeout(timer);
        resolve(false);
      });
      child.stdout?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve(true);
        }
      });
    });
    if (ready && child.pid !== undefined) {
      return { url: `redis://127.0.0.1:${port}`, pid: child.pid };
    }
    await stop(started.pop()!);
    if (attempt >= 5) throw new DemoFailure('redis-server did not start (5 attempts)');
  }
}

/** Starts one instance (`demo-tiers.instance.ts`) and waits until it listens. */
async function startInstance(label: string, env: NodeJS.ProcessEnv): Promise<string> {
  const child = fork(join(__dirname, 'demo-tiers.instance.ts'), [], {
    cwd: join(__dirname, '..'),
    execArgv: ['-r', 'ts-node/register/transpile-only'],
    env: {
      ...process.env,
      ...env,
      DEMO_NAME: label,
      TS_NODE_PROJECT: join(__dirname, 'tsconfig.json'),
    },
    silent: true,
  });
  started.push({ label: `instance ${label}`, child });
  relay(label, child);
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new DemoFailure(`instance ${label}: no answer`)), 30000);
    child.once('message', (message: { ready?: boolean; port?: number }) => {
      clearTimeout(timer);
      if (message.ready && message.port) resolve(message.port);
      else reject(new DemoFailure(`instance ${label}: unexpected message`));
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new DemoFailure(`instance ${label} exited (code ${code}) before it was ready`));
    });
  });
  return `http://127.0.0.1:${port}`;
}

/** Stops one child by its pid: SIGTERM, then SIGKILL if it has not exited after 5 s. */
async function stop({ child }: Started): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.connected) child.disconnect();
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

let cleaning: Promise<void> | undefined;
let interrupted = false;

/** Stops everything the demo started (instances first, then Redis); safe to call twice. */
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    redis?.disconnect();
    for (const entry of [...started].reverse()) await stop(entry);
    if (workDir) rmSync(workDir, { recursive: true, force: true });
  })();
  return cleaning;
}

async function read(base: string): Promise<UserRead> {
  const sentAt = performance.now();
  const response = await fetch(`${base}/users/1`);
  const body = (await response.json()) as Omit<UserRead, 'cache' | 'sentAt'>;
  expect(response.ok, `GET /users/1 answered ${response.status}`);
  return { ...body, cache: response.headers.get('x-cache') ?? '-', sentAt };
}

function show(label: string, result: UserRead, reads = true): void {
  const database = reads ? `  (${label}'s database reads: ${result.databaseReads})` : '';
  say(`   ${label}  GET /users/1  → "${result.name}"  X-Cache: ${result.cache}${database}`);
}

/** The Redis keys holding user 1's cached payloads. */
async function userKeys(client: Redis, namespace: string): Promise<string[]> {
  const keys: string[] = [];
  let cursor = '0';
  do {
    const [next, batch] = await client.scan(cursor, 'MATCH', `${namespace}:users:userId=1:*`);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return keys;
}

async function demo(): Promise<void> {
  const begin = performance.now();
  workDir = mkdtempSync(join(tmpdir(), 'cachekit-demo-'));
  const database = join(workDir, 'users.json');
  writeFileSync(database, JSON.stringify([{ id: 1, name: 'Ada Lovelace', email: 'ada@x.org' }]));

  say('Two-tier cache demo: an L1 in each process, Redis as L2, a Redis pub/sub bus between them');
  say();
  let url = process.env.CACHE_REDIS_URL;
  if (url) {
    say(`Redis:     ${url} (CACHE_REDIS_URL)`);
  } else {
    const server = await startRedis();
    url = server.url;
    say(`Redis:     started redis-server on ${url} (pid ${server.pid})`);
  }
  // Its own namespace, so a shared Redis (CACHE_REDIS_URL) keeps the demo's keys apart.
  const namespace = `tiers-demo-${process.pid}`;
  const client = new Redis(url, { maxRetriesPerRequest: 2 });
  redis = client;
  const env = { DEMO_REDIS_URL: url, DEMO_NAMESPACE: namespace, DEMO_DB: database };
  say('Starting instances A and B (two Node processes)...');
  const [a, b] = await Promise.all([startInstance('A', env), startInstance('B', env)]);
  say(
    `Instances: A on ${a} (pid ${started.at(-2)?.child.pid}), B on ${b} (pid ${started.at(-1)?.child.pid})`,
  );
  say(`           both: CacheModule.forRoot({ provider: 'redis', l1: true }), one shared database`);
  say();

  say('1. A reads user 1 for the first time.');
  const first = await read(a);
  show('A', first);
  expect(first.cache === 'MISS' && first.databaseReads === 1, 'A should have loaded user 1');
  // The write to Redis is not awaited by the read: give it a moment on a busy machine.
  let keys = await userKeys(client, namespace);
  for (let tries = 0; keys.length === 0 && tries < 20; tries++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    keys = await userKeys(client, namespace);
  }
  expect(keys.length > 0, 'A should have stored user 1 in Redis');
  say("   Miss: A loaded it from the database and stored it in Redis (L2) and in A's L1.");
  say();

  say('2. B reads user 1.');
  const second = await read(b);
  show('B', second);
  expect(second.cache === 'HIT', 'B should have found user 1 in Redis');
  expect(second.databaseReads === 0, 'B should not have read the database');
  expect(second.renderedAt === first.renderedAt, 'B should have served the payload A cached');
  say("   L2 hit: B found A's payload in Redis; B now keeps a copy in its own L1.");
  say();

  say("3. Delete it from Redis behind the cache's back (no bus message):");
  say(`   DEL ${keys.join(' ')}`);
  await client.del(...keys);
  expect((await userKeys(client, namespace)).length === 0, 'the Redis entry should be gone');
  const third = await read(b);
  show('B', third);
  expect(
    third.cache === 'HIT' && third.renderedAt === first.renderedAt && third.databaseReads === 0,
    'B should have answered from its L1',
  );
  say('   L1 hit: Redis no longer has it, so B answered from its own memory.');
  say();

  say(`4. A renames user 1 to "${NEW_NAME}".`);
  const patch = await fetch(`${a}/users/1`, {
    method: 'PATCH',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: NEW_NAME }),
  });
  const saved = performance.now();
  expect(patch.ok, `PATCH /users/1 answered ${patch.status}`);
  say(`   A  PATCH /users/1 {"name":"${NEW_NAME}"}  → ${patch.status}`);
  say("   A saved it; the invalidation rule dropped user 1's payloads from Redis and A's L1,");
  say('   and published the invalidation on the bus.');
  say();

  say('5. B reads user 1 again, until it sees the new name.');
  const since = (result: UserRead): string => `${(result.sentAt - saved).toFixed(1)} ms`;
  let fresh: UserRead | undefined;
  let stale: UserRead | undefined;
  let staleReads = 0;
  while (performance.now() - saved < PROPAGATION_LIMIT_MS) {
    const result = await read(b);
    if (result.name === NEW_NAME) {
      fresh = result;
      break;
    }
    stale = result;
    staleReads++;
  }
  if (!fresh) {
    throw new DemoFailure(
      `B still served "${first.name}" ${PROPAGATION_LIMIT_MS} ms after A's update (${staleReads} reads)`,
    );
  }
  if (stale) {
    const times = staleReads === 1 ? '' : ` (${staleReads} reads, the last sent`;
    say(
      `   B  GET /users/1  → "${stale.name}"  X-Cache: ${stale.cache} ${times || ' (sent'} ` +
        `${since(stale)} after A's PATCH returned: the bus message was still on its way)`,
    );
  }
  show('B', fresh);
  expect(fresh.cache === 'MISS' && fresh.databaseReads === 1, 'B should have reloaded user 1');
  say(
    `   B's read sent ${since(fresh)} after A's PATCH returned got the new name: the bus had ` +
      "dropped user 1 from B's L1, so B loaded the saved user.",
  );
  say();

  say('6. A reads user 1.');
  const last = await read(a);
  show('A', last, false);
  expect(last.name === NEW_NAME, `A should read "${NEW_NAME}" too`);
  say(
    last.cache === 'HIT'
      ? "   L2 hit: A got B's fresh payload from Redis. Both instances agree."
      : "   Neither A's L1 nor Redis had a copy, so A loaded the saved user. Both instances agree.",
  );
  say();

  if (process.env.CACHE_REDIS_URL) {
    const left = await userKeys(client, namespace);
    if (left.length > 0) await client.del(...left);
  }
  say(
    `OK: an update in A invalidated B's L1 (demo took ${((performance.now() - begin) / 1000).toFixed(1)} s).`,
  );
}

async function main(): Promise<void> {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      interrupted = true;
      say(`\n${signal}: stopping what the demo started...`);
      void cleanUp().finally(() => process.exit(130));
    });
  }
  try {
    await demo();
  } catch (error) {
    process.exitCode = 1;
    if (interrupted) return; // the signal handler stops everything and exits
    say();
    say(`FAILED: ${error instanceof DemoFailure ? error.message : String(error)}`);
    if (!(error instanceof DemoFailure)) console.error(error);
  } finally {
    await cleanUp();
    say(`Stopped ${started.map((entry) => entry.label).join(', ')}.`);
  }
}

void main();
