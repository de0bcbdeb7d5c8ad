import { Logger } from '@nestjs/common';
import { Cluster, Redis } from 'ioredis';
import type { ClusterNode, RedisOptions } from 'ioredis';
import { CacheArgumentError, CacheConnectionError, CachePartialError } from '../utils/cache.errors';
import { REDIS_DEFAULT_HOST, REDIS_DEFAULT_PORT, REDIS_FAIL_FAST } from '../config/defaults';
import {
  assertNamespace,
  describeRedisNode,
  describeRedisUrl,
  invalidTtlMessage,
  resolveSerializer,
  ttlProblem,
} from '../config/validators';
import type { CacheAdapter, CacheAdapterEntry } from '../interfaces/cache-adapter.interface';
import { KEY_LOCK, type KeyLock } from '../interfaces/key-lock';
import { TAG_STORE, type TagStore } from '../interfaces/tag-store';
import { STORED_WRITER, type StoredWrite } from '../interfaces/stored-write';
import {
  ENTRY_READER,
  ENTRY_SWAP,
  ENTRY_UNDO,
  ENTRIES_READER,
  type EntriesRead,
  type EntryRead,
  type EntrySwap,
  type EntryUndo,
  type SharedEntry,
} from '../interfaces/entry-reader';
import type { CacheRedisOptions } from '../interfaces/cache-module-options.interface';
import { describeError, quote } from '../utils/describe-value';
import { CACHE_LOGGER_CONTEXT, CacheLogger, RateLimitedLogger } from '../utils/rate-limited-logger';
import { redactUrl, registerRedisSecrets } from '../utils/redact';
import type {
  CacheSerializer,
  CacheSerializerOption,
} from '../interfaces/cache-serializer.interface';
import { JSON_SERIALIZER, serializeWith, storableFor, type Storable } from '../utils/serializer';
import { asError } from '../utils/timeout';

/** Options of {@link RedisCacheAdapter}. */
export interface RedisCacheAdapterOptions {
  /** How to reach Redis: URL, ioredis options, cluster, sentinels or an existing client. */
  redis: CacheRedisOptions;
  /**
   * Every key is written as `namespace:key`: 1 to 128 letters, digits, `_`, `-` or `.` (no `:`,
   * so two namespaces never overlap; anything else throws `CacheConfigError`). @default 'cache'
   */
  namespace?: string;
  /** Throw {@link CacheConnectionError} from `onModuleInit` when Redis is unreachable. @default false */
  strict?: boolean;
  /**
   * What serves cache calls while Redis cannot be reached, for the startup warning: the
   * composer of this adapter knows (a failover says its fallback serves).
   * @default 'cache calls miss and call through'
   */
  whileUnreachable?: string;
  /**
   * How values become the text stored in Redis and back: `'json'`, `'rich'` or a
   * `CacheSerializer` of your own, as the module's `serializer` option. Values are checked and
   * converted for it before any write. @default 'json'
   */
  serializer?: CacheSerializerOption;
}

// Fail fast: see REDIS_FAIL_FAST.
const FAIL_FAST = REDIS_FAIL_FAST;

const SCAN_COUNT = 1000;

/**
 * The hash slot of a key (string or bytes), as ioredis computes it: its own dependency
 * (`cluster-key-slot`, pinned by ioredis), so the groups made here are the ones ioredis routes.
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const calculateSlot = require('cluster-key-slot') as (key: string | Buffer) => number;

/** How ioredis gives up a Cluster pipeline whose slots span nodes (after a MOVED). */
const SPLIT_PIPELINE = 'should belong to the same slots allocation group';

/** A command as ioredis pipelines take it. */
type Command = Array<string | Buffer | number>;

/** Keys (their indexes in a bulk call, and their Redis keys) of one hash slot. */
interface SlotBatch {
  readonly indexes: number[];
  readonly targets: Array<string | Buffer>;
}

/**
 * The most keys one multi-key command (`MGET`, `UNLINK`) carries: ioredis hands a pipelined
 * command's arguments to `Function.apply`, which overflows the stack above ~120k arguments.
 * Larger batches are split; the parts still go in the node's one pipeline (one round trip).
 */
const MAX_KEYS_PER_COMMAND = 10_000;

