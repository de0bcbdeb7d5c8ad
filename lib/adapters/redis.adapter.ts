import { Logger } from '@nestjs/common';
import { Cluster, Redis } from 'ioredis';
import type { ClusterNode, RedisOptions } from 'ioredis';
import { CacheConnectionError } from '../cache.errors';
import { CACHE_LOGGER_CONTEXT } from '../cache.constants';
import type { CacheAdapter } from '../interfaces/cache-adapter.interface';
import type { CacheRedisOptions } from '../interfaces/cache-module-options.interface';
import { RateLimitedLogger } from '../utils/rate-limited-logger';
import { redactUrl } from '../utils/redact';

/** Options of {@link RedisCacheAdapter}. */
export interface RedisCacheAdapterOptions {
  /** How to reach Redis: URL, ioredis options, cluster, sentinels or an existing client. */
  redis: CacheRedisOptions;
  /** Every key is written as `namespace:key`. @default 'cache' */
  namespace?: string;
  /** Throw {@link CacheConnectionError} from `onModuleInit` when Redis is unreachable. @default false */
  strict?: boolean;
  /**
   * Set when a {@link FailoverCacheAdapter} wraps this adapter: the startup warning then says
   * that the fallback serves, not that calls miss. @default false
   */
  behindFailover?: boolean;
}

// Fail fast: a cache call must never wait for a reconnect (ioredis defaults queue commands
// while offline and retry each up to 20 times). See ioredis "Offline Queue" docs.
const FAIL_FAST: RedisOptions = {
  lazyConnect: true,
  enableOfflineQueue: false,
  maxRetriesPerRequest: 1,
  commandTimeout: 1000,
  connectTimeout: 2000,
  // ioredis keeps a timer this long after disconnect(); short, so shutdown is prompt.
  disconnectTimeout: 200,
  retryStrategy: (attempt: number) => Math.min(attempt * 200, 2000),
};

const SCAN_COUNT = 1000;

/**
 * Redis backend on ioredis. Values are stored as JSON strings (readable with `redis-cli GET`),
 * every key under `namespace:`, TTLs with `PX`. `clear` and `deleteByPrefix` walk the
 * namespace with `SCAN` + `UNLINK` (on every master of a cluster), never `FLUSHDB`, with glob
 * characters in the namespace and prefix escaped. A value that is not valid JSON, or a key of
 * the wrong type, reads as a miss and logs a warning.
 *
 * The adapter connects and pings in `onModuleInit` and closes the connection it created in
 * `onApplicationShutdown`; a `client` passed in by the application is left open.
 *
 * @example
 * ```ts
 * new RedisCacheAdapter({ redis: { url: 'redis://127.0.0.1:6379/0' }, namespace: 'shop' });
 * ```
 */
export class RedisCacheAdapter implements CacheAdapter {
  /** The ioredis client (standalone, sentinel-backed or cluster). */
  readonly client: Redis | Cluster;
  private readonly owned: boolean;
  private readonly prefix: string;
  private readonly strict: boolean;
  private readonly behindFailover: boolean;
  private readonly log = new RateLimitedLogger(new Logger(CACHE_LOGGER_CONTEXT));
  private readonly target: string;
  private lastError: Error | undefined;
  /** The socket held corked until the end of this tick (see {@link batch}). */
  private corked: { uncork(): void } | undefined;
  private readonly uncork = (): void => {
    const socket = this.corked;
    this.corked = undefined;
    socket?.uncork();
  };

