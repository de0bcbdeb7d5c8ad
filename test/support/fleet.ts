import { fork, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import type { CacheModuleOptions } from '../../lib';

/**
 * A fleet of real Node processes, each its own Nest application with `CacheModule.forRoot`,
 * driven from the test process over IPC (issue 12, item 6). The child is `fleet-child.ts`; this
 * file is the parent side and the protocol both sides share.
 *
 * Times: every child reports times on its own clock, `performance.timeOrigin +
 * performance.now()` (milliseconds, sub-millisecond precision). `process.hrtime` is documented
 * as relative to an arbitrary point per process, so it is not used across processes. The
 * children's clocks are still not trusted to agree: {@link Fleet.start} measures each child's
 * offset from the parent's clock NTP-style (the fastest of several IPC round trips; the error is
 * at most half that round trip, reported as {@link Fleet.clockError}) and {@link Fleet.toParent}
 * converts a child's time to the parent's clock.
 */

/** A JSON value, as the children store and report them. */
export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** One read: a hit with its value, or a miss (IPC cannot carry `undefined`). */
export type Read = { hit: true; value: Json } | { hit: false };

/** Cache options a child boots with: plain JSON (they travel in an environment variable). */
export type FleetCacheOptions = Omit<CacheModuleOptions, 'isGlobal'> & {
  l1?: unknown;
  bus?: unknown;
};

/** What a child reports about itself. */
export interface FleetStats {
  pid: number;
  nest: string;
  /** Loader calls of `wrap` and `churn` so far. */
  loaderCalls: number;
  /** Loads in flight in the cache stack. */
  loadsInFlight: number;
  /** Backend failures the stack has logged. */
  failures: number;
  /** Which tiers the stack has (`local`, `remote`, `failover`, ... as the stack names them). */
  tiers: string[];
  /** `CacheStack.busState` when the stack has one (two-tier mode). */
  busState?: string;
  rssBytes: number;
}

/** A kind of call `churn` makes. */
export type ChurnOp = 'get' | 'set' | 'delete' | 'deleteByPrefix' | 'wrap';

/** Counts of what one `churn` did. */
export interface ChurnCounts {
  get: number;
  set: number;
  delete: number;
  deleteByPrefix: number;
  wrap: number;
  loaderCalls: number;
  errors: number;
  firstError?: string;
}

/** A `lock` option as a storm passes it (see {@link FleetCommands.storm}). */
export type StormLock = boolean | { ttl?: number; wait?: number };

/**
 * The options of one `@Cacheable` method a child provides (see {@link FleetOptions.cacheable}):
 * a storm `via: 'cacheable'` calls the method whose options equal its own `ttl` and `lock`.
 */
export interface StormVariant {
  ttl?: number;
  lock?: StormLock;
}

/** What one process's {@link FleetCommands.storm} saw. */
export interface StormResult {
  /** The distinct values the callers resolved, with how many callers got each. */
  values: Array<{ value: Json; callers: number }>;
  /** How the calls answered (`WrapStatus` → callers), as the stack reported it. */
  statuses: Record<string, number>;
  errors: number;
  firstError?: string;
  /** Loader calls of this storm in this process. */
  loaderCalls: number;
  /** What each `INCR` of the counter answered (in this process). */
  counted: number[];
  /** The first `INCR` failure, if any (the loader goes on without counting). */
  countError?: string;
  /** Child clock: the first call was made. */
  startedAt: number;
  /** Child clock: the first loader call of this process started / returned. */
  loadStartedAt?: number;
  loadDoneAt?: number;
  /** Child clock: when each caller's call settled, in call order. */
  settledAt: number[];
  /** From the first call to the last settled, in ms. */
  durationMs: number;
}

/**
 * Every command a child serves: its arguments and what it answers. A command that throws
 * answers with the error's message, and {@link Fleet.call} rejects with it.
 */
export interface FleetCommands {
  /** `CacheService.get`. */
  get: { args: { key: string }; result: Read };
  /** `CacheService.get` of every key, in order (one snapshot of the process's view). */
  read: { args: { keys: string[] }; result: Read[] };
  /** `CacheService.set`; answers the child's clock when it was called and when it resolved. */
  set: {
    args: { key: string; value: Json; ttl?: number };
    result: { calledAt: number; doneAt: number };
  };
  delete: { args: { key: string }; result: { deleted: boolean; doneAt: number } };
  deleteByPrefix: { args: { prefix: string }; result: { deleted: number; doneAt: number } };
  clear: { args: Record<string, never>; result: { doneAt: number } };
  /**
   * `CacheService.wrap(key, loader)`: the loader resolves `value`. With `gate`, the loader waits
   * until `release` opens that gate (and resolves the value given there, if any). Answers the
   * value wrap resolved and this process's loader calls so far.
   */
  wrap: {
    args: { key: string; value: Json; gate?: string; ttl?: number };
    result: { value: Json; loaderCalls: number };
  };
  /** Resolves once the loader waiting on `gate` is running (waits for it to start). */
  gate: { args: { gate: string }; result: null };
  /** Lets the loader waiting on `gate` resolve (with `value` when given). */
  release: { args: { gate: string; value?: Json }; result: null };
  /**
   * Starts polling `key` with `CacheService.get` (a `setImmediate` loop) until it reads `value`;
   * answers once the first poll has read (with what it read), so the caller knows the watch is
   * armed. {@link FleetCommands.watched} gives the outcome.
   */
  watch: {
    /**
     * `intervalMs` > 0 polls with `setTimeout` instead: less CPU taken from the other processes on
     * a small machine, at the cost of that much resolution.
     */
    args: { key: string; value: Json; timeoutMs: number; intervalMs?: number };
    result: { watchId: number; first: Read; armedAt: number };
  };
  /**
   * The outcome of a watch: when the first read of the value resolved (child clock), and how
   * many reads it took. Rejects when the watch timed out, with the last value it read.
   */
  watched: { args: { watchId: number }; result: { seenAt: number; reads: number } };
  /**
   * For `durationMs`, `workers` concurrent loops each run random `get`, `set`, `delete`,
   * `deleteByPrefix` (over `prefixes`) and `wrap` calls on `keys`; resolves when every call
   * has settled.
   */
  churn: {
    args: {
      keys: string[];
      prefixes: string[];
      durationMs: number;
      workers: number;
      seed: number;
      /** Share of each kind of call (relative weights). @default { get: 45, set: 25, delete: 10, deleteByPrefix: 2, wrap: 18 } */
      mix?: Partial<Record<ChurnOp, number>>;
    };
    result: ChurnCounts;
  };
  /**
   * Fires `callers` concurrent calls on `key` at once (issue 13, item 4), either
   * `CacheService.wrap(key, loader, { ttl, lock })` (`via: 'wrap'`, through `CacheStack.wrap`
   * for the statuses: the call `CacheService.wrap` makes) or a provider method decorated with
   * `@Cacheable({ key, ttl, lock })` (`via: 'cacheable'`: one of {@link FleetOptions.cacheable},
   * the one whose options equal `ttl` and `lock`). The loader counts itself in this process and,
   * with `counter`, with `INCR counter.key` on a raw client of `counter.url` (another Redis than
   * the cache's, so it counts across processes when the cache's Redis is down); then waits
   * `loaderMs`, then, with `gate`, until `release` opens it (see `wrap`); it resolves
   * `{ value, by: <process index>, pid }`. Resolves once every call has settled.
   */
  storm: {
    args: {
      key: string;
      callers: number;
      via: 'wrap' | 'cacheable';
      value: Json;
      ttl?: number;
      /** Left out: the module's lock (none in the fleets of the tests). */
      lock?: StormLock;
      loaderMs?: number;
      gate?: string;
      counter?: { url: string; key: string };
    };
    result: StormResult;
  };
  /**
   * `CacheService.set(key, value, { ttl, tags })` (issue 14); answers the child's clock when it was
   * called and when it resolved.
   */
  setTagged: {
    args: { key: string; value: Json; tags: string[]; ttl?: number };
    result: { calledAt: number; doneAt: number };
  };
  /** `CacheService.deleteByTag(tags)`; answers the child's clock when it was called and resolved. */
  deleteByTag: { args: { tags: string[] }; result: { calledAt: number; doneAt: number } };
  /**
   * Like `watch`, until `key` reads as a miss: answers once the first poll has read (with what it
   * read); {@link FleetCommands.watched} gives when the first miss was read.
   */
  watchMiss: {
    args: { key: string; timeoutMs: number; intervalMs?: number };
    result: { watchId: number; first: Read; armedAt: number };
  };
  /** The child's clock. */
  clock: { args: Record<string, never>; result: { now: number } };
  stats: { args: Record<string, never>; result: FleetStats };
  /** Closes the Nest application; the child exits after answering. */
  close: { args: Record<string, never>; result: null };
}

/** A command name. */
export type FleetOp = keyof FleetCommands;

/** Parent → child. */
export interface FleetRequest<K extends FleetOp = FleetOp> {
  id: number;
  op: K;
  args: FleetCommands[K]['args'];
}

/** Child → parent. */
export type FleetMessage =
  | { type: 'ready'; pid: number; nest: string }
  | { type: 'fatal'; error: string }
  | { type: 'reply'; id: number; ok: true; result: unknown }
  | { type: 'reply'; id: number; ok: false; error: string };

/** Options of {@link Fleet.start}. */
export interface FleetOptions {
  /** Cache options of every child (`isGlobal` is always on). */
  cache: FleetCacheOptions;
  /** Milliseconds each child may take to boot. @default 45000 */
  bootTimeoutMs?: number;
  /** Default timeout of {@link Fleet.call}. @default 10000 */
  callTimeoutMs?: number;
  /**
   * `@Cacheable` methods every child provides for `storm` (`via: 'cacheable'`): decorator
   * options are fixed when a class is defined, so each variant is defined at boot.
   * @default []
   */
  cacheable?: StormVariant[];
}

const ROOT = join(__dirname, '..', '..');
const CHILD = join(__dirname, 'fleet-child.ts');
/** Output of a child kept for error messages. */
const OUTPUT_TAIL = 4000;

/** The clock every child reports in (see the file comment). */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
  op: string;
}