/** The replies of a {@link SlotBatch}'s commands, or why they failed. */
type BatchOutcome =
  | { readonly batch: SlotBatch; readonly replies: unknown[]; readonly error?: undefined }
  | { readonly batch: SlotBatch; readonly replies?: undefined; readonly error: Error };

/** Deletes KEYS[1] only if it holds ARGV[1]; returns how many keys it deleted. */
const UNDO_SCRIPT =
  "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/** Compare-and-set: ARGV[1] expected, ARGV[2] new value, ARGV[3] PX (0: no expiry). */
const SWAP_SCRIPT =
  "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end " +
  "if ARGV[3] == '0' then redis.call('SET', KEYS[1], ARGV[2]) " +
  "else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end return 1";

/**
 * Where the lock of a key lives: `namespace#lock:key`. A namespace holds no `#` and no `:`, so
 * no entry key (`namespace:key`) of any namespace is a lock key, `clear` and `deleteByPrefix`
 * (which scan `namespace:*`) never see one, and no key part a user controls can reach another
 * namespace's locks. No `{}` hash tag is added: a key's own braces keep their meaning.
 */
const LOCK_INFIX = '#lock:';

/** Where a tag's invalidation time lives: `namespace#tag:tag` (apart as the locks are). */
const TAG_INFIX = '#tag:';

/**
 * Where the longest life (ms, `0`: forever) of a tagged entry written by any instance lives:
 * `namespace#tags-life` (no tag record, `namespace#tag:...`, is this key). Marks last that long.
 */
const TAG_LIFE_KEY = '#tags-life';

/** Keeps the longer of two lives, `0` being forever: ARGV[1] the life (ms). */
const TAG_LIFE_SCRIPT =
  "local old = redis.call('GET', KEYS[1]) " +
  "if old == '0' then return 0 end " +
  "if ARGV[1] ~= '0' and old and tonumber(old) >= tonumber(ARGV[1]) then return 0 end " +
  "redis.call('SET', KEYS[1], ARGV[1]) return 1";

/** Keeps the later of two invalidation times: ARGV[1] the time, ARGV[2] PX (0: no expiry). */
const TAG_MARK_SCRIPT =
  "local old = tonumber(redis.call('GET', KEYS[1])) " +
  'if old ~= nil and old >= tonumber(ARGV[1]) then return 0 end ' +
  "if ARGV[2] == '0' then redis.call('SET', KEYS[1], ARGV[1]) " +
  "else redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end return 1";