  constructor(options: RedisCacheAdapterOptions) {
    const { redis } = options;
    this.prefix = `${options.namespace ?? 'cache'}:`;
    this.strict = options.strict ?? false;
    this.behindFailover = options.behindFailover ?? false;
    if ('client' in redis) {
      this.client = redis.client;
      this.owned = false;
      this.target = 'the application-provided Redis client';
    } else if ('cluster' in redis) {
      this.client = new Cluster(redis.cluster, {
        lazyConnect: true,
        enableOfflineQueue: false,
        // A cluster spreads commands over several sockets: ioredis batches them per node.
        enableAutoPipelining: true,
        ...redis.clusterOptions,
        redisOptions: { ...FAIL_FAST, ...redis.clusterOptions?.redisOptions },
      });
      this.owned = true;
      this.target = `Redis cluster ${redis.cluster.map(describeNode).join(',')}`;
    } else {
      const { url, ...rest } = redis;
      const options: RedisOptions = { ...FAIL_FAST, ...rest };
      this.client = url ? new Redis(url, options) : new Redis(options);
      this.owned = true;
      this.target = describeTarget(url, rest);
    }
    if (this.owned) {
      // Without a listener ioredis prints every connection error to stderr.
      this.client.on('error', (error: Error) =>
        this.log.warn(
          'connection',
          `Redis connection error (${this.target}): ${redactUrl(error.message)}`,
        ),
      );
    }
  }

  get<T = unknown>(key: string): Promise<T | undefined> {
    const namespaced = this.prefix + key;
    let reply: Promise<string | null>;
    try {
      this.batch();
      reply = this.client.get(namespaced);
    } catch (error) {
      return Promise.reject(asError(error));
    }
    return reply.then(
      (raw) => (raw === null ? undefined : this.decode<T>(namespaced, raw)),
      (error: unknown) => {
        if (!isWrongType(error)) throw error;
        this.log.warn(
          `corrupt:${namespaced}`,
          `Cache key '${namespaced}' holds a non-string Redis type; treated as a miss`,
        );
        return undefined;
      },
    );
  }

  /** Resolves once Redis acknowledged the write (with its reply, which callers ignore). */
  set(key: string, value: unknown, ttl: number): Promise<void> {
    let written: Promise<unknown>;
    try {
      const payload = JSON.stringify(value);
      this.batch();
      written =
        ttl > 0
          ? this.client.set(this.prefix + key, payload, 'PX', Math.max(1, Math.round(ttl * 1000)))
          : this.client.set(this.prefix + key, payload);
    } catch (error) {
      // A value JSON cannot write (a BigInt, a throwing toJSON): a rejection, like any failure.
      return Promise.reject(asError(error));
    }
    // No `.then` to drop the 'OK': that would cost a microtask turn on every write.
    return written as Promise<void>;
  }

  async delete(key: string): Promise<boolean> {
    return (await this.client.unlink(this.prefix + key)) > 0;
  }

  async has(key: string): Promise<boolean> {
    return (await this.client.exists(this.prefix + key)) > 0;
  }

  async clear(): Promise<void> {
    await this.deleteMatching(escapeGlob(this.prefix) + '*');
  }

  deleteByPrefix(prefix: string): Promise<number> {
    return this.deleteMatching(escapeGlob(this.prefix + prefix) + '*');
  }

  /** Resolves when Redis answers `PING`; rejects at once when the connection is not ready. */
  async ping(): Promise<void> {
    // Checked first so a PING is never parked in an offline queue (application-provided clients).
    if (this.client.status !== 'ready') {
      throw new Error(`not connected (ioredis status '${this.client.status}')`);
    }
    await this.client.ping();
  }

  async onModuleInit(): Promise<void> {
    if (!this.owned) return;
    try {
      await this.client.connect();
      await this.client.ping();
    } catch (error) {
      // ioredis rejects with "Connection is closed."; the socket error says why.
      const cause = this.lastError ?? error;
      const reason = redactUrl(cause instanceof Error ? cause.message : String(cause));
      if (this.strict) {
        this.client.disconnect();
        throw new CacheConnectionError(
          `Cannot reach ${this.target} at startup (${reason}). Start Redis, fix redis.url, ` +
            `or drop strict: true to boot with a warning and call through while Redis is down.`,
        );
      }
      const meanwhile = this.behindFailover
        ? 'the in-memory fallback serves cache calls'
        : 'cache calls miss and call through';
      new Logger(CACHE_LOGGER_CONTEXT).warn(
        `Cannot reach ${this.target} at startup (${reason}); ${meanwhile} ` +
          `until it answers. Reconnecting in the background.`,
      );
    }
  }