/** One child process of a {@link Fleet}. */
class Member {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  output = '';
  exited: string | undefined;
  /** Child clock minus parent clock, in ms. */
  offset = 0;
  /** Half the fastest round trip the offset was measured with, in ms. */
  offsetError = Infinity;

  constructor(
    readonly index: number,
    readonly child: ChildProcess,
  ) {
    const keep = (chunk: Buffer) => {
      this.output = (this.output + chunk.toString()).slice(-OUTPUT_TAIL);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('message', (message: FleetMessage) => {
      if (message.type !== 'reply') return;
      const pending = this.pending.get(message.id);
      if (!pending) return;
      this.pending.delete(message.id);
      clearTimeout(pending.timer);
      if (message.ok) pending.resolve(message.result);
      else pending.reject(new Error(`process ${index} (${pending.op}): ${message.error}`));
    });
    child.on('exit', (code, signal) => {
      this.exited = signal ? `signal ${signal}` : `code ${code}`;
      for (const [id, pending] of this.pending) {
        this.pending.delete(id);
        clearTimeout(pending.timer);
        pending.reject(
          new Error(
            `process ${index} exited (${this.exited}) during ${pending.op}${this.describeOutput()}`,
          ),
        );
      }
    });
  }

  call<K extends FleetOp>(
    op: K,
    args: FleetCommands[K]['args'],
    timeoutMs: number,
  ): Promise<FleetCommands[K]['result']> {
    if (this.exited) {
      return Promise.reject(
        new Error(`process ${this.index} has exited (${this.exited})${this.describeOutput()}`),
      );
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(
          new Error(
            `process ${this.index} (pid ${this.child.pid}) did not answer ${op} ` +
              `${JSON.stringify(args).slice(0, 200)} within ${timeoutMs} ms${this.describeOutput()}`,
          ),
        );
      }, timeoutMs);
      this.pending.set(id, {
        resolve: resolve as (value: unknown) => void,
        reject,
        timer,
        op,
      });
      const request: FleetRequest<K> = { id, op, args };
      this.child.send(request, (error) => {
        if (!error) return;
        this.pending.delete(id);
        clearTimeout(timer);
        reject(new Error(`process ${this.index}: could not send ${op}: ${error.message}`));
      });
    });
  }

  describeOutput(): string {
    const text = this.output.trim();
    return text ? `\n--- output of process ${this.index} ---\n${text}` : '';
  }
}

