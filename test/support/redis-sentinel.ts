import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { assertRedisInstalled, freePort, RedisServer } from './redis-server';

/** Where ioredis finds a sentinel (the module's `redis.sentinels` option). */
export interface SentinelAddress {
  host: string;
  port: number;
}

/** Options of {@link RedisSentinelGroup.start}. */
export interface RedisSentinelGroupOptions {
  /** The monitored master's name (`redis.name`). @default 'cachekit' */
  name?: string;
  /** Sentinels started (a quorum of 2 needs at least 3). @default 3 */
  sentinels?: number;
  /** `down-after-milliseconds`: how long a silent master takes to be judged down. @default 1000 */
  downAfterMs?: number;
  /** `failover-timeout`; a sentinel waits twice this before retrying a failover. @default 2000 */
  failoverTimeoutMs?: number;
}

const SENTINEL_HOST = '127.0.0.1';

/**
 * Redis server arguments of the group: a master starts a (diskless) full sync at once instead
 * of waiting 5 s for more replicas, so a demoted master is back in sync within a second.
 */
const SERVER_ARGS = ['--repl-diskless-sync-delay', '0'];

/** Arguments of a replica of the master on `masterPort`. */
const replicaOf = (masterPort: number) => [
  ...SERVER_ARGS,
  '--replicaof',
  SENTINEL_HOST,
  String(masterPort),
];

/** One parsed RESP reply as ioredis answers it (strings, numbers, nested arrays). */
type Reply = string | number | null | Reply[];

/** Sends one command on a short-lived connection to `port` and resolves its reply. */
async function ask(port: number, ...args: string[]): Promise<Reply> {
  const client = new Redis({
    host: SENTINEL_HOST,
    port,
    lazyConnect: true,
    enableReadyCheck: false,
    retryStrategy: () => null,
    maxRetriesPerRequest: 0,
    connectTimeout: 1000,
    commandTimeout: 2000,
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    return (await client.call(args[0], ...args.slice(1))) as Reply;
  } finally {
    client.disconnect();
  }
}

/** `[k1, v1, k2, v2, ...]` (SENTINEL MASTER / REPLICAS entries) as an object. */
function fields(reply: Reply): Record<string, string> {
  const out: Record<string, string> = {};
  if (!Array.isArray(reply)) return out;
  for (let i = 0; i + 1 < reply.length; i += 2) out[String(reply[i])] = String(reply[i + 1]);
  return out;
}

/** `field:value` lines of an INFO reply. */
function info(text: Reply): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of String(text).split('\r\n')) {
    const at = line.indexOf(':');
    if (at > 0) out[line.slice(0, at)] = line.slice(at + 1);
  }
  return out;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Polls `probe` (errors count as "not yet") until it returns a value other than `undefined`;
 * throws after `ms` with `what` and the last thing seen, so a stuck group says why.
 */
async function waitFor<T>(
  what: string,
  ms: number,
  probe: () => Promise<T | undefined>,
  describe: () => Promise<string> = () => Promise.resolve(''),
): Promise<T> {
  const deadline = Date.now() + ms;
  let last = '';
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error instanceof Error ? error.message : String(error);
    }
    if (Date.now() > deadline) {
      const state = await describe().catch((error: unknown) => String(error));
      throw new Error(`Sentinel group: ${what} not reached within ${ms} ms. ${last} ${state}`);
    }
    await sleep(50);
  }
}

/** One `redis-server <conf> --sentinel` child process with a writable config in its own dir. */
class SentinelProcess {
  private child: ChildProcess | undefined;
  private output = '';
  private readonly dir = mkdtempSync(join(tmpdir(), 'cachekit-sentinel-'));

  private constructor(
    readonly port: number,
    private readonly config: string,
  ) {}

  /** Starts a sentinel on a free port (another one if that port was taken meanwhile). */
  static async start(config: string): Promise<SentinelProcess> {
    for (let attempt = 0; ; attempt++) {
      const sentinel = new SentinelProcess(await freePort(), config);
      try {
        await sentinel.boot();
        return sentinel;
      } catch (error) {
        await sentinel.stop();
        if (attempt >= 2) throw error;
      }
    }
  }

  get running(): boolean {
    return (
      this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
    );
  }