/**
 * Redis backend on ioredis. Values are stored as JSON strings, or in the `serializer`'s text
 * (`'rich'`: devalue's, JSON-based; both readable with `redis-cli GET`),
 * every key under `namespace:`, TTLs with `PX`. `clear` and `deleteByPrefix` walk the
 * namespace with `SCAN` + `UNLINK` (on every master of a cluster), never `FLUSHDB`, with glob
 * characters in the prefix escaped. A value that is not valid JSON, or a key of the wrong
 * type, reads as a miss (and `has` as `false`) and logs a warning. Keys holding UTF-16
 * surrogates are written in CESU-8 (see {@link redisKey}), so every distinct key string stays
 * a distinct Redis key.
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
  /** The namespace every key is written under (`namespace:key`). */
  readonly namespace: string;
  private readonly owned: boolean;
  private readonly prefix: string;
  private readonly strict: boolean;
  private readonly whileUnreachable: string;
  /** How values are written and read (see {@link RedisCacheAdapterOptions.serializer}). */
  readonly serializer: CacheSerializer;
  /** The `serializer` when it is not JSON (`undefined`: JSON, the fast path). */
  private readonly codec: CacheSerializer | undefined;
  /** Checks and converts a value for the serializer before it is written. */
  private readonly storable: Storable;
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
    // Before anything can fail: no message may show these passwords.
    registerRedisSecrets(redis);
    const namespace = options.namespace === undefined ? 'cache' : options.namespace;
    assertNamespace(namespace, 'namespace', 'RedisCacheAdapter');
    this.namespace = namespace;
    this.prefix = `${namespace}:`;
    this.strict = options.strict ?? false;
    this.whileUnreachable = options.whileUnreachable ?? 'cache calls miss and call through';
    this.serializer = resolveSerializer(options.serializer, 'RedisCacheAdapter');
    this.codec = this.serializer === JSON_SERIALIZER ? undefined : this.serializer;
    this.storable = storableFor(this.codec);
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
    registerRedisSecrets(this.client);
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
      const target = redisKey(namespaced);
      this.batch();
      reply =
        typeof target === 'string' || !this.client.isCluster
          ? this.client.get(target)
          : alone<string | null>(this.client, ['get', target]);
    } catch (error) {
      return Promise.reject(asError(error));
    }
    return reply.then(
      (raw) => (raw === null ? undefined : this.decode<T>(namespaced, raw)),
      (error: unknown) => this.wrongType(namespaced, error),
    );
  }

  /**
   * The cache's own read of an entry with the milliseconds it has left (`GET` and `PTTL` in one
   * round trip), for the two-tier store (see `ENTRY_READER`).
   *
   * @internal
   */
  [ENTRY_READER](): EntryRead | undefined {
    // Compared by identity: an override of `get` (a subclass, a test spy) must be called.
    return this.get === RedisCacheAdapter.prototype.get ? this.entryRead : undefined;
  }

  private readonly entryRead: EntryRead = (key) => this.readEntry(key);

  /**
   * The cache's own compare-and-delete: deletes a key only while it holds the JSON of a value
   * (one Lua script, atomic), for the two-tier store (see `ENTRY_UNDO`).
   *
   * @internal
   */
  [ENTRY_UNDO](): EntryUndo | undefined {
    return this.set === RedisCacheAdapter.prototype.set ? this.entryUndo : undefined;
  }

  private readonly entryUndo: EntryUndo = async (key, value) => {
    const target = redisKey(this.prefix + key);
    const payload = this.encode(value, key);
    const deleted =
      typeof target !== 'string' && this.client.isCluster
        ? await alone(this.client, ['eval', UNDO_SCRIPT, 1, target, payload])
        : await this.client.eval(UNDO_SCRIPT, 1, target, payload);
    return Number(deleted) > 0;
  };

  /**
   * The cache's fleet-wide lock per key (see `KEY_LOCK`): `SET namespace#lock:key token NX PX`,
   * released by a Lua compare-and-delete of the token.
   *
   * @internal
   */
  [KEY_LOCK](): KeyLock {
    return this.keyLock;
  }

  private readonly keyLock: KeyLock = {
    acquire: async (key, token, ttlMs) => {
      const target = redisKey(this.namespace + LOCK_INFIX + key);
      const reply =
        typeof target !== 'string' && this.client.isCluster
          ? await alone(this.client, ['set', target, token, 'PX', ttlMs, 'NX'])
          : await this.client.set(target, token, 'PX', ttlMs, 'NX');
      return reply !== null;
    },
    release: async (key, token) => {
      const target = redisKey(this.namespace + LOCK_INFIX + key);
      const deleted =
        typeof target !== 'string' && this.client.isCluster
          ? await alone(this.client, ['eval', UNDO_SCRIPT, 1, target, token])
          : await this.client.eval(UNDO_SCRIPT, 1, target, token);
      return Number(deleted) > 0;
    },
  };

  /**
   * The cache's own compare-and-set (one Lua script, atomic), for `expire` (see `ENTRY_SWAP`).
   *
   * @internal
   */
  [ENTRY_SWAP](): EntrySwap | undefined {
    const plain =
      this.set === RedisCacheAdapter.prototype.set && this.get === RedisCacheAdapter.prototype.get;
    return plain ? this.entrySwap : undefined;
  }

  private readonly entrySwap: EntrySwap = async (key, expected, next, ttl) => {
    const target = redisKey(this.prefix + key);
    const px = ttl > 0 ? String(Math.max(1, Math.round(ttl * 1000))) : '0';
    const args = [
      SWAP_SCRIPT,
      1,
      target,
      this.encode(expected, key),
      this.encode(next, key),
      px,
    ] as const;
    const swapped =
      typeof target !== 'string' && this.client.isCluster
        ? await alone(this.client, ['eval', ...args])
        : await this.client.eval(...args);
    return Number(swapped) > 0;
  };

  /**
   * The cache's tag records (see `TAG_STORE`): one key per tag, `namespace#tag:tag`, read with
   * one GET each (pipelined; on a Cluster each goes to its own slot's node: no CROSSSLOT) and
   * raised with a Lua max.
   *
   * @internal
   */
  [TAG_STORE](): TagStore {
    return this.tagStore;
  }

  private readonly tagStore: TagStore = {
    read: (tags) =>
      Promise.all(
        tags.map((tag) => {
          const target = redisKey(this.namespace + TAG_INFIX + tag);
          const reply: Promise<string | null> =
            typeof target !== 'string' && this.client.isCluster
              ? alone<string | null>(this.client, ['get', target])
              : this.client.get(target);
          return reply.then((raw) => {
            const at = raw === null ? NaN : Number(raw);
            return Number.isFinite(at) ? at : undefined;
          });
        }),
      ),
    mark: async (tags, at, ttlMs) => {
      // As long as the longest-lived tagged entry any instance wrote (not only this one).
      const life = await this.client.get(this.namespace + TAG_LIFE_KEY);
      const shared = life === null ? NaN : Number(life);
      const px =
        ttlMs > 0 && shared !== 0
          ? String(Math.max(1, Math.ceil(ttlMs), Number.isFinite(shared) ? Math.ceil(shared) : 0))
          : '0';
      await Promise.all(
        tags.map((tag) => {
          const target = redisKey(this.namespace + TAG_INFIX + tag);
          const args = [TAG_MARK_SCRIPT, 1, target, String(at), px] as const;
          return typeof target !== 'string' && this.client.isCluster
            ? alone(this.client, ['eval', ...args])
            : this.client.eval(...args);
        }),
      );
    },
    time: async () => {
      const [seconds, micros] = await this.client.time();
      return Number(seconds) * 1000 + Number(micros) / 1000;
    },
    lives: async (ttlMs) => {
      const life = ttlMs > 0 ? String(Math.max(1, Math.ceil(ttlMs))) : '0';
      await this.client.eval(TAG_LIFE_SCRIPT, 1, this.namespace + TAG_LIFE_KEY, life);
    },
  };

  private readEntry(key: string): Promise<SharedEntry | undefined> {
    const namespaced = this.prefix + key;
    let replies: Promise<[string | null, number]>;
    try {
      const target = redisKey(namespaced);
      if (typeof target !== 'string' && this.client.isCluster) {
        replies = together(this.client, target);
      } else {
        this.batch(true);
        replies = Promise.all([this.client.get(target), this.client.pttl(target)]);
      }
    } catch (error) {
      return Promise.reject(asError(error));
    }
    return replies.then(
      ([raw, pttl]) => {
        if (raw === null) return undefined;
        const value = this.decode(namespaced, raw);
        if (value === undefined) return undefined;
        // -1: no expiry; -2 (gone since the GET) or 0: nothing left to keep.
        return { value, ttlMs: pttl === -1 ? undefined : Math.max(0, pttl) };
      },
      (error: unknown) => this.wrongType(namespaced, error),
    );
  }

  /**
   * The values of `keys`, in their order (see {@link CacheAdapter.getMany}): one `MGET` per hash
   * slot, in one pipeline per node (one `MGET` on a single node). A value that is not valid
   * JSON reads as a miss (logged). Rejects with `CachePartialError` when some nodes failed.
   */
  async getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    if (keys.length === 0) return [];
    try {
      return (await this.readMany(keys, false)).map((entry) => entry?.value as T | undefined);
    } catch (error) {
      if (!(error instanceof CachePartialError)) throw error;
      const partial = error as CachePartialError<{ value: unknown }>;
      throw new CachePartialError<T>(
        partial.message,
        partial.results.map((entry) => entry?.value as T | undefined),
        partial.failed,
        partial.cause,
      );
    }
  }

  /**
   * The cache's own bulk read of entries with the milliseconds each has left (`MGET` and the
   * `PTTL`s in one pipeline per node), for the two-tier store (see `ENTRIES_READER`).
   *
   * @internal
   */
  [ENTRIES_READER](): EntriesRead | undefined {
    // Compared by identity: an override of `get` or `getMany` must be called.
    const proto = RedisCacheAdapter.prototype;
    return this.get === proto.get && this.getMany === proto.getMany ? this.entriesRead : undefined;
  }

  private readonly entriesRead: EntriesRead = (keys) =>
    keys.length === 0 ? Promise.resolve([]) : this.readMany(keys, true);

  /**
   * Stores every entry (see {@link CacheAdapter.setMany}): every value and TTL is checked and
   * encoded first (one that cannot be stored rejects the call and nothing is written), then one
   * `SET ... PX` per entry, in one pipeline per node. Rejects with the first failure.
   */
  async setMany(entries: readonly CacheAdapterEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const commands = entries.map(({ key, value, ttl }): Command => {
      const problem = ttlProblem(ttl);
      if (problem) throw new CacheArgumentError(invalidTtlMessage(ttl, problem));
      const payload = this.encode(this.storable(value, key), key);
      const target = redisKey(this.prefix + key);
      // Above 0, at least 1 ms: a tiny fraction must not round to 0 (rejected by Redis).
      const px = ttl > 0 ? Math.max(1, Math.round(ttl * 1000)) : 0;
      return px > 0 ? ['set', target, payload, 'PX', px] : ['set', target, payload];
    });
    const outcomes = await this.perNode(
      commands.map((command) => command[1] as string | Buffer),
      ({ indexes }) => indexes.map((i) => commands[i]),
    );
    const failed = outcomes.find((outcome) => outcome.error !== undefined);
    if (failed?.error) throw failed.error;
  }

  /**
   * Deletes every key (see {@link CacheAdapter.deleteMany}): one `UNLINK` per hash slot, in one
   * pipeline per node; resolves how many existed. Rejects with the first failure.
   */
  async deleteMany(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0;
    const outcomes = await this.perNode(
      keys.map((key) => redisKey(this.prefix + key)),
      ({ targets }) => [['unlink', ...targets]],
    );
    let deleted = 0;
    for (const outcome of outcomes) {
      if (outcome.error) throw outcome.error;
      deleted += Number(outcome.replies[0]);
    }
    return deleted;
  }

  /** `MGET` (and, `withTtl`, the `PTTL`s) of `keys` per slot; see {@link getMany}. */
  private async readMany(
    keys: readonly string[],
    withTtl: boolean,
  ): Promise<Array<SharedEntry | undefined>> {
    const namespaced = keys.map((key) => this.prefix + key);
    const outcomes = await this.perNode(namespaced.map(redisKey), ({ targets }) =>
      withTtl
        ? [['mget', ...targets], ...targets.map((target): Command => ['pttl', target])]
        : [['mget', ...targets]],
    );
    const results = new Array<SharedEntry | undefined>(keys.length).fill(undefined);
    const failed: number[] = [];
    let firstError: Error | undefined;
    for (const { batch, replies, error } of outcomes) {
      if (error) {
        firstError ??= error;
        for (const index of batch.indexes) failed.push(index);
        continue;
      }
      const raws = replies[0] as Array<string | null>;
      batch.indexes.forEach((index, j) => {
        const raw = raws[j];
        if (raw === null || raw === undefined) return;
        const value = this.decode(namespaced[index], raw);
        if (value === undefined) return;
        // -1: no expiry; -2 (gone since the MGET) or 0: nothing left to keep.
        const pttl = withTtl ? Number(replies[1 + j]) : -1;
        results[index] = { value, ttlMs: pttl === -1 ? undefined : Math.max(0, pttl) };
      });
    }
    if (failed.length === 0) return results;
    if (failed.length === keys.length) throw asError(firstError);
    failed.sort((a, b) => a - b);
    throw new CachePartialError(
      `Redis bulk read failed for ${failed.length} of ${keys.length} keys: ` +
        describeError(firstError),
      results,
      failed,
      firstError,
    );
  }

  /**
   * Sends `commandsOf(batch)` for every batch of `targets` — the keys of one hash slot on a
   * Cluster (a multi-key command across slots is `CROSSSLOT`), all keys on a single node — in
   * one pipeline per node, the nodes in parallel; a Cluster pipeline follows `MOVED` / `ASK`.
   * Resolves each batch's replies, or the error of its commands (or of its node).
   */
  private async perNode(
    targets: ReadonlyArray<string | Buffer>,
    commandsOf: (batch: SlotBatch) => Command[],
  ): Promise<BatchOutcome[]> {
    // isCluster, not instanceof: an application's client may come from another ioredis copy.
    if (!this.client.isCluster) {
      const batches: SlotBatch[] = [];
      for (let from = 0; from < targets.length; from += MAX_KEYS_PER_COMMAND) {
        const to = Math.min(targets.length, from + MAX_KEYS_PER_COMMAND);
        const indexes: number[] = [];
        for (let i = from; i < to; i++) indexes.push(i);
        batches.push({ indexes, targets: targets.slice(from, to) });
      }
      return this.pipelines([batches], commandsOf);
    }
    const bySlot = new Map<number, SlotBatch>();
    const full: SlotBatch[] = [];
    targets.forEach((target, i) => {
      const slot = calculateSlot(target);
      let batch = bySlot.get(slot);
      if (!batch) bySlot.set(slot, (batch = { indexes: [], targets: [] }));
      batch.indexes.push(i);
      batch.targets.push(target);
      if (batch.targets.length === MAX_KEYS_PER_COMMAND) {
        full.push(batch);
        bySlot.delete(slot);
      }
    });
    const outcomes = await this.pipelines(this.byNode([...full, ...bySlot.values()]), commandsOf);
    // A slot moved under a pipeline: ioredis followed the MOVED with the whole pipeline, whose
    // slots then span two nodes, and gave up. Its slots are sent again, grouped by the slots
    // table ioredis has just updated.
    const moved = outcomes.filter(({ error }) => error?.message.includes(SPLIT_PIPELINE));
    if (moved.length === 0) return outcomes;
    const again = await this.pipelines(this.byNode(moved.map(({ batch }) => batch)), commandsOf);
    return [...outcomes.filter((outcome) => !moved.includes(outcome)), ...again];
  }

  /** Groups slot batches by the node set serving them, as ioredis groups a pipeline's slots. */
  private byNode(batches: readonly SlotBatch[]): SlotBatch[][] {
    const table = (this.client as Cluster).slots;
    const byNode = new Map<string, SlotBatch[]>();
    for (const batch of batches) {
      const slot = calculateSlot(batch.targets[0]);
      const owner = table[slot];
      const node = owner && owner.length > 0 ? owner.join(',') : `slot ${slot}`;
      const group = byNode.get(node);
      if (group) group.push(batch);
      else byNode.set(node, [batch]);
    }
    return [...byNode.values()];
  }

  /** One pipeline per group of batches, in parallel; each batch's replies or error. */
  private async pipelines(
    groups: readonly SlotBatch[][],
    commandsOf: (batch: SlotBatch) => Command[],
  ): Promise<BatchOutcome[]> {
    const outcomes: BatchOutcome[] = [];
    await Promise.all(
      groups.map(async (batches) => {
        const commands = batches.map(commandsOf);
        try {
          const results = await this.client.pipeline(commands.flat()).exec();
          if (!results) throw new Error('pipeline discarded');
          let at = 0;
          batches.forEach((batch, j) => {
            const replies = results.slice(at, (at += commands[j].length));
            const error = replies.find(([failure]) => failure)?.[0];
            outcomes.push(
              error ? { batch, error } : { batch, replies: replies.map(([, reply]) => reply) },
            );
          });
        } catch (error) {
          for (const batch of batches) outcomes.push({ batch, error: asError(error) });
        }
      }),
    );
    return outcomes;
  }

  private wrongType(namespaced: string, error: unknown): undefined {
    if (!isWrongType(error)) throw error;
    this.log.warn(
      `corrupt:${namespaced}`,
      `Cache key ${quote(namespaced)} holds a non-string Redis type; treated as a miss`,
    );
    return undefined;
  }

  /**
   * Stores `value` in the serializer's form (JSON by default); resolves once Redis acknowledged
   * the write (with its reply, which callers ignore). Rejects with `CacheSerializationError` for
   * a value the serializer cannot hold (the previous entry is kept) and with
   * `CacheArgumentError` when `ttl` is not 0 to `MAX_TTL` seconds.
   */
  set(key: string, value: unknown, ttl: number): Promise<void> {
    let stored: unknown;
    try {
      stored = this.storable(value, key);
    } catch (error) {
      return Promise.reject(asError(error));
    }
    return this.writeStored(key, stored, ttl);
  }

  /**
   * The cache's own write: the value was checked by it already (see `STORED_WRITER`).
   *
   * @internal
   */
  [STORED_WRITER](): StoredWrite | undefined {
    // Compared by identity: an override of `set` (a subclass, a test spy) must be called.
    return this.set === RedisCacheAdapter.prototype.set ? this.storedWrite : undefined;
  }

  private readonly storedWrite: StoredWrite = (key, value, ttl, ifAbsent) =>
    this.writeStored(key, value, ttl, ifAbsent);

  /** {@link set} of a value already in its stored form. */
  private writeStored(key: string, value: unknown, ttl: number, ifAbsent = false): Promise<void> {
    let written: Promise<unknown>;
    try {
      const problem = ttlProblem(ttl);
      if (problem) throw new CacheArgumentError(invalidTtlMessage(ttl, problem));
      const payload = this.encode(value, key);
      const target = redisKey(this.prefix + key);
      // Above 0, at least 1 ms: a tiny fraction must not round to 0 (rejected by Redis).
      const px = ttl > 0 ? Math.max(1, Math.round(ttl * 1000)) : 0;
      this.batch();
      if (ifAbsent) {
        const command: Array<string | Buffer | number> = ['set', target, payload, 'NX'];
        if (px > 0) command.push('PX', px);
        written =
          typeof target !== 'string' && this.client.isCluster
            ? alone(this.client, command)
            : this.client.call(...(command as [string, ...Array<string | Buffer | number>]));
      } else {
        written =
          typeof target !== 'string' && this.client.isCluster
            ? alone(
                this.client,
                px > 0 ? ['set', target, payload, 'PX', px] : ['set', target, payload],
              )
            : px > 0
              ? this.client.set(target, payload, 'PX', px)
              : this.client.set(target, payload);
      }
    } catch (error) {
      // A value JSON cannot write (a BigInt, a throwing toJSON): a rejection, like any failure.
      return Promise.reject(asError(error));
    }
    // No `.then` to drop the 'OK': that would cost a microtask turn on every write.
    return written as Promise<void>;
  }

  async delete(key: string): Promise<boolean> {
    const target = redisKey(this.prefix + key);
    const count =
      typeof target !== 'string' && this.client.isCluster
        ? await alone<number>(this.client, ['unlink', target])
        : await this.client.unlink(target);
    return count > 0;
  }

  /**
   * `true` exactly when {@link get} would hit: read and decoded like `get` (one round trip),
   * so data `get` treats as a miss (not JSON, another Redis type) is `false` here too.
   */
  has(key: string): Promise<boolean> {
    return this.get(key).then(isPresent);
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

  /**
   * Connects (an owned client): with `strict`, rejects with {@link CacheConnectionError} when
   * Redis cannot be reached. Started once: a second call (the cache's stack waits on it before it
   * opens its bus) shares the first.
   */
  onModuleInit(): Promise<void> {
    return (this.starting ??= this.connectAtStartup());
  }

  private starting: Promise<void> | undefined;

  private async connectAtStartup(): Promise<void> {
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
      new CacheLogger().warn(
        `Cannot reach ${this.target} at startup (${reason}); ${this.whileUnreachable} ` +
          `until it answers. Reconnecting in the background.`,
      );
    }
  }

  async onApplicationShutdown(): Promise<void> {
    this.starting = undefined;
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

  /**
   * The text stored for a value already in its stored form (see {@link set}): its JSON, or what
   * the `serializer` writes. Every value written goes through here.
   */
  private encode(value: unknown, key: string): string {
    const codec = this.codec;
    if (codec === undefined) return JSON.stringify(value);
    return serializeWith(codec, value, key);
  }

  /**
   * The value `raw` (read from `namespaced`) holds, or `undefined` (a miss, with a warning) for
   * text the serializer cannot read. Every value read goes through here.
   */
  private decode<T>(namespaced: string, raw: string): T | undefined {
    const codec = this.codec;
    try {
      return (codec === undefined ? JSON.parse(raw) : codec.deserialize(raw)) as T;
    } catch {
      this.log.warn(
        `corrupt:${namespaced}`,
        codec === undefined
          ? `Cache key ${quote(namespaced)} holds data that is not valid JSON; treated as a miss`
          : `Cache key ${quote(namespaced)} holds data the serializer cannot read; treated as a miss`,
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
  private batch(pair = false): void {
    if (this.corked) return;
    const client = this.client;
    // isCluster, not instanceof: an application's client may come from another ioredis copy.
    if (client.isCluster || client.status !== 'ready') return;
    const { commandQueue, stream: socket } = client as Redis;
    // `pair`: two commands are about to be issued together; they go out in one write anyway.
    if (!commandQueue || (commandQueue.length === 0 && !pair)) return;
    if (!socket || typeof socket.cork !== 'function' || socket.writableCorked > 0) return;
    if (socket.destroyed) return;
    socket.cork();
    this.corked = socket;
    process.nextTick(this.uncork);
  }

  private async deleteMatching(pattern: string): Promise<number> {
    // isCluster, not instanceof: an application's client may come from another ioredis copy.
    const client = this.client;
    const nodes = client.isCluster ? (client as Cluster).nodes('master') : [client as Redis];
    const counts = await Promise.all(nodes.map((node) => scanAndUnlink(node, pattern)));
    return counts.reduce((sum, n) => sum + n, 0);
  }
}

async function scanAndUnlink(node: Redis, pattern: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  // The Buffer form: ioredis would decode the keys SCAN returns as UTF-8, mangling the CESU-8
  // ones, and UNLINK must get back the exact bytes. ioredis types a pattern as a string, but
  // sends a Buffer argument byte for byte, as it does keys.
  const match = redisKey(pattern) as string;
  do {
    const [next, keys] = await node.scanBuffer(cursor, 'MATCH', match, 'COUNT', SCAN_COUNT);
    cursor = next.toString();
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

// A UTF-16 surrogate code unit, paired or lone (no `u` flag: the class matches code units).
const SURROGATE = /[\uD800-\uDFFF]/;

/**
 * The one place a string becomes a Redis key (or `SCAN` pattern). ioredis writes strings as
 * UTF-8, which turns every lone surrogate into U+FFFD, so `'\uD800'`, `'\uDC00'` and `'\uFFFD'`
 * would share one key. A string holding a surrogate is therefore sent as a Buffer in CESU-8:
 * UTF-8, except that each surrogate code unit, paired or lone, is its own 3-byte sequence.
 * That is injective over all JS strings and keeps prefixes (a prefix ending in a high surrogate
 * still matches the keys that go on with the low one, as on the memory backend). Every other
 * string is returned as is: the same bytes as UTF-8, and no cost beyond the check.
 *
 * @internal
 */
export function redisKey(text: string): string | Buffer {
  return SURROGATE.test(text) ? cesu8(text) : text;
}

function cesu8(text: string): Buffer {
  const bytes = Buffer.allocUnsafe(text.length * 3);
  let at = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit < 0x80) {
      bytes[at++] = unit;
    } else if (unit < 0x800) {
      bytes[at++] = 0xc0 | (unit >> 6);
      bytes[at++] = 0x80 | (unit & 0x3f);
    } else {
      bytes[at++] = 0xe0 | (unit >> 12);
      bytes[at++] = 0x80 | ((unit >> 6) & 0x3f);
      bytes[at++] = 0x80 | (unit & 0x3f);
    }
  }
  return bytes.subarray(0, at);
}

/** Escapes Redis glob metacharacters so a prefix matches only itself. @internal */
export function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}

/**
 * Runs one command with a Buffer key on a cluster, in a pipeline of its own. ioredis's cluster
 * auto-pipelining picks a Buffer key's node from its UTF-8 decoding (`${key}`), not its bytes,
 * and then fails the whole batch ("All keys in the pipeline should belong to the same slots
 * allocation group"); a pipeline routes by the bytes (and follows MOVED/ASK).
 */
async function alone<T = unknown>(
  client: Redis | Cluster,
  command: Array<string | Buffer | number>,
): Promise<T> {
  const [[error, reply]] = (await client.pipeline([command]).exec()) ?? [[null, null]];
  if (error) throw error;
  return reply as T;
}

/** `GET` and `PTTL` of a Buffer key on a cluster, in one pipeline (see {@link alone}). */
async function together(client: Redis | Cluster, key: Buffer): Promise<[string | null, number]> {
  const results = (await client
    .pipeline([
      ['get', key],
      ['pttl', key],
    ])
    .exec()) ?? [
    [null, null],
    [null, -2],
  ];
  for (const [error] of results) if (error) throw error;
  return [results[0][1] as string | null, results[1][1] as number];
}

function isPresent(value: unknown): boolean {
  return value !== undefined;
}

function isWrongType(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('WRONGTYPE');
}

function describeNode(node: ClusterNode): string {
  // host:port only: a node URL's userinfo is never shown, whatever characters it holds.
  return describeRedisNode(node);
}

function describeTarget(url: string | undefined, options: RedisOptions): string {
  if (url) return describeRedisUrl(url);
  if (options.sentinels) return `Redis sentinel group '${options.name ?? ''}'`;
  return `Redis at ${options.host ?? REDIS_DEFAULT_HOST}:${options.port ?? REDIS_DEFAULT_PORT}`;
}