/**
 * `n` child processes, each a Nest application context with `CacheModule.forRoot(options.cache)`
 * (see `fleet-child.ts`), all booted before {@link Fleet.start} resolves.
 *
 * The children run on the NestJS the parent runs on: the project's (NestJS 11), or NestJS 12
 * from `compat/nest12` under `jest.nest12.config.js` ({@link Fleet.nest} says which they
 * loaded).
 *
 * @example
 * ```ts
 * const fleet = await Fleet.start(3, { cache: { provider: 'redis', redis: { url }, namespace } });
 * try {
 *   await fleet.call(0, 'set', { key: 'k', value: 1 });
 *   expect(await fleet.call(1, 'get', { key: 'k' })).toEqual({ hit: true, value: 1 });
 * } finally {
 *   await fleet.stop();
 * }
 * ```
 */
export class Fleet {
  /** The `@nestjs/core` version the children loaded. */
  nest = '';

  private constructor(
    private readonly members: Member[],
    private readonly callTimeoutMs: number,
  ) {}

  /** Starts `n` children in parallel, waits until each has booted, and calibrates clocks. */
  static async start(n: number, options: FleetOptions): Promise<Fleet> {
    const bootTimeoutMs = options.bootTimeoutMs ?? 45_000;
    const script = compiledChild();
    const nestDir = nestPackagesDir();
    const members: Member[] = [];
    const booted: Array<Promise<string>> = [];
    for (let i = 0; i < n; i++) {
      const child = fork(script, [], {
        cwd: ROOT,
        execArgv: [],
        env: {
          ...process.env,
          CACHEKIT_FLEET_OPTIONS: JSON.stringify(options.cache),
          CACHEKIT_FLEET_INDEX: String(i),
          CACHEKIT_FLEET_NEST_DIR: nestDir ?? '',
          CACHEKIT_FLEET_CACHEABLE: JSON.stringify(options.cacheable ?? []),
        },
        stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
      });
      const member = new Member(i, child);
      members.push(member);
      booted.push(waitForReady(member, bootTimeoutMs));
    }
    const fleet = new Fleet(members, options.callTimeoutMs ?? 10_000);
    try {
      fleet.nest = [...new Set(await Promise.all(booted))].join(', ');
      await fleet.calibrate();
      return fleet;
    } catch (error) {
      await fleet.stop();
      throw error;
    }
  }