  /** Starts the sentinel and waits until it answers PING. */
  private async boot(): Promise<void> {
    const file = join(this.dir, 'sentinel.conf');
    // Sentinel rewrites its config file (known sentinels, epochs): it must be writable.
    writeFileSync(
      file,
      `port ${this.port}\nbind ${SENTINEL_HOST}\ndir ${this.dir}\n${this.config}`,
    );
    const child = spawn('redis-server', [file, '--sentinel', '--daemonize', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (this.output += chunk.toString()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (!this.running) {
        throw new Error(`sentinel on port ${this.port} exited at startup: ${this.output.trim()}`);
      }
      if ((await ask(this.port, 'PING').catch(() => '')) === 'PONG') return;
      await sleep(25);
    }
    throw new Error(`sentinel on port ${this.port} did not answer PING within 10 s`);
  }

  /** SIGKILL by pid, then removes its directory. */
  async stop(): Promise<void> {
    const child = this.child;
    if (child && this.running) {
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * A real Redis Sentinel group on loopback: a master, one replica (`--replicaof`) and three
 * sentinels (`redis-server <conf> --sentinel`, quorum 2), every process a child on a free port,
 * without persistence, stopped by pid. {@link start} returns once the replica is in sync and
 * every sentinel knows the master, the replica and the other sentinels.
 *
 * Sentinel's periods are shortened with `SENTINEL DEBUG` (INFO every second, hello every
 * 500 ms) so a failover and the demotion of the old master take seconds, not tens of seconds.
 */
export class RedisSentinelGroup {
  /** Redis servers by port: the master and the replica, whichever role each holds now. */
  private readonly servers = new Map<number, RedisServer>();
  private readonly watchers: SentinelProcess[] = [];
  /** A server killed by {@link killMaster}, not yet brought back by {@link restoreReplica}. */
  private killedPort: number | undefined;

  private constructor(readonly name: string) {}

  /** Starts the group; on any failure, every process started so far is stopped. */
  static async start(options: RedisSentinelGroupOptions = {}): Promise<RedisSentinelGroup> {
    assertRedisInstalled();
    const group = new RedisSentinelGroup(options.name ?? 'cachekit');
    try {
      await group.boot(options);
      return group;
    } catch (error) {
      await group.stop();
      throw error;
    }
  }

  /** The sentinels, for ioredis (`redis: { sentinels, name }`). */
  get sentinels(): SentinelAddress[] {
    return this.watchers.map((s) => ({ host: SENTINEL_HOST, port: s.port }));
  }

  /** Ports of the Redis servers (master and replica) that are running. */
  get serverPorts(): number[] {
    return [...this.servers.entries()].filter(([, s]) => s.running).map(([port]) => port);
  }

  /** The master's port as the first answering sentinel reports it (get-master-addr-by-name). */
  async masterPort(): Promise<number> {
    let last: unknown;
    for (const sentinel of this.watchers) {
      try {
        return await this.masterPortFrom(sentinel.port);
      } catch (error) {
        last = error;
      }
    }
    throw new Error(`no sentinel reported the master of ${this.name}: ${String(last)}`);
  }

  /** `role` from INFO replication of the server on `port` ('master' or 'slave'). */
  async role(port: number): Promise<string> {
    return info(await ask(port, 'INFO', 'replication')).role ?? 'unknown';
  }

  /**
   * `SENTINEL FAILOVER`: the replica is promoted although the master is healthy (it is demoted
   * to a replica of the new master). Resolves the new master's port once every sentinel reports
   * it and it answers `role:master`. Waits for a {@link healthy} group first.
   */
  async failover(timeoutMs = 20_000): Promise<number> {
    await this.healthy();
    const before = await this.masterPort();
    const reply = await ask(this.watchers[0].port, 'SENTINEL', 'FAILOVER', this.name);
    if (reply !== 'OK') throw new Error(`SENTINEL FAILOVER ${this.name} answered ${String(reply)}`);
    return this.waitForNewMaster(before, timeoutMs);
  }

  /**
   * SIGKILL of the master by pid. Resolves the new master's port once the sentinels noticed
   * (`down-after-milliseconds`), agreed and promoted the replica, and it answers `role:master`.
   * The group then runs without a replica until {@link restoreReplica}.
   */
  async killMaster(timeoutMs = 30_000): Promise<number> {
    await this.healthy();
    const before = await this.masterPort();
    const master = this.servers.get(before);
    if (!master?.running) throw new Error(`the master on port ${before} is not one of ours`);
    await master.kill();
    this.killedPort = before;
    return this.waitForNewMaster(before, timeoutMs);
  }

  /**
   * Restarts the server killed by {@link killMaster}, on its port, as a replica of the current
   * master, and waits for a {@link healthy} group (so another failover is possible).
   */
  async restoreReplica(): Promise<void> {
    const port = this.killedPort;
    if (port === undefined) return;
    const master = await this.masterPort();
    await this.servers.get(port)?.stop();
    this.servers.set(port, await RedisServer.start({ port, args: replicaOf(master) }));
    this.killedPort = undefined;
    await this.healthy();
  }

  /**
   * Resolves once the group is whole: every sentinel agrees on a master that answers
   * `role:master`, the other server replicates it with the link up, and every sentinel sees
   * that replica healthy and knows the other sentinels.
   */
  async healthy(timeoutMs = 30_000): Promise<void> {
    const others = this.watchers.length - 1;
    await waitFor(
      'a healthy group (one master, one synced replica, sentinels agreeing)',
      timeoutMs,
      async () => {
        const masters = await Promise.all(this.watchers.map((s) => this.masterPortFrom(s.port)));
        const master = masters[0];
        if (masters.some((port) => port !== master)) return undefined;
        const replicaPort = this.serverPorts.find((port) => port !== master);
        if (replicaPort === undefined || (await this.role(master)) !== 'master') return undefined;
        const replica = info(await ask(replicaPort, 'INFO', 'replication'));
        if (replica.role !== 'slave' || replica.master_port !== String(master)) return undefined;
        if (replica.master_link_status !== 'up') return undefined;
        for (const sentinel of this.watchers) {
          const known = fields(await ask(sentinel.port, 'SENTINEL', 'MASTER', this.name));
          if (known.flags !== 'master' || Number(known['num-other-sentinels']) < others) {
            return undefined;
          }
          const replicas = await ask(sentinel.port, 'SENTINEL', 'REPLICAS', this.name);
          const seen = (Array.isArray(replicas) ? replicas : [])
            .map(fields)
            .find((r) => r.port === String(replicaPort));
          if (!seen || seen.flags !== 'slave' || seen['master-link-status'] !== 'ok') {
            return undefined;
          }
        }
        return true;
      },
      () => this.describe(),
    );
  }

  /** Stops every process by pid and removes the temporary directories. */
  async stop(): Promise<void> {
    await Promise.all(this.watchers.map((s) => s.stop()));
    await Promise.all([...this.servers.values()].map((s) => s.stop()));
  }

  /** What each sentinel and server reports, for error messages. */
  async describe(): Promise<string> {
    const parts: string[] = [];
    for (const sentinel of this.watchers) {
      const master = await this.masterPortFrom(sentinel.port).catch((e: Error) => e.message);
      const known = fields(
        await ask(sentinel.port, 'SENTINEL', 'MASTER', this.name).catch(() => null),
      );
      parts.push(
        `sentinel ${sentinel.port}: master ${master} flags=${known.flags} ` +
          `replicas=${known['num-slaves']} sentinels=${known['num-other-sentinels']}`,
      );
    }
    for (const port of this.serverPorts) {
      const fieldsOf = info(await ask(port, 'INFO', 'replication').catch(() => ''));
      parts.push(`server ${port}: role=${fieldsOf.role} link=${fieldsOf.master_link_status}`);
    }
    return parts.join('; ');
  }

  private async boot(options: RedisSentinelGroupOptions): Promise<void> {
    const master = await RedisServer.start({ args: SERVER_ARGS });
    this.servers.set(master.port, master);
    const replica = await RedisServer.start({ args: replicaOf(master.port) });
    this.servers.set(replica.port, replica);
    await waitFor('the replica in sync', 10_000, async () =>
      info(await ask(replica.port, 'INFO', 'replication')).master_link_status === 'up'
        ? true
        : undefined,
    );
    const config = [
      `sentinel monitor ${this.name} ${SENTINEL_HOST} ${master.port} 2`,
      `sentinel down-after-milliseconds ${this.name} ${options.downAfterMs ?? 1000}`,
      `sentinel failover-timeout ${this.name} ${options.failoverTimeoutMs ?? 2000}`,
      `sentinel parallel-syncs ${this.name} 1`,
      'loglevel warning',
      '',
    ].join('\n');
    for (let i = 0; i < (options.sentinels ?? 3); i++) {
      const sentinel = await SentinelProcess.start(config);
      this.watchers.push(sentinel);
      const tuned = await ask(
        sentinel.port,
        'SENTINEL',
        'DEBUG',
        'info-period',
        '1000',
        'publish-period',
        '500',
      );
      if (tuned !== 'OK') throw new Error(`SENTINEL DEBUG answered ${String(tuned)}`);
    }
    await this.healthy();
  }

  private async masterPortFrom(sentinelPort: number): Promise<number> {
    const reply = await ask(sentinelPort, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', this.name);
    if (!Array.isArray(reply) || reply.length !== 2) {
      throw new Error(`sentinel ${sentinelPort} does not know ${this.name}: ${String(reply)}`);
    }
    return Number(reply[1]);
  }

  private waitForNewMaster(before: number, timeoutMs: number): Promise<number> {
    return waitFor(
      `a new master (was ${before})`,
      timeoutMs,
      async () => {
        const masters = await Promise.all(
          this.watchers.map((s) => this.masterPortFrom(s.port).catch(() => before)),
        );
        const next = masters[0];
        if (next === before || masters.some((port) => port !== next)) return undefined;
        return (await this.role(next)) === 'master' ? next : undefined;
      },
      () => this.describe(),
    );
  }
}