  async onApplicationShutdown(): Promise<void> {
    if (!this.owned) return;
    const { status } = this.client;
    if (status === 'ready') {
      // QUIT lets pending replies arrive; wait for the socket to close so nothing stays open.
      const ended = new Promise<void>((resolve) => {
        this.client.once('end', () => resolve());
        setTimeout(resolve, 1000).unref(); // never let app.close() hang on a lost event
      });
      await this.client.quit().catch(() => this.client.disconnect());
      await ended;
      return;
    }
    // Connecting, reconnecting or already closed: drop the socket and any reconnect timer now.
    if (status !== 'end' && status !== 'wait') this.client.disconnect();
  }

  private decode<T>(namespaced: string, raw: string): T | undefined {
    try {
      return JSON.parse(raw) as T;
    } catch {
      this.log.warn(
        `corrupt:${namespaced}`,
        `Cache key '${namespaced}' holds data that is not valid JSON; treated as a miss`,
      );
      return undefined;
    }
  }

  /**
   * Batches the commands issued in one tick while replies are awaited into one socket write:
   * the first corks the connection, which is uncorked when the tick ends (`process.nextTick`).
   * That is what auto-pipelining buys (one write, one read for many commands) without its
   * costs: no Pipeline object is built per command, and a command issued while nothing awaits
   * a reply goes out at once, as on a plain client (auto-pipelining holds it until
   * `setImmediate`).
   * Only for a single connection (a cluster client uses ioredis's per-node auto-pipelining)
   * that is ready (else ioredis fails or queues the command without writing).
   */
  private batch(): void {
    if (this.corked) return;
    const client = this.client;
    // isCluster, not instanceof: an application's client may come from another ioredis copy.
    if (client.isCluster || client.status !== 'ready') return;
    const { commandQueue, stream: socket } = client as Redis;
    if (!commandQueue || commandQueue.length === 0) return;
    if (!socket || typeof socket.cork !== 'function' || socket.writableCorked > 0) return;
    if (socket.destroyed) return;
    socket.cork();
    this.corked = socket;
    process.nextTick(this.uncork);
  }

  private async deleteMatching(pattern: string): Promise<number> {
    const nodes = this.client instanceof Cluster ? this.client.nodes('master') : [this.client];
    const counts = await Promise.all(nodes.map((node) => scanAndUnlink(node, pattern)));
    return counts.reduce((sum, n) => sum + n, 0);
  }
}

async function scanAndUnlink(node: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SCAN_COUNT);
    cursor = next;
    if (keys.length > 0) {
      // Each key is unlinked on its own so a cluster node never sees a cross-slot command.
      const pipeline = node.pipeline();
      for (const key of keys) pipeline.unlink(key);
      const results = (await pipeline.exec()) ?? [];
      for (const [error, count] of results) {
        if (error) throw error;
        deleted += Number(count);
      }
    }
  } while (cursor !== '0');
  return deleted;
}

/** Escapes Redis glob metacharacters so a prefix matches only itself. */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(String(error));
}

function isWrongType(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('WRONGTYPE');
}

function describeNode(node: ClusterNode): string {
  if (typeof node === 'object') return `${node.host ?? '127.0.0.1'}:${node.port ?? 6379}`;
  return redactUrl(String(node));
}

function describeTarget(url: string | undefined, options: RedisOptions): string {
  if (url) {
    try {
      const parsed = new URL(url);
      return `Redis at ${parsed.protocol}//${parsed.host}${parsed.pathname}`;
    } catch {
      return 'Redis';
    }
  }
  if (options.sentinels) return `Redis sentinel group '${options.name ?? ''}'`;
  return `Redis at ${options.host ?? '127.0.0.1'}:${options.port ?? 6379}`;
}