  /** How many processes. */
  get size(): number {
    return this.members.length;
  }

  /** The children's pids, in order. */
  get pids(): number[] {
    return this.members.map((m) => m.child.pid ?? -1);
  }

  /** The largest error bound of the clock offsets, in ms. */
  get clockError(): number {
    return Math.max(...this.members.map((m) => m.offsetError));
  }

  /** Each child's clock minus the parent's, in ms. */
  get offsets(): number[] {
    return this.members.map((m) => m.offset);
  }

  /**
   * Sends `op` to process `index` and resolves its answer; rejects with the child's error
   * message, or after `timeoutMs` (default: the fleet's) naming the command and the process, with
   * the tail of its output.
   */
  call<K extends FleetOp>(
    index: number,
    op: K,
    args: FleetCommands[K]['args'],
    timeoutMs = this.callTimeoutMs,
  ): Promise<FleetCommands[K]['result']> {
    const member = this.members[index];
    if (!member) throw new RangeError(`no process ${index} in a fleet of ${this.size}`);
    return member.call(op, args, timeoutMs);
  }

  /** `op` on every process at once; answers in process order. */
  all<K extends FleetOp>(
    op: K,
    args: FleetCommands[K]['args'],
    timeoutMs = this.callTimeoutMs,
  ): Promise<Array<FleetCommands[K]['result']>> {
    return Promise.all(this.members.map((_m, i) => this.call(i, op, args, timeoutMs)));
  }

  /** A time process `index` reported, on the parent's clock. */
  toParent(index: number, childTime: number): number {
    return childTime - this.members[index].offset;
  }

  /** The tail of every child's output (for failure messages). */
  output(): string {
    return this.members.map((m) => m.describeOutput()).join('');
  }

  /**
   * Sends `signal` to process `index` by its pid and, unless it is `SIGSTOP`/`SIGCONT`, waits
   * until it has exited (its pending calls reject). A crash, not a shutdown: nothing is closed.
   */
  async kill(index: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const member = this.members[index];
    if (!member) throw new RangeError(`no process ${index} in a fleet of ${this.size}`);
    const { child } = member;
    if (member.exited || child.pid === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid, signal);
    if (signal !== 'SIGSTOP' && signal !== 'SIGCONT') await exited;
  }

  /**
   * Closes every application (`close`), then kills by pid any child that has not exited
   * within `graceMs`. Never throws.
   */
  async stop(graceMs = 5000): Promise<void> {
    await Promise.all(
      this.members.map(async (member) => {
        const { child } = member;
        if (member.exited) return;
        const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
        await member.call('close', {}, graceMs).catch(() => undefined);
        const timer = new Promise<'timeout'>((resolve) =>
          setTimeout(() => resolve('timeout'), graceMs).unref(),
        );
        if ((await Promise.race([exited, timer])) === 'timeout' && child.pid !== undefined) {
          try {
            process.kill(child.pid, 'SIGKILL');
          } catch {
            // already gone
          }
          await exited;
        }
      }),
    );
  }

  /** NTP-style: offset = child time - midpoint of the fastest of several round trips. */
  private async calibrate(rounds = 30): Promise<void> {
    for (const member of this.members) {
      for (let r = 0; r < rounds; r++) {
        const sent = now();
        const { now: childNow } = await member.call('clock', {}, this.callTimeoutMs);
        const received = now();
        const half = (received - sent) / 2;
        if (half < member.offsetError) {
          member.offsetError = half;
          member.offset = childNow - (sent + half);
        }
      }
    }
  }
}

/**
 * The child compiled to JavaScript: `lib/` and the fleet files transpiled once (per content, with
 * the project's compiler options, like `ts-node/register/transpile-only` would) into
 * `node_modules/.cache/cachekit-fleet/<hash>/`, where Node resolves packages from the project's
 * `node_modules` as the sources would. Three children transpiling the library each with ts-node
 * took most of the run on a busy machine; this way they only load JavaScript.
 */
function compiledChild(): string {
  // Loaded lazily: only the parent of a fleet needs the compiler (the children import this file).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const ts = require('typescript') as typeof import('typescript');
  const sources = [...listTs(join(ROOT, 'lib')), CHILD, join(__dirname, 'fleet.ts')].sort();
  const config = ts.readConfigFile(join(ROOT, 'tsconfig.json'), ts.sys.readFile);
  const { options } = ts.convertCompilerOptionsFromJson(config.config.compilerOptions, ROOT);
  const compilerOptions = {
    ...options,
    sourceMap: false,
    inlineSourceMap: false,
    declaration: false,
  };
  const hash = createHash('sha256').update(ts.version).update(JSON.stringify(compilerOptions));
  const texts = sources.map((file) => {
    const text = readFileSync(file, 'utf8');
    hash.update(relative(ROOT, file)).update('\0').update(text).update('\0');
    return text;
  });
  const cacheDir = join(ROOT, 'node_modules', '.cache', 'cachekit-fleet');
  const outDir = join(cacheDir, hash.digest('hex').slice(0, 16));
  const script = join(outDir, relative(ROOT, CHILD).replace(/\.ts$/, '.js'));
  if (existsSync(script)) return script;
  // Written aside and renamed, so concurrent runs (both Jest configs) never see half a tree.
  const staging = `${outDir}.${process.pid}.tmp`;
  sources.forEach((file, i) => {
    const { outputText } = ts.transpileModule(texts[i], { compilerOptions, fileName: file });
    const target = join(staging, relative(ROOT, file).replace(/\.ts$/, '.js'));
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, outputText);
  });
  // Every change of the sources leaves a tree behind: drop those nobody has written for an hour.
  for (const name of existsSync(cacheDir) ? readdirSync(cacheDir) : []) {
    const path = join(cacheDir, name);
    if (Date.now() - statSync(path).mtimeMs > 3_600_000)
      rmSync(path, { recursive: true, force: true });
  }
  try {
    renameSync(staging, outDir);
  } catch {
    rmSync(staging, { recursive: true, force: true }); // another run got there first
  }
  return script;
}

/**
 * The folder whose `node_modules` the parent's `@nestjs/core` comes from, when it is not the
 * project root: `compat/nest12` under `jest.nest12.config.js`, whose resolver `require.resolve`
 * goes through. The children then load NestJS from there too.
 */
function nestPackagesDir(): string | undefined {
  const entry = require.resolve('@nestjs/core');
  const at = entry.lastIndexOf(`${sep}node_modules${sep}`);
  const dir = at < 0 ? undefined : entry.slice(0, at);
  return dir === undefined || dir === ROOT ? undefined : dir;
}

function listTs(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return listTs(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

function waitForReady(member: Member, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(
        new Error(
          `process ${member.index} (pid ${member.child.pid}) did not boot within ${timeoutMs} ms` +
            member.describeOutput(),
        ),
      );
    }, timeoutMs);
    const onMessage = (message: FleetMessage) => {
      if (message.type === 'ready') {
        settle();
        resolve(message.nest);
      } else if (message.type === 'fatal') {
        settle();
        reject(new Error(`process ${member.index} failed to boot: ${message.error}`));
      }
    };
    const onExit = () => {
      settle();
      reject(
        new Error(
          `process ${member.index} exited (${member.exited}) while booting${member.describeOutput()}`,
        ),
      );
    };
    const settle = () => {
      clearTimeout(timer);
      member.child.off('message', onMessage);
      member.child.off('exit', onExit);
    };
    member.child.on('message', onMessage);
    member.child.on('exit', onExit);
  });
}

/** Latency figures in ms. */
export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
  min: number;
}

/** The nearest-rank percentiles of `samples` (ms). */
export function summarize(samples: readonly number[]): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = (p: number) => sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
  return {
    count: sorted.length,
    p50: rank(0.5),
    p99: rank(0.99),
    max: sorted[sorted.length - 1],
    min: sorted[0],
  };
}

/** What {@link measurePropagation} measured. */
export interface PropagationResult {
  /**
   * Per watcher and write: from the writer's `set` resolving to the watcher's first read of the
   * new value resolving, in ms on the parent's clock (may be slightly negative: a watcher can
   * read the new value from Redis before the writer's call has returned).
   */
  afterSetResolved: LatencySummary;
  /** The same, from the moment the writer called `set`. */
  afterSetCalled: LatencySummary;
  /**
   * Writes whose value some watcher never read (with why); empty when every watcher saw every
   * write. The measurement stops early after a few.
   */
  missed: Array<{ write: number; process: number; error: string }>;
  /** The watchers' first reads that already held the new value before the write (must be 0). */
  earlyReads: number;
  /** Bound of the cross-process clock error, ms. */
  clockError: number;
  writes: number;
}

/**
 * Measures propagation: for each of `writes` writes (over `keys` keys, the writer rotating
 * over the processes), every process first reads the key (so it is in every L1), the other
 * processes start watching it, the writer sets a new value, and each watcher reports when it
 * first read it. Sequential: one write at a time.
 */
export async function measurePropagation(
  fleet: Fleet,
  options: {
    writes: number;
    keys?: number;
    prefix?: string;
    /** How long a watcher waits for a write's value. @default 5000 */
    watchTimeoutMs?: number;
    /** Poll interval of the watchers (0: a `setImmediate` loop). @default 0 */
    intervalMs?: number;
    /** Stop after this many missed reads (a broken bus would otherwise take writes × timeout). @default 4 */
    maxMissed?: number;
  },
): Promise<PropagationResult> {
  const keys = Array.from(
    { length: options.keys ?? 8 },
    (_v, i) => `${options.prefix ?? 'propagation'}:${i}`,
  );
  const watchTimeoutMs = options.watchTimeoutMs ?? 5000;
  const afterResolved: number[] = [];
  const afterCalled: number[] = [];
  const missed: PropagationResult['missed'] = [];
  let earlyReads = 0;
  for (const key of keys) await fleet.call(0, 'set', { key, value: 'initial' });
  const maxMissed = options.maxMissed ?? 4;
  for (let w = 0; w < options.writes && missed.length < maxMissed; w++) {
    const key = keys[w % keys.length];
    const writer = w % fleet.size;
    const value = `w${w}-${Math.random().toString(36).slice(2, 8)}`;
    const watchers = Array.from({ length: fleet.size }, (_v, i) => i).filter((i) => i !== writer);
    await fleet.all('get', { key });
    const armed = await Promise.all(
      watchers.map((i) =>
        fleet.call(i, 'watch', {
          key,
          value,
          timeoutMs: watchTimeoutMs,
          intervalMs: options.intervalMs,
        }),
      ),
    );
    for (const a of armed) if (a.first.hit && a.first.value === value) earlyReads++;
    const { calledAt, doneAt } = await fleet.call(writer, 'set', { key, value });
    const called = fleet.toParent(writer, calledAt);
    const done = fleet.toParent(writer, doneAt);
    await Promise.all(
      watchers.map(async (i, n) => {
        try {
          const { seenAt } = await fleet.call(
            i,
            'watched',
            { watchId: armed[n].watchId },
            watchTimeoutMs + 5000,
          );
          const seen = fleet.toParent(i, seenAt);
          afterResolved.push(seen - done);
          afterCalled.push(seen - called);
        } catch (error) {
          missed.push({ write: w, process: i, error: (error as Error).message });
        }
      }),
    );
  }
  return {
    afterSetResolved: summarize(afterResolved),
    afterSetCalled: summarize(afterCalled),
    missed,
    earlyReads,
    clockError: fleet.clockError,
    writes: options.writes,
  };
}

/** One printable paragraph of a {@link PropagationResult}. */
export function formatPropagation(label: string, result: PropagationResult): string {
  const ms = (n: number) => `${n.toFixed(3)} ms`;
  const line = (name: string, s: LatencySummary) =>
    `  ${name}: p50 ${ms(s.p50)}, p99 ${ms(s.p99)}, max ${ms(s.max)}, min ${ms(s.min)} (n=${s.count})`;
  return [
    `propagation (${label}): ${result.writes} writes, clock error <= ${ms(result.clockError)}`,
    line('after set resolved', result.afterSetResolved),
    line('after set called  ', result.afterSetCalled),
    `  missed: ${result.missed.length}, already new before the write: ${result.earlyReads}`,
  ].join('\n');
}
