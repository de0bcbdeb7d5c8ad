import { CacheArgumentError, CacheKeyError, CachePartialError } from '../utils/cache.errors';
import { randomUUID } from 'node:crypto';
import {
  invalidTtlMessage,
  jitteredTtl,
  LOADING_OPTION_FIELDS,
  loadingOptionsProblem,
  MAX_TTL,
  MAX_TAGS,
  parseTtl,
  tagsProblem,
  ttlProblem,
} from '../config/validators';
import { DEFAULT_LOAD_POLICY, loadPolicyOf, type LoadPolicy } from '../config/load-policy';
import type { CacheAdapter } from '../interfaces/cache-adapter.interface';
import type {
  CacheLoaderTimeouts,
  CacheLoadingOptions,
} from '../interfaces/cache-module-options.interface';
import { entryReaderOf, entrySwapOf, type SharedEntry } from '../interfaces/entry-reader';
import { keyLockOf, type KeyLock } from '../interfaces/key-lock';
import { tagStoreOf } from '../interfaces/tag-store';
import type { StoredWrite } from '../interfaces/stored-write';
import { describeError, describeValue, quote } from '../utils/describe-value';
import { storableFor, type Storable } from '../utils/serializer';
import type { CacheSerializer } from '../interfaces/cache-serializer.interface';
import { isThenable } from '../utils/thenable';
import { coarseClock } from '../utils/coarse-clock';
import { asError, withTimeout } from '../utils/timeout';
import type { FailoverTier } from '../tiers/failover-tier';
import type { LocalTier } from '../tiers/local-tier';
import type { TwoTier } from '../tiers/two-tier';
import type { BusMessage, BusState } from '../bus/cache-bus';
import {
  isSealed,
  isStale,
  opened,
  seal,
  tagsOf,
  type Envelope,
  type EntryTimes,
} from './entry-envelope';
import { ErrorPolicy } from './error-policy';
import { CacheEvents, type CacheEventFlags } from './cache-events';
import {
  CacheCounters,
  CLEAR,
  DELETE,
  DELETE_BY_PREFIX,
  DELETE_BY_TAG,
  EXPIRE,
  GET_HIT,
  GET_MISS,
  HAS_HIT,
  HAS_MISS,
  INVALIDATE,
  SET,
  WRAP_HIT,
  WRAP_MISS,
  WRAP_SHARED,
  WRAP_STALE,
} from './cache-counters';
import { L1, L2, TIER_NAMES, type SourcedRead, type Tier } from '../tiers/sourced-read';
import type { RemoteTier } from '../tiers/remote-tier';
import type { MemoryCacheAdapter } from '../adapters/memory.adapter';
import type { CacheReadOperation } from '../interfaces/cache-events.interface';
import type { CacheHealth, CacheL1Stats, CacheStats } from '../interfaces/cache-stats.interface';
import { redact } from '../utils/redact';
import { TagClock } from './tag-clock';
import { LoaderRunner } from './loader-runner';
import { SingleFlight, type Flight } from './single-flight';
import { LoadBatch, valuesOf, type BatchLoaded } from './load-batch';
import { deleteManyOf, getManyOf, setManyOf } from '../tiers/bulk';

/**
 * Options of {@link CacheService.wrap} beyond the TTL: the loading options of
 * {@link CacheLoadingOptions} (each defaults to the module's) and `unless`. An unknown field is
 * refused (`CacheArgumentError`).
 *
 * @example
 * ```ts
 * await cache.wrap(`user:${id}`, () => users.find(id), {
 *   ttl: 60,
 *   grace: 3600,               // serve the last good value for an hour if the loader fails
 *   timeouts: { soft: 0.2 },   // or takes longer than 200 ms
 *   refreshAhead: 0.8,         // refresh in the background after 48 s
 *   lock: true,                // one loader across the fleet
 * });
 * ```
 */
export interface WrapOptions<T> extends CacheLoadingOptions {
  /**
   * Seconds to keep the loaded value; defaults to the module's `ttl`. `0` never expires. A
   * string of plain decimal digits (`'60'`, as `ConfigService.get` returns it) is read as that
   * number.
   */
  ttl?: number | `${number}`;
  /**
   * Tags of the loaded value: `deleteByTag` of any of them invalidates it (and a load of it in
   * flight then is not stored).
   */
  tags?: readonly string[];
  /** When it returns `true` for the loaded value, the value is returned but not stored. */
  unless?: (value: T) => boolean;
}

/**
 * Options of {@link CacheService.set} beyond the TTL. An unknown field is refused
 * (`CacheArgumentError`).
 *
 * @example
 * ```ts
 * await cache.set('config', config, { ttl: 600, jitter: 0.2 }); // lives 600 to 720 s
 * await cache.set('rates', rates, { ttl: 60, grace: 3600 });   // servable stale for an hour
 * ```
 */
export interface SetOptions {
  /**
   * Seconds to keep the value; defaults to the module's `ttl`. `0` never expires. A string of
   * plain decimal digits (`'60'`) is read as that number.
   */
  ttl?: number | `${number}`;
  /**
   * Fraction of the TTL (0 to 1) added at random: the entry lives between `ttl` and
   * `ttl * (1 + jitter)` seconds.
   * @default the module's `jitter`
   */
  jitter?: number;
  /**
   * Seconds the entry is kept after it expires, as a stale value a failing loader's callers
   * get (see {@link CacheLoadingOptions.grace}).
   * @default the module's `grace`
   */
  grace?: number;
  /** Tags of the entry: `deleteByTag` of any of them invalidates it. */
  tags?: readonly string[];
}

/** One entry of {@link CacheStack.setMany}: a key, its value, and the options of a `set`. */
export interface CacheManyEntry extends SetOptions {
  /** The key. */
  readonly key: string;
  /** The value (stored as `set` stores it). */
  readonly value: unknown;
}

/**
 * The options of {@link CacheStack.wrapMany}: those of `wrap`, each applied to every key, with
 * `tags` either the same for every entry or a function of each key.
 */
export interface WrapManyOptions<T> extends Omit<WrapOptions<T>, 'tags'> {
  /** Tags of every loaded value, or the tags of the value loaded for `key`. */
  tags?: readonly string[] | ((key: string) => readonly string[]);
}

const WRAP_FIELDS: readonly string[] = ['ttl', ...LOADING_OPTION_FIELDS, 'tags', 'unless'];
const SET_FIELDS: readonly string[] = ['ttl', 'jitter', 'grace', 'tags'];
const WRAP_FIELD_SET: ReadonlySet<string> = new Set(WRAP_FIELDS);

/**
 * How {@link CacheService.wrap} answered: `hit` from the cache, `miss` by running the loader,
 * `shared` by joining a load another caller started, `stale` with an expired value kept by
 * `grace` (the loader failed or was slower than a timeout), `disabled` by calling through.
 */
export type WrapStatus = 'hit' | 'miss' | 'shared' | 'stale' | 'disabled';

/** How one wrap was answered, with the value. */
export interface WrapResult<T> {
  readonly value: T;
  readonly status: WrapStatus;
}

/** What the stack needs of the resolved module options. */
export interface CacheStackOptions {
  /** The cache's name in stats, events and metrics. @defaultValue 'default' */
  readonly name?: string;
  /**
   * Awaited before the stack opens its bus: the connections its module opens at startup. When it
   * rejects (a `strict` cache could not reach Redis, and the application's startup fails), the
   * stack opens nothing: Nest runs no shutdown hook after a failed startup. @defaultValue none
   */
  readonly startAfter?: () => Promise<unknown>;
  /**
   * `@CacheTTL` values are milliseconds: a module built by `CacheModule.register`
   * (`@nestjs/cache-manager`'s units). @defaultValue false (seconds)
   */
  readonly routeTtlInMs?: boolean;
  readonly enabled: boolean;
  /** Default TTL in seconds. */
  readonly ttl: number;
  readonly namespace: string;
  /** Fraction of the TTL added at random to each write (0 to 1). @defaultValue 0 */
  readonly jitter?: number;
  /** Default loader timeouts, in seconds. @defaultValue none */
  readonly timeouts?: Readonly<CacheLoaderTimeouts>;
  /** Default grace, in seconds. @defaultValue 0 */
  readonly grace?: number;
  /** Seconds a failed refresh is not retried while its stale value is served. @defaultValue 10 */
  readonly graceBackoff?: number;
  /** Default refresh-ahead fraction. @defaultValue none */
  readonly refreshAhead?: number;
  /** Default lock. @defaultValue false */
  readonly lock?: CacheLoadingOptions['lock'];
  /** All of the above resolved (the module's); when given, the fields above are not read. */
  readonly loading?: LoadPolicy;
  /**
   * What values are checked and converted for before any write (the `serializer` option,
   * resolved; it must be the one the adapters write with). @defaultValue JSON
   */
  readonly serializer?: CacheSerializer;
}

/**
 * The tiers a stack owns, exactly one of the four shapes (built by `createCacheStack`):
 * the local tier alone (memory, or an adapter with a sync view), a plain remote store (Redis
 * without failover, or an adapter without a sync view: failures go through the stack's error
 * policy), the failover policy over the remote tier (timeout, breaker, journal, recovery)
 * and a local fallback, or two tiers (`l1`): an in-process L1 in front of the remote store or
 * the failover remote tier, kept coherent by the bus.
 */
export type CacheTiers =
  | {
      readonly local: LocalTier;
      readonly remote?: undefined;
      readonly failover?: undefined;
      readonly twoTier?: undefined;
    }
  | {
      readonly remote: CacheAdapter;
      /** The remote adapter's unchecked write of a value the stack has checked, if it has one. */
      readonly write?: StoredWrite;
      readonly local?: undefined;
      readonly failover?: undefined;
      readonly twoTier?: undefined;
    }
  | {
      readonly failover: FailoverTier;
      readonly local?: undefined;
      readonly remote?: undefined;
      readonly twoTier?: undefined;
    }
  | {
      readonly twoTier: TwoTier;
      /** The L1 is the stack's own (started and stopped with it), not a failover fallback. */
      readonly ownL1: boolean;
      readonly local?: undefined;
      readonly remote?: undefined;
      readonly failover?: undefined;
    };

const RESOLVED: Promise<void> = Promise.resolve();

/**
 * The one core of an application's cache: every entry point (CacheService, the decorators, the
 * interceptor, `cacheResult`, the invalidation rules) goes through it. It validates keys, TTLs
 * and values, owns single-flight and supersession of loads in flight, runs loaders, applies the
 * error policy (a backend failure is logged and answered as a miss or a no-op, never thrown),
 * and reads the local tier synchronously when the adapter offers one.
 *
 * Not exported by the package: applications use {@link CacheService}. It appears in the
 * declarations only because the services and the interceptor built on it name it.
 */
export class CacheStack {
  /** What the cache did since it started: read by `stats()` and the metrics. @internal */
  readonly counters = new CacheCounters();
  /** The cache's typed events (`CacheService.events`). */
  readonly events = new CacheEvents((topic, message) => this.errors.warn(topic, message));
  /** Which events have listeners: an event nobody listens to is never built. */
  private readonly on: Readonly<CacheEventFlags> = this.events.listening;
  /** Backend failures are logged and counted here. */
  private readonly errors = new ErrorPolicy((operation, key, error) =>
    this.backendFailed(operation, key, error),
  );
  private readonly flights = new SingleFlight();
  private readonly loader = new LoaderRunner();
  /**
   * The in-process tier when it is the only one: read and written without a Promise, so a call
   * costs one resolved Promise instead of a chain of them (bench/RESULTS.md).
   */
  private readonly local: LocalTier | undefined;
  /** Two tiers (`l1`): the L1 is read synchronously first, the rest goes through {@link store}. */
  private readonly twoTier: TwoTier | undefined;
  /**
   * What every asynchronous call reaches: the local tier's store, the plain remote store, or the
   * failover policy over the remote tier and its fallback.
   */
  private readonly store: CacheAdapter;
  /** Writes a value this stack has checked (`toStorable`) to {@link store}. */
  private readonly write: StoredWrite;
  /** Writes a loader's value (two tiers: undone if another instance changed the key meanwhile). */
  private readonly writeLoaded: (
    key: string,
    value: unknown,
    ttl: number,
    replacing: boolean,
  ) => Promise<unknown>;
  /**
   * The module's loading options, and those of `CacheInterceptor`'s loads: without the module's
   * timeouts and refresh-ahead, since its loader answers a request (a slow client stretches
   * it, and a background run would have no request of its own to answer).
   */
  private readonly policy: LoadPolicy;
  private readonly routePolicy: LoadPolicy;
  /** The fleet-wide lock of the shared store, if it has one (`lock`). */
  private readonly keyLock: KeyLock | undefined;
  /** Keys whose refresh failed, with the time (ms) until which their stale value is served. */
  private readonly backoff = new Map<string, number>();
  /** Lock waiters of this process by key: a bus message about the key wakes them early. */
  private readonly lockWaiters = new Map<string, () => void>();
  /** When each tag was last invalidated (lazy `deleteByTag`). */
  private readonly tagClock: TagClock;

  /** The cache's name in stats, events and metrics (`'default'` for the module's cache). */
  readonly name: string;
  /** The shared tier's resilience (failover): its circuit and outage journal. */
  private readonly remoteTier: RemoteTier | undefined;
  /** Reads the async store telling which tier answered (failover, two tiers). */
  private readonly sourced: ((key: string) => Promise<SourcedRead>) | undefined;
  /** The tier a plain read of {@link store} comes from. */
  private readonly storeTier: Tier;

  /** Checks a value and brings it to its stored form for the serializer (`toStorable`). */
  private readonly storable: Storable;

  constructor(
    /** The tiers this stack owns (their lifecycle stays with the adapters Nest provides). */
    readonly tiers: CacheTiers,
    private readonly options: CacheStackOptions,
  ) {
    this.name = options.name ?? 'default';
    this.storable = storableFor(options.serializer);
    this.local = tiers.local;
    const twoTier = tiers.twoTier;
    this.twoTier = twoTier;
    twoTier?.onRemoteChange((message) => this.remoteChange(message));
    this.store = twoTier ?? (tiers.local ? tiers.local.store : (tiers.remote ?? tiers.failover));
    const store = this.store;
    this.write = (tiers.remote && tiers.write) ?? ((key, value, ttl) => store.set(key, value, ttl));
    const write = this.write;
    this.writeLoaded = twoTier
      ? (key, value, ttl, replacing) => twoTier.write(key, value, ttl, true, !replacing)
      : (key, value, ttl) => write(key, value, ttl);
    this.policy = options.loading ?? loadPolicyOf(DEFAULT_LOAD_POLICY, options);
    this.routePolicy = {
      ...this.policy,
      soft: undefined,
      hard: undefined,
      refreshAhead: undefined,
    };
    this.keyLock = tiers.remote
      ? keyLockOf(tiers.remote)
      : (tiers.failover?.remote.keyLock ?? twoTier?.keyLock);
    const tagStore = tiers.remote
      ? tagStoreOf(tiers.remote)
      : (tiers.failover?.remote.tagStore ?? twoTier?.tagStore);
    const lifetime = options.ttl > 0 ? options.ttl + this.policy.grace : 0;
    this.tagClock = new TagClock(
      tagStore,
      twoTier ? () => twoTier.busState === 'live' : () => false,
      lifetime,
      () => {
        // No store keeps the marks: drop what they could cover.
        this.flights.supersede('', false);
        if (tiers.local) {
          tiers.local.dropAll();
          return undefined;
        }
        // A store of the user's own (no tag records): the marks go once it is cleared.
        return this.store.clear().catch((error: unknown) => {
          this.errors.failed('CLEAR', '*', error);
          throw error;
        });
      },
    );
    this.tagsLocalOnly = tagStore === undefined && tiers.local === undefined;
    this.storeTier = tiers.local ? L1 : L2;
    const failover = tiers.failover;
    this.sourced = twoTier
      ? (key) => twoTier.read(key)
      : failover
        ? (key) => failover.read(key)
        : undefined;
    this.remoteTier = failover?.remote ?? twoTier?.remote;
    this.remoteTier?.onFailure((operation, target, error) =>
      this.backendFailed(operation, target, error),
    );
    this.remoteTier?.onStateChange(({ from, to, reason }) => {
      if (this.on.circuit) this.events.emit('circuit', { cache: this.name, from, to, reason });
    });
    twoTier?.observe({
      published: (message) => {
        this.counters.busPublished++;
        if (this.on['bus.message']) this.busMessage('out', message());
      },
      received: (message) => {
        this.counters.busReceived++;
        if (this.on['bus.message']) this.busMessage('in', message);
      },
      state: (state, reason) => {
        if (this.on['bus.state'])
          this.events.emit('bus.state', { cache: this.name, state, reason });
      },
      gap: (ms) => {
        this.counters.busGaps++;
        if (this.on['bus.gap']) this.events.emit('bus.gap', { cache: this.name, durationMs: ms });
      },
    });
  }

  /** Tags are used on a shared store of the user's own, which keeps no tag records. */
  private readonly tagsLocalOnly: boolean;
  private warnedLocalTags = false;

  /** Warns once that `deleteByTag` reaches this process only (see {@link tagsLocalOnly}). */
  private tagsHere(): void {
    if (!this.tagsLocalOnly || this.warnedLocalTags) return;
    this.warnedLocalTags = true;
    this.errors.warn(
      'tags:local-only',
      `Cache tags on adapter ${this.store.constructor.name}: it keeps no tag records, so ` +
        `deleteByTag reaches this process only (other instances, and this one after a ` +
        `restart, still serve the entries); use the memory or Redis provider for tags`,
    );
  }

  /**
   * Starts what the stack owns beyond the adapter: with two tiers, the bus (and the L1 when it
   * is not a failover fallback). Called by Nest.
   */
  async onModuleInit(): Promise<void> {
    // Switched off (`enabled: false`): no call reaches the tiers, so no bus connection either.
    if (!this.options.enabled) return;
    await this.options.startAfter?.();
    await this.twoTier?.start(this.tiers.twoTier ? this.tiers.ownL1 : false);
    // Tag marks on the shared store's clock, before the first request (bounded: an unreachable
    // store must not hold startup; it is tried again soon), then every minute.
    const synced = await withTimeout(this.tagClock.sync(), TAG_CLOCK_FIRST_SYNC_MS).catch(
      () => false,
    );
    this.clockTimer = setInterval(() => void this.tagClock.sync(), TAG_CLOCK_SYNC_MS);
    this.clockTimer.unref();
    if (!synced) {
      setTimeout(() => void this.tagClock.sync(), TAG_CLOCK_RETRY_MS).unref();
    }
  }

  /** Stops the bus (after a bounded flush) and the stack's own L1. Called by Nest. */
  async onApplicationShutdown(signal?: string): Promise<void> {
    clearInterval(this.clockTimer);
    this.clockTimer = undefined;
    await this.twoTier?.stop(this.tiers.twoTier ? this.tiers.ownL1 : false, signal);
  }

  /** Re-aligns the tag clock on the shared store's every {@link TAG_CLOCK_SYNC_MS}. */
  private clockTimer: NodeJS.Timeout | undefined;

  /**
   * Whether the bus hears the other instances: `live`, `deaf` (the L1 is bypassed until it is
   * live again) or `off` (no bus: one tier, or `bus: false`).
   */
  get busState(): BusState {
    return this.twoTier ? this.twoTier.busState : 'off';
  }

  /** `false` when caching is switched off (`enabled: false`). */
  get enabled(): boolean {
    return this.options.enabled;
  }

  /** `@CacheTTL` values are milliseconds (a module built by `CacheModule.register`). */
  get routeTtlInMs(): boolean {
    return this.options.routeTtlInMs === true;
  }

  /** The default TTL in seconds. */
  get defaultTtl(): number {
    return this.options.ttl;
  }

  /** The namespace every key is written under. */
  get namespace(): string {
    return this.options.namespace;
  }

  /** Backend calls that have failed so far (see {@link ErrorPolicy.failures}). */
  get failures(): number {
    return this.errors.failures;
  }

  /** Loads in flight now. */
  get loadsInFlight(): number {
    return this.flights.size;
  }

  /** The cached value of `key`, or `undefined` on a miss (an expired entry kept by `grace` too). */
  get<T>(key: string): Promise<T | undefined> {
    return this.read<T>(key, READ_GET);
  }

  /** {@link get}, counted as the read `op` (`get`, or `has`). */
  private read<T>(key: string, op: ReadKind): Promise<T | undefined> {
    const invalid = keyError(key);
    if (invalid) return Promise.reject(invalid);
    if (!this.options.enabled) return Promise.resolve(undefined);
    if (this.local) {
      return Promise.resolve(this.counted(op, key, L1, this.fresh<T>(key, this.local.get(key))));
    }
    const near = this.nearCopy(key);
    if (near !== undefined)
      return Promise.resolve(this.counted(op, key, L1, this.fresh<T>(key, near)));
    const sourced = this.sourced;
    if (sourced) {
      return this.errors.settled(
        'GET',
        key,
        () => sourced(key),
        (read) => this.counted(op, key, read.tier, this.fresh<T>(key, read.value)),
        () => this.countRead<T>(op, key, L2, undefined),
      );
    }
    return this.errors.settled(
      'GET',
      key,
      () => this.store.get(key),
      (stored) => this.counted(op, key, L2, this.fresh<T>(key, stored)),
      () => this.countRead<T>(op, key, L2, undefined),
    );
  }

  /** Counts a read's answer (once settled) as a hit of `tier` or a miss. */
  private counted<T>(
    op: ReadKind,
    key: string,
    tier: Tier,
    value: T | undefined | Promise<T | undefined>,
  ): T | undefined | Promise<T | undefined> {
    if (value instanceof Promise) {
      return value.then((settled: T | undefined) => this.countRead(op, key, tier, settled));
    }
    return this.countRead(op, key, tier, value);
  }

  private countRead<T>(op: ReadKind, key: string, tier: Tier, value: T | undefined): T | undefined {
    if (value === undefined) {
      this.counters.requests[op.miss]++;
      if (this.on.miss) {
        this.events.emit('miss', { cache: this.name, key, operation: op.name, shared: false });
      }
    } else {
      this.counters.requests[op.hit[tier]]++;
      if (this.on.hit) {
        this.events.emit('hit', {
          cache: this.name,
          key,
          operation: op.name,
          tier: TIER_NAMES[tier],
        });
      }
    }
    return value;
  }

  /**
   * The cached value of `key` when the local tier answers synchronously, else `undefined`: lets
   * a decorated method's hit skip the Promise chain. An entry that is stale or due for a
   * refresh is left to `wrap`, which knows the loader.
   */
  peek<T>(key: string, count = true): T | undefined {
    if (!this.options.enabled) return undefined;
    const stored = this.local ? this.local.get(key) : this.twoTier?.peek(key);
    if (!isSealed(stored)) {
      if (count && stored !== undefined) this.peeked(key);
      return stored as T | undefined;
    }
    const envelope = opened(stored);
    if (envelope === undefined) return undefined;
    const now = hitClock();
    if (isStale(envelope, now) || (envelope.r !== undefined && now >= envelope.r)) return undefined;
    // Tagged: only when this process knows its tags hold (else `wrap` asks the store).
    if (envelope.g !== undefined && this.tagClock.judge(envelope.g, envelope.c ?? 0) !== true) {
      return undefined;
    }
    if (count) this.peeked(key);
    return envelope.v as T;
  }

  /**
   * Counts a get-or-load answered by {@link peek} (a hit of the in-process tier): called by
   * `peek` itself, or by a caller that peeked without counting and answered from `key`.
   */
  peeked(key: string): void {
    this.counters.requests[WRAP_HIT[L1]]++;
    if (this.on.hit)
      this.events.emit('hit', { cache: this.name, key, operation: 'wrap', tier: 'l1' });
  }

  /**
   * The cached values of `keys`, in their order (`undefined`: a miss): the in-process tier
   * answers first, and the rest is one read of the store (one round trip per Redis node). A
   * backend failure, whole or partial, reads as misses (logged); each key counts as one `get`.
   */
  getMany<T>(keys: readonly string[]): Promise<Array<T | undefined>> {
    try {
      assertKeys(keys, 'getMany');
    } catch (error) {
      return Promise.reject(asError(error));
    }
    if (!this.options.enabled || keys.length === 0) {
      return Promise.resolve(keys.map(() => undefined));
    }
    return this.readMany(keys).then((reads) => {
      let pending = false;
      const values = reads.map((read, i) => {
        const value = this.counted<T>(
          READ_GET,
          keys[i],
          read.tier,
          this.fresh<T>(keys[i], read.value),
        );
        if (value instanceof Promise) pending = true;
        return value;
      });
      // Tags read from the store: some answers settle later.
      return pending
        ? Promise.all(values.map((value) => Promise.resolve(value)))
        : (values as Array<T | undefined>);
    });
  }

  /**
   * What the tiers hold for each of `keys` (never rejects): the in-process copies, then one bulk
   * read of the rest. A failed read of some keys (a Cluster node down) leaves them misses.
   */
  private async readMany(keys: readonly string[]): Promise<SourcedRead[]> {
    const local = this.local;
    if (local) return keys.map((key) => ({ value: local.get(key), tier: L1 }));
    const reads = new Array<SourcedRead>(keys.length);
    const rest: string[] = [];
    const at: number[] = [];
    for (let i = 0; i < keys.length; i++) {
      const near = this.nearCopy(keys[i]);
      if (near !== undefined) reads[i] = { value: near, tier: L1 };
      else {
        rest.push(keys[i]);
        at.push(i);
      }
    }
    if (rest.length === 0) return reads;
    let found: ReadonlyArray<SourcedRead | undefined>;
    try {
      found = await this.readManySourced(rest);
    } catch (error) {
      this.errors.failed('MGET', keysLabel(rest), error);
      found = partialReads(error, this.sourced !== undefined, this.storeTier);
    }
    for (let j = 0; j < at.length; j++) reads[at[j]] = found[j] ?? MISSED;
    return reads;
  }

  /** The async store's answer for each of `keys`, with the tier that held it. */
  private readManySourced(keys: readonly string[]): Promise<ReadonlyArray<SourcedRead>> {
    const { twoTier, failover } = this.tiers;
    if (twoTier) return twoTier.readMany(keys);
    if (failover) return failover.readMany(keys);
    const tier = this.storeTier;
    return getManyOf(this.store, keys).then((values) => values.map((value) => ({ value, tier })));
  }

  /**
   * Stores every entry (checked first, all of them: one invalid key, TTL, option or value rejects
   * the call and writes nothing), in one write of the store (one round trip per Redis node). A
   * backend failure is logged, never thrown.
   */
  setMany(entries: readonly CacheManyEntry[]): Promise<void> {
    const writes: Array<{ key: string; value: unknown; ttl: number }> = [];
    let longest = 0;
    let tagged = false;
    try {
      if (!Array.isArray(entries)) {
        throw new CacheArgumentError(
          `setMany needs an array of { key, value, ttl?, tags? } entries, got ${describeValue(entries)}.`,
        );
      }
      for (let i = 0; i < entries.length; i++) {
        const entry: unknown = entries[i];
        if (typeof entry !== 'object' || entry === null) {
          throw new CacheArgumentError(
            `setMany entry ${i} must be an object { key, value, ttl?, tags? }, got ${describeValue(entry)}.`,
          );
        }
        const { key, value, ...options } = entry as CacheManyEntry;
        const invalid = keyError(key);
        if (invalid) throw new CacheKeyError(`setMany entry ${i}: ${invalid.message}`);
        const { ttl: lifetime, grace, tags } = this.entryOptionsOf(options, i);
        const times = timesOf(lifetime, grace, undefined, tags, tags ? this.tagClock.stamp() : 0);
        const seconds = keptFor(lifetime, times);
        writes.push({ key, value: seal(this.storable(value, key), times), ttl: seconds });
        if (tags) {
          tagged = true;
          longest = seconds === 0 || longest === Infinity ? Infinity : Math.max(longest, seconds);
        }
      }
    } catch (error) {
      return Promise.reject(asError(error));
    }
    if (!this.options.enabled || writes.length === 0) return RESOLVED;
    let published: Promise<void> | undefined;
    if (tagged) {
      this.tagsHere();
      published = this.tagClock.lives(longest === Infinity ? 0 : longest);
    }
    for (const { key } of writes) {
      this.flights.supersede(key, true);
      if (this.backoff.size > 0) this.backoff.delete(key);
    }
    if (this.local) {
      for (const { key, value, ttl } of writes) {
        this.local.set(key, value, ttl);
        this.wrote(key, ttl);
      }
      return RESOLVED;
    }
    const write = (): Promise<void> =>
      setManyOf(this.store, writes).then(
        () => {
          for (const { key, ttl } of writes) this.wrote(key, ttl);
        },
        (error: unknown) => {
          this.errors.failed('MSET', keysLabel(writes.map((write) => write.key)), error);
          this.counters.requests[SET.error] += writes.length;
        },
      );
    return published ? published.then(write) : write();
  }

  /** {@link writeTtlOf} of a `setMany` entry: an invalid option's error names the entry. */
  private entryOptionsOf(options: Omit<CacheManyEntry, 'key' | 'value'>, index: number) {
    try {
      return this.writeTtlOf(options);
    } catch (error) {
      if (error instanceof Error) error.message = `setMany entry ${index}: ${error.message}`;
      throw error;
    }
  }

  /**
   * Deletes `keys` (one delete of the store: one round trip per Redis node); resolves how many
   * existed. A backend failure is logged and resolves `0`.
   */
  async deleteMany(keys: readonly string[]): Promise<number> {
    assertKeys(keys, 'deleteMany');
    if (!this.options.enabled || keys.length === 0) return 0;
    const unique = [...new Set(keys)];
    for (const key of unique) {
      this.flights.supersede(key, true);
      if (this.backoff.size > 0) this.backoff.delete(key);
    }
    let count: number | undefined;
    try {
      count = await deleteManyOf(this.store, unique);
    } catch (error) {
      this.errors.failed('DELETE', keysLabel(unique), error);
    }
    this.deleted(DELETE, 'delete', count === undefined ? undefined : true, unique);
    return count ?? 0;
  }

  /**
   * Get-or-load for many keys with one loader call: reads them all at once (as {@link getMany}),
   * joins the loads already in flight for some of them, and calls `loadMissing` once with the
   * keys left (each only once), storing each value it returns under its own key. Every key is
   * answered as {@link wrap} would answer it (grace, timeouts, refresh-ahead, tags, `unless`, the
   * fleet lock); resolves the values in the order of `keys`, `undefined` for a key the loader
   * left out (not cached). A loader failure rejects, unless each failed key has a stale value
   * (`grace`).
   */
  async wrapMany<T>(
    keys: readonly string[],
    loadMissing: (keys: string[]) => BatchLoaded<T> | Promise<BatchLoaded<T>>,
    ttl?: number | `${number}` | WrapManyOptions<T>,
  ): Promise<Array<T | undefined>> {
    return (await this.wrapManyResults(keys, loadMissing, ttl)).map((result) => result.value);
  }

  /**
   * {@link wrapMany}, telling how each key was answered (`shared`: it joined a load another
   * caller started), for the batch form's `X-Cache`.
   *
   * @internal
   */
  async wrapManyResults<T>(
    keys: readonly string[],
    loadMissing: (keys: string[]) => BatchLoaded<T> | Promise<BatchLoaded<T>>,
    ttl?: number | `${number}` | WrapManyOptions<T>,
  ): Promise<Array<WrapResult<T | undefined>>> {
    assertKeys(keys, 'wrapMany');
    if (typeof loadMissing !== 'function') {
      throw new CacheArgumentError(
        `wrapMany needs a loader function (keys) => values, got ${describeValue(loadMissing)}.`,
      );
    }
    const unique = [...new Set(keys)];
    const run = (missing: readonly string[]): Promise<BatchLoaded<T>> =>
      this.runBatch(missing, loadMissing);
    let options: WrapOptions<T> | undefined;
    // Each key's tags, all rendered and checked before anything is read or loaded.
    const tagsOf = new Map<string, readonly string[] | undefined>();
    let lifetime: number;
    if (typeof ttl === 'object' && ttl !== null) {
      const { tags, ...rest } = ttl;
      checkWrapOptions(rest);
      options = rest;
      lifetime = this.ttlOf(rest.ttl);
      const fixed = typeof tags === 'function' ? undefined : checkedTags(tags);
      for (const key of unique) {
        tagsOf.set(key, typeof tags === 'function' ? checkedTags(tags(key)) : fixed);
      }
    } else {
      lifetime = this.ttlOf(ttl);
    }
    if (!this.options.enabled || unique.length === 0) {
      const values =
        unique.length === 0 ? [] : valuesOf(await loadMissing(unique.slice()), unique, WRAP_MANY);
      const byKey = new Map(unique.map((key, i) => [key, values[i]]));
      return keys.map((key) => ({ value: byKey.get(key), status: 'disabled' as const }));
    }
    const batch = new LoadBatch<T>(run, WRAP_MANY);
    const failures = this.errors.failures;
    // Loads in flight now are joined even if they land while the others are read.
    const flying = new Map<string, Flight>();
    const toRead = unique.filter((key) => {
      if (this.loader.isLoading(key)) return false;
      const flight = this.flights.joinable(key);
      if (flight && !flight.background) flying.set(key, flight);
      return flight === undefined || flight.background === true;
    });
    const reads = new Map<string, SourcedRead>();
    if (toRead.length > 0) {
      const found = await this.readMany(toRead);
      toRead.forEach((key, i) => reads.set(key, found[i]));
    }
    // Tags judged now, all together: the loads that miss then start in the same turn (one call).
    const verdicts = new Map<string, boolean>();
    const judging: Array<Promise<unknown>> = [];
    for (const [key, read] of reads) {
      if (!isSealed(read.value)) continue;
      const envelope = opened(read.value);
      if (envelope === undefined) continue;
      const valid = this.tagged(envelope);
      if (valid === false) verdicts.set(key, false);
      else if (valid !== true) judging.push(valid.then((ok) => verdicts.set(key, ok)));
    }
    if (judging.length > 0) await Promise.all(judging);
    const lockless = this.errors.failures !== failures;
    const answers = unique.map((key): Promise<WrapResult<T | undefined>> => {
      const load: Load<T | undefined> = {
        key,
        loader: () => batch.request(key),
        ttl: lifetime,
        unless: options?.unless as ((value: T | undefined) => boolean) | undefined,
        base: this.policy,
        options,
        tags: tagsOf.get(key),
        batched: true,
        batch: batch,
        lockless: lockless || undefined,
      };
      if (this.loader.isLoading(key)) {
        // Inside a loader of this key: it would wait for itself. Loaded, not stored.
        this.tallyWrap(load, 'miss', L2);
        return batch.request(key).then((value) => ({ value, status: 'miss' }));
      }
      const inFlight = this.flights.joinable(key) ?? flying.get(key);
      if (inFlight && !inFlight.background) return this.join(load, inFlight);
      const read = reads.get(key);
      if (this.local && (read === undefined || read.value === undefined)) {
        // Read again with no await before the load starts (as `wrap` does): a write made while
        // the batch read and judged must win over the load, not be overwritten by it.
        const now = this.local.get(key);
        if (now !== undefined) return this.answer(load, now, L1, inFlight);
      }
      if (read !== undefined && read.value !== undefined) {
        return this.answer(load, read.value, read.tier, inFlight, verdicts.get(key));
      }
      return inFlight ? this.join(load, inFlight) : this.startLoad(load, undefined);
    });
    const results = await Promise.all(answers);
    const byKey = new Map(unique.map((key, i) => [key, results[i]]));
    return keys.map((key) => byKey.get(key) as WrapResult<T | undefined>);
  }

  /** Calls a `wrapMany` loader once for `keys`, marked as loading in its async context. */
  private async runBatch<T>(
    keys: readonly string[],
    loadMissing: (keys: string[]) => BatchLoaded<T> | Promise<BatchLoaded<T>>,
  ): Promise<BatchLoaded<T>> {
    const counters = this.counters;
    counters.loaderRuns++;
    const started = performance.now();
    const background = false;
    try {
      const loaded = await this.loader.callAll(keys, () => loadMissing(keys.slice()));
      const durationMs = performance.now() - started;
      counters.loaderMs += durationMs;
      if (this.on['loader.done']) {
        this.events.emit('loader.done', {
          cache: this.name,
          key: keys[0],
          keys,
          durationMs,
          background,
        });
      }
      return loaded;
    } catch (error) {
      const durationMs = performance.now() - started;
      counters.loaderErrors++;
      counters.loaderMs += durationMs;
      if (this.on['loader.error']) {
        this.events.emit('loader.error', {
          cache: this.name,
          key: keys[0],
          keys,
          durationMs,
          error,
          stale: false,
          background,
        });
      }
      throw error;
    } finally {
      this.loader.done();
    }
  }

  /**
   * Stores `value` (its JSON form) under `key` for `ttl` seconds, or the options' (jitter
   * applied, kept `grace` seconds longer as a stale value); rejects on an invalid key, TTL,
   * option or value.
   */
  set(key: string, value: unknown, ttl?: number | `${number}` | SetOptions): Promise<void> {
    let seconds: number;
    let stored: unknown;
    let published: Promise<void> | undefined;
    try {
      assertKey(key);
      const { ttl: lifetime, grace, tags } = this.writeTtlOf(ttl);
      const created = tags ? this.tagClock.stamp() : 0;
      const times = timesOf(lifetime, grace, undefined, tags, created);
      stored = seal(this.storable(value, key), times);
      seconds = keptFor(lifetime, times);
      // Switched off: nothing reaches the tiers, the tag store (namespace#tags-life) included.
      if (tags && this.options.enabled) {
        this.tagsHere();
        published = this.tagClock.lives(seconds);
      }
    } catch (error) {
      return Promise.reject(asError(error));
    }
    if (!this.options.enabled) return RESOLVED;
    this.flights.supersede(key, true);
    if (this.backoff.size > 0) this.backoff.delete(key);
    if (this.local) {
      this.local.set(key, stored, seconds);
      this.wrote(key, seconds);
      return RESOLVED;
    }
    // An adapter may resolve with its client's acknowledgement ('OK'); set resolves undefined,
    // in the same step that catches a failure.
    const write = () =>
      this.errors.settled(
        'SET',
        key,
        () => this.write(key, stored, seconds),
        () => this.wrote(key, seconds),
        () => {
          this.counters.requests[SET.error]++;
        },
      );
    return published ? published.then(write) : write();
  }

  /** Counts a `set` that reached the store. */
  private wrote(key: string, seconds: number): void {
    this.counters.requests[SET.ok]++;
    if (this.on.set)
      this.events.emit('set', { cache: this.name, key, ttl: seconds, source: 'set' });
  }

  /** Deletes `key`; resolves `true` if it existed. */
  async delete(key: string): Promise<boolean> {
    assertKey(key);
    if (!this.options.enabled) return false;
    const existed = await this.deleteKey(key);
    this.deleted(DELETE, 'delete', existed, [key]);
    return existed === true;
  }

  /** Deletes `key`: whether it existed, or `undefined` when the store failed (logged). */
  private async deleteKey(key: string): Promise<boolean | undefined> {
    this.flights.supersede(key, true);
    if (this.backoff.size > 0) this.backoff.delete(key);
    try {
      return await this.store.delete(key);
    } catch (error) {
      this.errors.failed('DELETE', key, error);
      return undefined;
    }
  }

  /**
   * Counts a removal (`outcome` `undefined`: the store failed) and reports what it removed: all
   * that the call named, when it succeeded.
   */
  private deleted(
    kind: { readonly ok: number; readonly error: number },
    operation: 'delete' | 'expire' | 'deleteByPrefix' | 'deleteByTag' | 'invalidate',
    outcome: unknown,
    keys: readonly string[],
    prefixes: readonly string[] = NONE,
    tags: readonly string[] = NONE,
  ): void {
    if (outcome === undefined) {
      this.counters.requests[kind.error]++;
      return;
    }
    this.counters.requests[kind.ok]++;
    if (this.on.delete) {
      this.events.emit('delete', { cache: this.name, operation, keys, prefixes, tags });
    }
  }

  /**
   * Marks `key` stale without deleting it: `get` misses from now on, and the next `wrap` runs
   * its loader, but within the entry's `grace` a failing or slow loader's callers still get
   * the old value. An entry without grace is deleted. Resolves `true` if the key had an entry.
   */
  async expire(key: string): Promise<boolean> {
    assertKey(key);
    if (!this.options.enabled) return false;
    const expired = await this.expireEntry(key);
    this.deleted(EXPIRE, 'expire', expired, [key]);
    return expired === true;
  }

  /** {@link expire}: `undefined` when the store failed (logged). */
  private async expireEntry(key: string): Promise<boolean | undefined> {
    this.flights.supersede(key, true);
    if (this.backoff.size > 0) this.backoff.delete(key);
    let stored: unknown;
    try {
      stored = this.local ? this.local.get(key) : await this.store.get(key);
    } catch (error) {
      this.errors.failed('EXPIRE', key, error);
      return undefined;
    }
    if (stored === undefined) return false;
    const envelope = isSealed(stored) ? opened(stored) : undefined;
    const now = Date.now();
    // Nothing to keep: no grace left beyond now (a plain entry, one without grace, or corrupt).
    if (
      envelope === undefined ||
      envelope.x === envelope.e ||
      (envelope.x !== 0 && envelope.x <= now)
    ) {
      return (await this.deleteKey(key)) === undefined ? undefined : true;
    }
    const expired = seal(envelope.v, {
      // Expired at the epoch: stale whatever clock reads it (the hit path's may be 1 ms old).
      expiresAt: EXPIRED,
      keptUntil: envelope.x,
      ...tagsOf(envelope),
    });
    const seconds = envelope.x === 0 ? 0 : Math.max(0.001, (envelope.x - now) / 1000);
    if (this.local) {
      this.local.set(key, expired, seconds);
      return true;
    }
    try {
      // Compare-and-set where the store offers it: a write made since the read above wins.
      const swapped = await this.swapEntry(key, stored, expired, seconds);
      if (swapped === undefined) await this.write(key, expired, seconds);
    } catch (error) {
      this.errors.failed('EXPIRE', key, error);
      return undefined;
    }
    return true;
  }

  /**
   * Replaces `key`'s entry with `next` only while it holds `expected`: `undefined` when the
   * store cannot compare. With failover, the fallback copy is rewritten too.
   */
  private async swapEntry(
    key: string,
    expected: unknown,
    next: unknown,
    ttl: number,
  ): Promise<boolean | undefined> {
    const { remote, failover, twoTier } = this.tiers;
    if (twoTier) return twoTier.swap(key, expected, next, ttl);
    if (remote) return entrySwapOf(remote)?.(key, expected, next, ttl);
    if (!failover) return undefined;
    const swapped = await failover.remote.swapIfHolds(key, expected, next, ttl);
    if (swapped === true) await failover.fallback.set(key, next, ttl);
    else if (swapped === false) await failover.fallback.delete(key);
    return swapped;
  }

  /**
   * When `key`'s entry expires, in ms since the epoch (as `Date.now()`): `Infinity` when it
   * never expires (or the store cannot tell), `undefined` when {@link get} would miss. An entry
   * kept by `grace` counts as expired at its logical expiry. Not counted as a read.
   */
  async expiresAt(key: string): Promise<number | undefined> {
    assertKey(key);
    if (!this.options.enabled) return undefined;
    let entry: SharedEntry | undefined;
    try {
      entry = await this.entryOf(key);
    } catch (error) {
      this.errors.failed('TTL', key, error);
      return undefined;
    }
    if (entry === undefined) return undefined;
    const stored = entry.value;
    if (isSealed(stored)) {
      const envelope = this.opened(key, stored);
      if (envelope === undefined || isStale(envelope, Date.now())) return undefined;
      if (!(await this.tagged(envelope))) return undefined;
      return envelope.e === 0 ? Infinity : envelope.e;
    }
    return entry.ttlMs === undefined ? Infinity : Date.now() + entry.ttlMs;
  }

  /** `key`'s stored entry with the milliseconds it has left, from whichever tier holds it. */
  private entryOf(key: string): Promise<SharedEntry | undefined> {
    const { local, remote, failover, twoTier } = this.tiers;
    if (local) return Promise.resolve(local.entry(key));
    if (twoTier) return twoTier.entry(key);
    if (failover) return failover.entry(key);
    const read = entryReaderOf(remote);
    if (read) return read(key);
    return remote
      .get(key)
      .then((value) => (value === undefined ? undefined : { value, ttlMs: undefined }));
  }

  /**
   * `true` exactly when {@link get} would hit: read through `get`, since only the value tells
   * whether an entry kept by `grace` is still fresh.
   */
  async has(key: string): Promise<boolean> {
    assertKey(key);
    if (!this.options.enabled) return false;
    return (await this.read(key, READ_HAS)) !== undefined;
  }

  /** Deletes every entry of the namespace. */
  async clear(): Promise<void> {
    if (!this.options.enabled) return;
    this.flights.supersede('', false);
    this.backoff.clear();
    try {
      await this.store.clear();
    } catch (error) {
      this.errors.failed('CLEAR', '*', error);
      this.counters.requests[CLEAR.error]++;
      return;
    }
    this.counters.requests[CLEAR.ok]++;
    if (this.on.clear) this.events.emit('clear', { cache: this.name });
  }

  /** Deletes every entry whose key starts with `prefix` (literally); resolves how many. */
  async deleteByPrefix(prefix: string): Promise<number> {
    if (typeof prefix !== 'string') {
      throw new CacheKeyError(`deleteByPrefix needs a string prefix, got ${typeof prefix}.`);
    }
    if (!this.options.enabled) return 0;
    this.flights.supersede(prefix, false);
    let count: number;
    try {
      count = await this.store.deleteByPrefix(prefix);
    } catch (error) {
      this.errors.failed('DELETE_BY_PREFIX', `${prefix}*`, error);
      this.deleted(DELETE_BY_PREFIX, 'deleteByPrefix', undefined, NONE);
      return 0;
    }
    this.deleted(DELETE_BY_PREFIX, 'deleteByPrefix', count, NONE, [prefix]);
    return count;
  }

  /**
   * Invalidates every entry carrying one of `tags`, on every instance, at a cost that does not
   * depend on how many entries carry them: the tags' invalidation time is recorded (in Redis,
   * and announced on the bus), and an entry created before it no longer answers. Loads in flight
   * whose value carries one of the tags are not stored. A backend failure is logged (under
   * failover the mark is applied on recovery), never thrown.
   */
  async deleteByTag(tags: string | readonly string[]): Promise<void> {
    const list = checkedTags(typeof tags === 'string' ? [tags] : tags);
    if (list === undefined || !this.options.enabled) return;
    this.tagsHere();
    try {
      await this.markTags(list);
    } catch (error) {
      this.errors.failed('DELETE_BY_TAG', list.join(', '), error);
      this.deleted(DELETE_BY_TAG, 'deleteByTag', undefined, NONE);
      return;
    }
    this.deleted(DELETE_BY_TAG, 'deleteByTag', true, NONE, NONE, list);
  }

  /** Records the invalidation of `tags` now; rejects when the store fails (the mark holds here). */
  private markTags(tags: readonly string[]): Promise<void> {
    this.flights.supersedeTags(tags);
    return this.tagClock.mark(tags, this.tagClock.stamp());
  }

  /**
   * Deletes `keys`, every entry under `prefixes` and every entry carrying one of `tags`,
   * superseding loads in flight for them, but rejects when the backend fails (a durable
   * invalidation job retries). Resolves the count of keys and prefix entries deleted.
   */
  async invalidate(target: {
    keys?: readonly string[];
    prefixes?: readonly string[];
    tags?: readonly string[];
  }): Promise<number> {
    const keys = target.keys ?? [];
    const prefixes = target.prefixes ?? [];
    const tags = target.tags === undefined ? undefined : checkedTags(target.tags);
    keys.forEach((key) => assertKey(key));
    for (const prefix of prefixes) {
      if (typeof prefix !== 'string') {
        throw new CacheKeyError(`invalidate needs string prefixes, got ${typeof prefix}.`);
      }
    }
    if (!this.options.enabled) return 0;
    for (const key of keys) this.flights.supersede(key, true);
    for (const prefix of prefixes) this.flights.supersede(prefix, false);
    // All at once: a backend that hangs costs one command timeout, not one per key.
    let counts: number[];
    try {
      counts = await Promise.all([
        ...keys.map((key) => attempt(() => this.store.delete(key)).then(Number)),
        ...prefixes.map((prefix) => attempt(() => this.store.deleteByPrefix(prefix))),
        ...(tags ? [attempt(() => this.markTags(tags)).then(() => 0)] : []),
      ]);
    } catch (error) {
      // Not logged here: the caller (a durable invalidation job) retries and reports it.
      this.backendFailed(
        'INVALIDATE',
        [...keys, ...prefixes.map((p) => `${p}*`)].join(', '),
        error,
      );
      this.deleted(INVALIDATE, 'invalidate', undefined, NONE);
      throw error;
    }
    this.deleted(INVALIDATE, 'invalidate', true, keys, prefixes, tags ?? NONE);
    return counts.reduce((sum, count) => sum + count, 0);
  }

  /**
   * Get-or-load, resolving how it answered. Concurrent misses on one key share one loader call;
   * a write, delete or clear of the key while it runs keeps its result out of the cache. The
   * loaded value is resolved without waiting for its write, which goes on in the background;
   * until the write settles, new callers get what is being stored (a hit).
   *
   * With `grace`, an expired entry is kept as a stale value: its loader's failure, or a
   * `timeouts.soft` / `timeouts.hard` passing, answers the caller with it (`stale`). With
   * `refreshAhead`, a hit past that fraction of its TTL starts one background load. With
   * `lock`, one instance of the fleet runs the loader of a cold key; the others wait for its
   * value.
   *
   * @param read `false`: load without reading first (a decorated call whose earlier cache call
   *   failed does not wait for the same dead backend again).
   * @param moduleTimeouts `true` for the loaders the module's `timeouts` and `refreshAhead`
   *   apply to (`wrap`, `@Cacheable`, `cacheResult`); `CacheInterceptor` leaves it off: its
   *   load includes sending the response, which a slow client may stretch, and cannot run in
   *   the background. Options given in `ttl` always apply.
   */
  wrap<T>(
    key: string,
    loader: () => T | Promise<T>,
    ttl?: number | `${number}` | WrapOptions<T>,
    read = true,
    moduleTimeouts = false,
    tally?: WrapTally,
  ): Promise<WrapResult<T>> {
    let load: Load<T>;
    try {
      assertKey(key);
      const base = moduleTimeouts ? this.policy : this.routePolicy;
      if (typeof ttl === 'object' && ttl !== null) {
        checkWrapOptions(ttl);
        load = {
          key,
          loader,
          ttl: this.ttlOf(ttl.ttl),
          unless: ttl.unless,
          base,
          options: ttl,
          tags: checkedTags(ttl.tags),
          tally,
        };
      } else {
        load = {
          key,
          loader,
          ttl: this.ttlOf(ttl),
          unless: undefined,
          base,
          options: undefined,
          tally,
        };
      }
    } catch (error) {
      return Promise.reject(asError(error));
    }
    if (!this.options.enabled) return callThrough(loader, 'disabled');
    // A loader that wraps its own key again would wait for itself: let the inner call through;
    // the outer stores.
    if (this.loader.isLoading(key)) {
      this.tallyWrap(load, 'miss', L2);
      return callThrough(loader, 'miss');
    }
    const inFlight = this.flights.joinable(key);
    // A refresh-ahead runs in the background: callers read the entry it refreshes meanwhile.
    if (inFlight && !inFlight.background) return this.join(load, inFlight);
    if (!read) {
      // An earlier cache call of this caller failed: no lock on the same dead backend either.
      return inFlight
        ? this.join(load, inFlight)
        : this.startLoad({ ...load, lockless: true }, undefined);
    }
    if (this.local) {
      // Read and, on a miss, start the load with no await in between: no caller can slip in.
      const cached = this.local.get(key);
      if (cached !== undefined) return this.answer(load, cached, L1, inFlight);
      return inFlight ? this.join(load, inFlight) : this.startLoad(load, undefined);
    }
    const near = this.nearCopy(key);
    if (near !== undefined) return this.answer(load, near, L1);
    // A read that failed has cost this caller one command timeout: the lock is not tried on the
    // same dead backend (it would cost another one; issue 10). The load fails open.
    const failures = this.errors.failures;
    return this.errors
      .guarded<SourcedRead | undefined>('GET', key, () => this.readSourced(key), undefined)
      .then((found) => {
        const cached = found?.value;
        // A concurrent caller may have started the load while we awaited the read.
        const raced = this.flights.joinable(key);
        if (cached !== undefined) return this.answer(load, cached, found?.tier ?? L2, raced);
        if (raced) return this.join(load, raced);
        const failed = this.errors.failures !== failures;
        return this.startLoad(failed ? { ...load, lockless: true } : load, undefined);
      });
  }

  /**
   * Answers a wrap from what the cache holds for its key: a plain value is a hit; an envelope
   * is a hit while fresh (starting a background refresh past its refresh point), and a stale
   * value to fall back on once expired.
   */
  private answer<T>(
    load: Load<T>,
    stored: unknown,
    tier: Tier,
    raced?: Flight,
    verdict?: boolean,
  ): Promise<WrapResult<T>> {
    if (!isSealed(stored)) {
      this.tallyWrap(load, 'hit', tier);
      return Promise.resolve({ value: stored as T, status: 'hit' });
    }
    const envelope = this.opened(load.key, stored);
    if (envelope === undefined) return this.replace(load, raced);
    // `verdict`: the tags were judged already (wrapMany judges all its keys' together).
    const valid = verdict ?? this.tagged(envelope);
    if (valid === true) return this.answerEnvelope(load, envelope, tier, raced);
    if (valid === false) return this.replace(load, raced);
    return valid.then((ok) =>
      ok ? this.answerEnvelope(load, envelope, tier, raced) : this.replace(load, raced),
    );
  }

  /** The async store's answer for `key`, with the tier that held it. */
  private readSourced(key: string): Promise<SourcedRead> {
    if (this.sourced) return this.sourced(key);
    const tier = this.storeTier;
    return this.store.get(key).then((value) => ({ value, tier }));
  }

  /**
   * Counts how one get-or-load caller was answered (`tier`: where a hit or stale value was
   * held), and reports it to the listeners of `hit`, `miss` or `stale`.
   */
  private tallyWrap<T>(
    load: Load<T>,
    status: WrapStatus,
    tier: Tier,
    reason: StaleReason = 'error',
  ): void {
    if (load.tally) load.tally(status, tier, reason);
    else this.countWrap(load.key, status, tier, reason);
  }

  /**
   * Counts how a get-or-load caller of `key` was answered (`tier`: where a hit or stale value was
   * held) and reports it to the listeners of `hit`, `miss` or `stale`. @internal
   */
  countWrap(key: string, status: WrapStatus, tier: Tier, reason: StaleReason = 'error'): void {
    const requests = this.counters.requests;
    switch (status) {
      case 'hit':
        requests[WRAP_HIT[tier]]++;
        if (this.on.hit) {
          this.events.emit('hit', {
            cache: this.name,
            key,
            operation: 'wrap',
            tier: TIER_NAMES[tier],
          });
        }
        return;
      case 'stale':
        requests[WRAP_STALE[tier]]++;
        if (this.on.stale) {
          this.events.emit('stale', { cache: this.name, key, tier: TIER_NAMES[tier], reason });
        }
        return;
      case 'disabled':
        return;
      default: {
        const shared = status === 'shared';
        requests[shared ? WRAP_SHARED : WRAP_MISS]++;
        if (this.on.miss)
          this.events.emit('miss', { cache: this.name, key, operation: 'wrap', shared });
      }
    }
  }

  /** Loads over an entry that cannot answer (corrupt, or invalidated by a tag): no stale value. */
  private replace<T>(load: Load<T>, raced: Flight | undefined): Promise<WrapResult<T>> {
    const flight = raced ?? this.flights.joinable(load.key);
    return flight
      ? this.join(load, flight)
      : this.startLoad({ ...load, replaces: true }, undefined);
  }

  /** {@link answer} for an envelope whose tags hold. */
  private answerEnvelope<T>(
    load: Load<T>,
    envelope: Envelope,
    tier: Tier,
    raced: Flight | undefined,
  ): Promise<WrapResult<T>> {
    const flight = raced ?? this.flights.joinable(load.key);
    const now = hitClock();
    if (!isStale(envelope, now)) {
      if (envelope.r !== undefined && now >= envelope.r && flight === undefined) {
        // A refresh that failed is not retried by every hit (the value serves meanwhile).
        const until = this.backoff.get(load.key);
        if (until === undefined || now >= until) this.refresh({ ...load, over: envelope });
      }
      this.tallyWrap(load, 'hit', tier);
      return Promise.resolve({ value: envelope.v as T, status: 'hit' });
    }
    const stale: Stale = { value: envelope.v, tier };
    const until = this.backoff.get(load.key);
    if (until !== undefined) {
      if (now < until) {
        this.tallyWrap(load, 'stale', tier, 'backoff');
        return Promise.resolve({ value: stale.value as T, status: 'stale' });
      }
      this.backoff.delete(load.key);
    }
    if (flight) return this.join(load, flight, stale);
    return this.startLoad({ ...load, over: envelope }, stale);
  }

  /** Starts a background load of `load.key` (refresh-ahead): nobody waits for it. */
  private refresh<T>(load: Load<T>): void {
    if (this.loader.isLoading(load.key)) return;
    // Nobody waits for it: no caller's timeouts apply (a slow refresh is not a failed one).
    const resolved = { ...policyOf(load), soft: undefined, hard: undefined };
    this.startLoad({ ...load, resolved, refresh: true }, undefined).catch((error: unknown) =>
      this.errors.warn(
        'loader:refresh',
        `Cache refresh-ahead of ${quote(load.key)} failed (the cached value stays until it expires): ${describeError(error)}`,
      ),
    );
  }

  /**
   * Joins a load: `shared` while it runs (the loader's own value, bounded by this caller's own
   * timeouts from now); once only its write is pending, a `hit` on what is being stored, as a
   * read of the backend will return it.
   */
  private join<T>(load: Load<T>, flight: Flight, stale?: Stale): Promise<WrapResult<T>> {
    if (flight.sharedUntil !== undefined) {
      // What this process is storing: held here, in memory — counted as the tier it is being
      // written to (a plain shared store has no in-process tier).
      this.tallyWrap(load, 'hit', this.tiers.remote ? L2 : L1);
      return Promise.resolve({ value: flight.stored as T, status: 'hit' });
    }
    if (stale !== undefined && flight.stale === undefined) flight.stale = stale;
    return this.awaitLoad(load, flight, 'shared');
  }

  private startLoad<T>(load: Load<T>, stale: Stale | undefined): Promise<WrapResult<T>> {
    const flight = this.flights.begin(load.key);
    flight.stale = stale;
    const { hard } = policyOf(load);
    // A loader that never settles must not hold the key for good: long past its callers'
    // bound, the load is no longer joined (it is still stored if it resolves).
    if (hard !== undefined) flight.overdueAt = Date.now() + OVERDUE_FACTOR * hard * 1000;
    if (load.refresh) flight.background = true;
    flight.replaces = stale !== undefined || load.refresh === true || load.replaces === true;
    if (load.tags) {
      flight.tags = load.tags;
      // Created when the load starts: a tag invalidated while it runs outdates its value.
      flight.created = this.tagClock.stamp();
    }
    // A batch key (wrapMany): the batch waits for this load to ask for its value.
    if (load.batch && load.refresh !== true) load.batch.expect(load.key);
    (flight as { promise: Promise<unknown> }).promise = this.load(load, flight);
    return this.awaitLoad(load, flight, 'miss');
  }

  /**
   * What one caller of a load waits for. Without a stale value: the loaded value, or, after
   * `timeouts.hard`, `CacheLoaderTimeoutError`. With one (`grace`): the loaded value, or the
   * stale one when the loader fails or `timeouts.soft` / `timeouts.hard` pass first. The load
   * goes on either way (and is stored when it resolves).
   */
  private awaitLoad<T>(load: Load<T>, flight: Flight, status: WrapStatus): Promise<WrapResult<T>> {
    const promise = flight.promise as Promise<T>;
    const key = load.key;
    // A background refresh answers nobody: it is not a request.
    const counted = load.refresh !== true;
    const answered = (value: T): WrapResult<T> => {
      // Found: the value another instance stored while this one waited for the lock.
      if (counted) this.tallyWrap(load, flight.found ? 'hit' : status, L2);
      return {
        value: flight.found ? (flight.stored as T) : value,
        status: flight.found ? 'hit' : status,
      };
    };
    const unanswered = (error: unknown): never => {
      if (counted) this.tallyWrap(load, status, L2);
      throw error;
    };
    const stale = flight.stale;
    const { soft, hard } = policyOf(load);
    if (stale === undefined) {
      if (hard === undefined) return promise.then(answered, unanswered);
      return this.loader
        .wait(key, promise, hard, () => this.timedOut(key, 'hard', hard, false))
        .then(answered, unanswered);
    }
    const staleAnswer: WrapResult<T> = { value: stale.value as T, status: 'stale' };
    // A loader's error that is an answer (an HTTP 4xx: the thing is gone, the request is
    // wrong) reaches the caller: only failures fall back on the stale value.
    const failed = (error: unknown): WrapResult<T> => {
      if (isAnswer(error)) return unanswered(error);
      if (counted) this.tallyWrap(load, 'stale', stale.tier, 'error');
      return staleAnswer;
    };
    const bound = soft === undefined ? hard : hard === undefined ? soft : Math.min(soft, hard);
    if (bound === undefined) return promise.then(answered, failed);
    const which = bound === soft ? 'soft' : 'hard';
    return withTimeout(promise, Math.max(1, Math.round(bound * 1000)), () => STALE_TIMEOUT).then(
      answered,
      (error: unknown) => {
        if (error !== STALE_TIMEOUT) return failed(error);
        // A loader's own failure is logged once by `load`; a timeout passing, here
        // (rate-limited).
        this.errors.warn(
          'loader:stale-timeout',
          `Cache loader of ${quote(key)} still running after ${bound} s (timeouts.${which}); ` +
            `serving its stale value (grace) while it completes in the background`,
        );
        this.timedOut(key, which, bound, true);
        if (counted) this.tallyWrap(load, 'stale', stale.tier, 'timeout');
        return staleAnswer;
      },
    );
  }

  /** Counts and reports a caller that stopped waiting for the loader of `key`. */
  private timedOut(key: string, timeout: 'soft' | 'hard', seconds: number, stale: boolean): void {
    this.counters.loaderTimeouts++;
    if (this.on['loader.timeout']) {
      this.events.emit('loader.timeout', { cache: this.name, key, timeout, seconds, stale });
    }
  }

  private async load<T>(load: Load<T>, flight: Flight): Promise<T> {
    const key = load.key;
    const policy = policyOf(load);
    let token: string | undefined;
    let started: number | undefined;
    let value: T;
    try {
      if (policy.lock && this.keyLock && !load.lockless) {
        const asked = Date.now();
        const fleet = await this.awaitFleet(load, this.keyLock, policy.lock, flight);
        this.lockWaited(key, fleet.outcome, Date.now() - asked);
        if (fleet.found !== undefined) {
          load.batch?.settle(key);
          flight.found = true;
          flight.stored = fleet.found;
          this.flights.land(key, flight);
          return fleet.found as T;
        }
        token = fleet.token;
      }
      started = performance.now();
      // A batch's keys share one run of its loader, counted by the batch.
      if (load.batched !== true) this.counters.loaderRuns++;
      value = await this.loadValue(load);
    } catch (error) {
      this.flights.land(key, flight);
      if (token !== undefined) this.release(key, token);
      const stale = flight.stale !== undefined && !isAnswer(error);
      if (started !== undefined) this.loaderFailed(load, started, error, stale);
      if (stale) this.failedWithStale(load, error);
      else if (load.refresh === true) this.backOff(load.key, policy.graceBackoff);
      throw error;
    }
    this.loaderDone(load, started);
    // Not awaited: the caller has its value; a hung backend must not hold it for a second
    // command timeout (issue 10). The write is issued now, before any caller resumes, so a
    // later command of theirs on the key reaches the backend after it.
    // Jittered per write, not per wrap call: a hit costs no random number.
    const seconds = jitteredTtl(load.ttl, policy.jitter);
    const writing = this.storeLoaded(load, value, seconds, flight);
    if (writing) {
      void writing.then(() => {
        this.flights.land(key, flight);
        // Released once the value is readable: a waiter that takes the lock next finds it.
        if (token !== undefined) this.release(key, token);
      });
    } else {
      this.flights.land(key, flight);
      if (token !== undefined) this.release(key, token);
    }
    return value;
  }

  /** Counts a loader that resolved, and reports it. */
  private loaderDone<T>(load: Load<T>, started: number): void {
    // A batch's keys share one run, counted and reported by the batch (`runBatch`).
    if (load.batched === true) return;
    const durationMs = performance.now() - started;
    this.counters.loaderMs += durationMs;
    if (this.on['loader.done']) {
      const background = load.refresh === true;
      this.events.emit('loader.done', { cache: this.name, key: load.key, durationMs, background });
    }
  }

  /** Counts a loader that threw or rejected, and reports it. */
  private loaderFailed<T>(load: Load<T>, started: number, error: unknown, stale: boolean): void {
    if (load.batched === true) return;
    const durationMs = performance.now() - started;
    this.counters.loaderErrors++;
    this.counters.loaderMs += durationMs;
    if (this.on['loader.error']) {
      this.events.emit('loader.error', {
        cache: this.name,
        key: load.key,
        durationMs,
        error,
        stale,
        background: load.refresh === true,
      });
    }
  }

  /** Counts a load's wait for the fleet-wide lock, and reports it. */
  private lockWaited(key: string, outcome: LockOutcome, waitedMs: number): void {
    const counters = this.counters;
    counters.lockWaits++;
    if (outcome === 'acquired') counters.lockAcquired++;
    else if (outcome === 'found') counters.lockFound++;
    else if (outcome === 'timeout') counters.lockTimeouts++;
    else counters.lockUnavailable++;
    if (this.on['lock.wait']) {
      this.events.emit('lock.wait', { cache: this.name, key, waitedMs, outcome });
    }
  }

  /** Runs the loader with `key` marked as loading in its async context. */
  private async loadValue<T>(load: Load<T>): Promise<T> {
    try {
      return await this.loader.call(load.key, load.loader);
    } finally {
      this.loader.done();
    }
  }

  /** A refresh with a stale value at hand failed: log it, and serve the stale value a while. */
  private failedWithStale<T>(load: Load<T>, error: unknown): void {
    const backoff = policyOf(load).graceBackoff;
    this.backOff(load.key, backoff);
    this.errors.warn(
      'loader:stale',
      `Cache loader of ${quote(load.key)} failed; serving its stale value (grace), next try in ${backoff} s: ${describeError(error)}`,
    );
  }

  /** `key`'s loader is not run again by hits for `seconds` (its cached or stale value serves). */
  private backOff(key: string, seconds: number): void {
    if (this.backoff.size >= MAX_BACKOFF_KEYS) {
      // Bounded: the oldest entry goes (it is retried at once, which is all it costs).
      const oldest = this.backoff.keys().next().value;
      if (oldest !== undefined) this.backoff.delete(oldest);
    }
    this.backoff.delete(key);
    this.backoff.set(key, Date.now() + seconds * 1000);
  }

  /**
   * With `lock`: waits until this process may run the loader of `key` (it took the fleet-wide
   * lock: `token`), another instance's value can be read (`found`), or the lock fails open
   * (`{}`: Redis unreachable, circuit open, or `lock.wait` passed).
   */
  private async awaitFleet<T>(
    load: Load<T>,
    lock: KeyLock,
    timing: NonNullable<LoadPolicy['lock']>,
    flight: Flight,
  ): Promise<{ outcome: LockOutcome; token?: string; found?: unknown }> {
    const key = load.key;
    // A refresh-ahead finds the entry it refreshes: only a newer one (not yet due) ends it.
    const due = load.refresh === true;
    const token = randomUUID();
    const deadline = Date.now() + timing.wait * 1000;
    let pause = LOCK_POLL_FIRST_MS;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0) return { outcome: 'timeout' };
      let taken: boolean | undefined;
      let found: unknown;
      try {
        // Together, one round trip: the holder before us may have stored the value and released
        // between our read and this attempt.
        const acquiring = lock.acquire(key, token, Math.ceil(timing.ttl * 1000));
        const reading = this.readFresh(key, due);
        // A lock that fails open (circuit open, store failing) does not wait for the read sent
        // with it: on a store that is failing, that read may cost another timeout.
        const attempt = acquiring.then(
          (got): [boolean | undefined, unknown] | Promise<[boolean | undefined, unknown]> =>
            got === undefined ? [undefined, undefined] : reading.then((value) => [got, value]),
        );
        [taken, found] = await withTimeout(attempt, left).catch((error: unknown) => {
          // Taken after all once we stopped waiting: let it go rather than hold it to its TTL.
          acquiring.then((late) => late && this.release(key, token)).catch(() => undefined);
          throw error;
        });
      } catch (error) {
        this.errors.failed('LOCK', key, error);
        return { outcome: Date.now() >= deadline ? 'timeout' : 'unavailable' };
      }
      if (found !== undefined) {
        if (taken) this.release(key, token);
        return { outcome: 'found', found };
      }
      if (taken === undefined) return { outcome: 'unavailable' };
      if (taken) return { outcome: 'acquired', token };
      // Another instance holds it: a batch does not wait for this key (it asks later, if ever).
      load.batch?.settle(key);
      await this.lockPause(key, Math.min(pause, deadline - Date.now()));
      pause = Math.min(pause * 2, LOCK_POLL_MAX_MS);
      if (flight.superseded) {
        // The key changed here meanwhile: read what the change left before trying again.
        const now = await this.readFresh(key, due);
        if (now !== undefined) return { outcome: 'found', found: now };
      }
    }
  }

  /** Waits `ms`, or less when the bus reports a change of `key` (the holder's write). */
  private lockPause(key: string, ms: number): Promise<void> {
    if (ms <= 0) return RESOLVED;
    return new Promise<void>((resolve) => {
      const timer = setTimeout(wake, ms);
      timer.unref();
      const previous = this.lockWaiters.get(key);
      this.lockWaiters.set(key, wake);
      function wake(): void {
        clearTimeout(timer);
        previous?.();
        resolve();
      }
    }).then(() => {
      this.lockWaiters.delete(key);
    });
  }

  /**
   * The fresh value stored under `key` (not a stale one; with `notDue`, not one due for a
   * refresh either), or `undefined`; never rejects.
   */
  private readFresh(key: string, notDue = false): Promise<unknown> {
    return this.errors.guarded(
      'GET',
      key,
      () => this.store.get(key),
      undefined,
      (stored) => {
        if (notDue && isSealed(stored) && stored.r !== undefined && Date.now() >= stored.r) {
          return undefined;
        }
        return this.fresh(key, stored);
      },
    );
  }

  /** Releases a lock in the background (it expires on its own if this fails). */
  private release(key: string, token: string): void {
    this.keyLock
      ?.release(key, token)
      .catch((error: unknown) => this.errors.failed('UNLOCK', key, error));
  }

  /** `stored` as the value a read returns: unwrapped, or `undefined` if stale or corrupt. */
  private fresh<T>(key: string, stored: unknown): T | undefined | Promise<T | undefined> {
    if (!isSealed(stored)) return stored as T | undefined;
    const envelope = this.opened(key, stored);
    if (envelope === undefined || isStale(envelope, hitClock())) return undefined;
    const valid = this.tagged(envelope);
    if (valid === true) return envelope.v as T;
    if (valid === false) return undefined;
    return valid.then((ok) => (ok ? (envelope.v as T) : undefined));
  }

  /**
   * Whether `envelope` still holds given its tags (`deleteByTag` of one after its creation
   * invalidates it): at once when this process knows, else after reading the tags' times.
   */
  private tagged(envelope: Envelope): boolean | Promise<boolean> {
    const tags = envelope.g;
    if (tags === undefined) return true;
    const created = envelope.c ?? 0;
    return this.tagClock.judge(tags, created) ?? this.tagClock.check(tags, created);
  }

  /**
   * The L1 copy of `key`, unless a tag mark this process knows of has invalidated it: that copy
   * is dropped and the read goes to the shared tier, which may hold an entry another instance
   * wrote after the mark (whose bus message has not arrived yet).
   */
  private nearCopy(key: string): unknown {
    const near = this.twoTier?.peek(key);
    if (!isSealed(near) || near.g === undefined) return near;
    const envelope = opened(near);
    if (envelope?.g === undefined || this.tagClock.judge(envelope.g, envelope.c ?? 0) !== false) {
      return near;
    }
    this.twoTier?.forget(key);
    return undefined;
  }

  /** The envelope `stored` is, or `undefined` (logged) when it is malformed. */
  private opened(key: string, stored: Envelope): Envelope | undefined {
    const envelope = opened(stored);
    if (envelope === undefined) {
      this.errors.warn(
        'value:corrupt',
        `Cache entry ${quote(key)} holds a malformed envelope; read as a miss`,
      );
    }
    return envelope;
  }

  /**
   * Stores what a loader returned, unless the load was superseded or `unless` vetoes it.
   * Resolves when a backend write settles (never rejects: failures are logged); `undefined`
   * when nothing is pending.
   */
  private storeLoaded<T>(
    load: Load<T>,
    value: T,
    ttl: number,
    flight: Flight,
  ): Promise<void> | undefined {
    const { key, unless } = load;
    const policy = policyOf(load);
    if (flight.superseded || value === undefined) return undefined;
    let stored: unknown;
    let sealed: unknown;
    let times: EntryTimes | undefined;
    try {
      const veto: unknown = unless?.(value);
      if (veto) {
        if (isThenable(veto)) {
          this.errors.warn(
            'value:unless-promise',
            `Cache value for ${quote(key)} was not stored: its unless returned a Promise ` +
              `(it must be synchronous)`,
          );
        }
        return undefined;
      }
      stored = this.storable(value, key);
      times = timesOf(ttl, policy.grace, policy.refreshAhead, load.tags, flight.created);
      sealed = seal(stored, times);
    } catch (error) {
      // The loader's value is still good: the caller gets it, uncached.
      this.errors.warn(
        'value:not-stored',
        `Cache value for ${quote(key)} was not stored: ${describeError(error)}`,
      );
      return undefined;
    }
    const seconds = keptFor(ttl, times);
    if (load.tags) this.tagsHere();
    const published = load.tags ? this.tagClock.lives(seconds) : undefined;
    this.backoff.delete(key);
    if (this.local) {
      this.local.set(key, sealed, seconds);
      this.loadStored(key, seconds);
      return undefined;
    }
    flight.stored = stored;
    flight.sharedUntil = ttl > 0 ? Date.now() + ttl * 1000 : Infinity;
    const write = (): Promise<void> =>
      this.errors.guarded<unknown>(
        'SET',
        key,
        () => {
          const over = load.over;
          if (over === undefined || this.twoTier) {
            return this.writeLoaded(key, sealed, seconds, flight.replaces === true);
          }
          // Only over the entry this load replaces: another instance's write since then wins.
          return this.swapEntry(key, over, sealed, seconds).then((swapped) =>
            swapped === undefined ? this.writeLoaded(key, sealed, seconds, true) : swapped,
          );
        },
        undefined,
        (written) => {
          // `false`: not written (another write won the swap, or the key was taken meanwhile).
          if (written !== false) this.loadStored(key, seconds);
          return undefined;
        },
      ) as Promise<void>;
    // A write of the key while the store learnt the life wins over the load.
    return published ? published.then(() => (flight.superseded ? undefined : write())) : write();
  }

  /** Counts a loaded value written to the cache, and reports it. */
  private loadStored(key: string, seconds: number): void {
    this.counters.loadsStored++;
    if (this.on.set)
      this.events.emit('set', { cache: this.name, key, ttl: seconds, source: 'load' });
  }

  /** Counts a failed backend call (logged where it failed), and reports it. */
  private backendFailed(operation: string, key: string, error: unknown): void {
    this.counters.failed(operation);
    if (this.on.error) {
      this.events.emit('error', { cache: this.name, operation, key, error: asError(error) });
    }
  }

  /** Reports a bus message sent or heard. */
  private busMessage(direction: 'in' | 'out', message: BusMessage): void {
    this.events.emit('bus.message', {
      cache: this.name,
      direction,
      keys: message.keys ?? NONE,
      prefixes: message.prefixes ?? NONE,
      tags: message.tags?.map(([tag]) => tag) ?? NONE,
      clear: message.clear === true,
    });
  }

  /**
   * Counters since the cache started, with the state of its tiers now (`CacheService.stats()`).
   */
  stats(): CacheStats {
    const c = this.counters;
    const remote = this.remoteTier;
    const l1 = this.l1Store();
    const hasL2 = this.local === undefined;
    const tiers: { l1?: CacheL1Stats; l2?: CacheStats['tiers']['l2'] } = {};
    if (l1) tiers.l1 = { hits: c.tierHits(L1), ...sizeOf(l1) };
    if (hasL2) {
      tiers.l2 = {
        hits: c.tierHits(L2),
        circuit: remote?.state,
        pendingReconciliation: remote?.pendingReconciliation ?? 0,
      };
    }
    const busState = this.busState;
    return {
      name: this.name,
      namespace: this.options.namespace,
      hits: c.hits,
      misses: c.misses,
      stale: c.stale,
      shared: c.shared,
      sets: c.sets,
      deletes: c.deletes,
      clears: c.clears,
      errors: c.errorCount,
      loader: {
        runs: c.loaderRuns,
        errors: c.loaderErrors,
        timeouts: c.loaderTimeouts,
        inFlight: this.flights.size,
        totalMs: c.loaderMs,
      },
      lock: {
        waits: c.lockWaits,
        acquired: c.lockAcquired,
        found: c.lockFound,
        timeouts: c.lockTimeouts,
        unavailable: c.lockUnavailable,
      },
      tiers,
      bus: {
        state: busState,
        connected: busState === 'live',
        published: c.busPublished,
        received: c.busReceived,
        gaps: c.busGaps,
        buffered: this.twoTier?.busBuffered ?? 0,
      },
    };
  }

  /** The in-process store: the local tier, the L1 of two tiers, or the failover fallback. */
  private l1Store(): CacheAdapter | undefined {
    return this.local?.store ?? this.twoTier?.l1.store ?? this.tiers.failover?.fallback;
  }

  /**
   * The cache's health now: its shared store pinged (bounded by `timeoutMs`), its circuit and
   * bus. `up`; `degraded` when it serves, but from the in-process tier alone (failover while
   * Redis is unreachable or recovering) or without its L1 (bus deaf); `down` when the shared
   * store is unreachable and nothing stands in for it. Never rejects.
   */
  async health(timeoutMs = 1000): Promise<CacheHealth> {
    const l1Store = this.l1Store();
    const l1 = l1Store && sizeOf(l1Store);
    const l1Size = l1 && { entries: l1.entries, bytes: l1.bytes };
    if (this.local) return { status: 'up', serving: 'l1', ...(l1Size && { l1: l1Size }) };
    const started = performance.now();
    let l2: NonNullable<CacheHealth['l2']>;
    try {
      await withTimeout(() => this.pingShared(), Math.max(1, timeoutMs));
      l2 = { status: 'up', latencyMs: Math.round((performance.now() - started) * 100) / 100 };
    } catch (error) {
      l2 = { status: 'down', error: redact(describeError(error)) };
    }
    const circuit = this.remoteTier?.state;
    const bus = this.twoTier ? this.busState : undefined;
    const shape = {
      l2,
      ...(circuit && { circuit }),
      ...(bus && { bus }),
      ...(l1Size && { l1: l1Size }),
    };
    const failover = this.remoteTier !== undefined;
    if (failover && (l2.status === 'down' || circuit !== 'closed')) {
      const reason =
        l2.status === 'down'
          ? `shared store unreachable (${l2.error ?? 'no answer'}); serving from the in-process tier`
          : `circuit ${circuit ?? 'open'}: the shared store is recovering; serving from the in-process tier`;
      return { status: 'degraded', reason, serving: 'l1', ...shape };
    }
    if (l2.status === 'down') {
      return {
        status: 'down',
        reason: `shared store unreachable (${l2.error ?? 'no answer'}) and no failover`,
        serving: 'l2',
        ...shape,
      };
    }
    if (bus === 'deaf') {
      return {
        status: 'degraded',
        reason: 'bus deaf: the L1 is bypassed until it hears the other instances again',
        serving: 'l2',
        ...shape,
      };
    }
    return { status: 'up', serving: this.twoTier ? 'l1+l2' : 'l2', ...shape };
  }

  /** Pings the shared store itself (not through the circuit: health reports what is true now). */
  private pingShared(): Promise<unknown> {
    const store = this.remoteTier?.store ?? this.tiers.remote ?? this.twoTier?.shared;
    if (!store) return RESOLVED;
    if ('read' in store && !('get' in store)) return store.ping();
    const adapter = store as CacheAdapter;
    return adapter.ping ? adapter.ping() : adapter.has(PROBE_KEY);
  }

  /** Another instance changed these entries (or the bus had a gap): loads of them are stale. */
  private remoteChange(message: BusMessage): void {
    if (message.tags !== undefined && message.tags.length > 0) {
      for (const [tag, at] of message.tags) this.tagClock.heard([tag], at);
      this.flights.supersedeTags(message.tags.map(([tag]) => tag));
    }
    if (message.clear) {
      this.tagClock.reset();
      this.flights.supersede('', false);
      for (const wake of [...this.lockWaiters.values()]) wake();
      return;
    }
    message.keys?.forEach((key) => {
      this.flights.supersede(key, true);
      this.lockWaiters.get(key)?.();
    });
    message.prefixes?.forEach((prefix) => this.flights.supersede(prefix, false));
  }

  /** Seconds of a TTL given to a call (a number, or a string of plain decimal digits). */
  private ttlOf(ttl: unknown): number {
    if (ttl === undefined) return this.options.ttl;
    const seconds = parseTtl(ttl);
    const problem = ttlProblem(seconds);
    if (problem) throw new CacheArgumentError(invalidTtlMessage(ttl, problem));
    return seconds as number;
  }

  /** The TTL a `set` writes with (its own or the module's, jitter applied), and its grace. */
  private writeTtlOf(ttl: number | `${number}` | SetOptions | undefined): {
    ttl: number;
    grace: number;
    tags?: readonly string[];
  } {
    if (typeof ttl !== 'object' || ttl === null) {
      return { ttl: jitteredTtl(this.ttlOf(ttl), this.policy.jitter), grace: this.policy.grace };
    }
    for (const name of Object.keys(ttl)) {
      if (!SET_FIELDS.includes(name)) {
        throw new CacheArgumentError(
          `Unknown set option "${name}". Known options: ${SET_FIELDS.join(', ')}.`,
        );
      }
    }
    const seconds = this.ttlOf(ttl.ttl);
    checkLoading(ttl);
    return {
      ttl: jitteredTtl(seconds, ttl.jitter ?? this.policy.jitter),
      grace: ttl.grace ?? this.policy.grace,
      tags: checkedTags(ttl.tags),
    };
  }
}

/**
 * The clock of the hit path (an envelope's expiry and refresh point): `Date.now()`, read at most
 * once per millisecond (see {@link coarseClock}).
 */
// `Date.now` compared by identity: a faked `Date` is a new one.
const hitClock = coarseClock(
  () => Date.now,
  () => Date.now(),
);

/**
 * `true` for a loader error that is an answer rather than a failure: an HTTP client error
 * (Nest's `HttpException` and any error with a `getStatus()` from 400 to 499). With `grace`, a
 * failure is answered with the stale value; an answer reaches the caller (a deleted thing must
 * not be served for the whole grace).
 */
function isAnswer(error: unknown): boolean {
  const getStatus = (error as { getStatus?: unknown } | null)?.getStatus;
  if (typeof getStatus !== 'function') return false;
  const status: unknown = getStatus.call(error);
  return typeof status === 'number' && status >= 400 && status < 500;
}

/**
 * How many `timeouts.hard` a load may run before later callers stop joining it and start a new
 * one: a slow loader keeps its single flight, one that hangs frees its key.
 */
const OVERDUE_FACTOR = 10;

/** How often the tag clock is re-aligned on the shared store's (ms). */
const TAG_CLOCK_SYNC_MS = 60_000;
/** The longest startup waits for the first alignment, and when a failed one is retried (ms). */
const TAG_CLOCK_FIRST_SYNC_MS = 500;
const TAG_CLOCK_RETRY_MS = 1_000;

/** The logical expiry `expire` gives an entry: the epoch's first millisecond, always past. */
const EXPIRED = 1;

/** The rejection of a caller's wait that a timeout ended (not the loader's own error). */
const STALE_TIMEOUT = new Error('stale timeout');

/** How many keys at most are remembered as backing off (a bound on the stack's memory). */
const MAX_BACKOFF_KEYS = 10_000;
/** First pause of a lock waiter between reads of the key (doubling up to the next). */
const LOCK_POLL_FIRST_MS = 10;
const LOCK_POLL_MAX_MS = 100;

/**
 * The loading options of `load`, resolved when first needed: a hit never needs them, and
 * resolving them allocates.
 */
function policyOf<T>(load: Load<T>): LoadPolicy {
  return (load.resolved ??=
    load.options === undefined ? load.base : loadPolicyOf(load.base, load.options));
}

/** A stale value to fall back on (an expired entry kept by `grace`). */
/** The counters of a read of {@link CacheStack.read}. */
interface ReadKind {
  readonly name: CacheReadOperation;
  readonly hit: readonly [number, number];
  readonly miss: number;
}

const READ_GET: ReadKind = { name: 'get', hit: GET_HIT, miss: GET_MISS };
const READ_HAS: ReadKind = { name: 'has', hit: HAS_HIT, miss: HAS_MISS };
const NONE: readonly string[] = Object.freeze([]);
/** The key a shared store without `ping()` is asked about by a health check. */
const PROBE_KEY = '__cachekit:probe__';

/** How a load's wait for the fleet-wide lock ended. */
type LockOutcome = 'acquired' | 'found' | 'timeout' | 'unavailable';

/** Entries and bytes of an in-process store, and its bounds. */
function sizeOf(store: CacheAdapter): Omit<CacheL1Stats, 'hits'> {
  const memory = store as Partial<
    Pick<MemoryCacheAdapter, 'size' | 'bytes' | 'maxEntries' | 'maxSize'>
  >;
  return {
    entries: typeof memory.size === 'number' ? memory.size : 0,
    bytes: typeof memory.bytes === 'number' ? memory.bytes : 0,
    maxEntries: typeof memory.maxEntries === 'number' ? memory.maxEntries : 0,
    maxBytes: typeof memory.maxSize === 'number' ? memory.maxSize : undefined,
  };
}

interface Stale {
  /** The tier that held it. */
  readonly tier: Tier;
  readonly value: unknown;
}

/** One wrap call's load, with its options resolved. */
interface Load<T> {
  readonly key: string;
  readonly loader: () => T | Promise<T>;
  /** Seconds, before jitter. */
  readonly ttl: number;
  readonly unless: ((value: T) => boolean) | undefined;
  /** The loading options the call starts from (the module's, or the interceptor's). */
  readonly base: LoadPolicy;
  /** The call's own options over {@link base}, if any (checked). */
  readonly options: CacheLoadingOptions | undefined;
  /** {@link base} with {@link options}, once a load needs it (see {@link policyOf}). */
  resolved?: LoadPolicy;
  /** The tags the loaded value carries, if any. */
  readonly tags?: readonly string[];
  /** The read before this load failed: load without the lock (fail open at once). */
  readonly lockless?: boolean;
  /** A refresh-ahead: nobody waits for it. */
  readonly refresh?: boolean;
  /** The stored entry (as read) this load replaces: written over only while it is still there. */
  readonly over?: unknown;
  /** Started over an entry the store holds (stale, corrupt, due for a refresh). */
  readonly replaces?: boolean;
  /** Where this caller's answer is reported instead of being counted (see {@link WrapTally}). */
  readonly tally?: WrapTally;
  /** One key of a `wrapMany` batch: its loader asks the batch's one run for its value. */
  readonly batched?: boolean;
  /** The batch of a `wrapMany` key. */
  readonly batch?: LoadBatch<unknown>;
}

/**
 * Receives how one get-or-load caller was answered, instead of the stack counting it: for a
 * caller that decides afterwards which of its reads answered (`CacheInterceptor`, whose first
 * read may find only another variant of the response). It reports with
 * {@link CacheStack.countWrap}.
 */
export type WrapTally = (status: WrapStatus, tier: Tier, reason: StaleReason) => void;

/** Why a get-or-load was answered with a stale value. */
export type StaleReason = 'error' | 'timeout' | 'backoff';

/**
 * The metadata of an entry written now for `ttl` seconds with `grace` and `refreshAhead`, or
 * `undefined` when it needs none (it is then stored plain).
 */
function timesOf(
  ttl: number,
  grace: number,
  refreshAhead: number | undefined,
  tags?: readonly string[],
  created?: number,
): EntryTimes | undefined {
  const tagged = tags !== undefined && tags.length > 0 ? { tags, created } : undefined;
  if (!(ttl > 0)) return tagged && { expiresAt: 0, keptUntil: 0, ...tagged };
  if (!(grace > 0) && refreshAhead === undefined) {
    if (tagged === undefined) return undefined;
    // Tags alone: no grace, so the stored entry expires with its value.
    const expiresAt = Date.now() + ttl * 1000;
    return { expiresAt, keptUntil: expiresAt, ...tagged };
  }
  const now = Date.now();
  const expiresAt = now + ttl * 1000;
  return {
    expiresAt,
    keptUntil:
      grace > 0
        ? Math.min(now + Math.min(MAX_TTL, ttl + grace) * 1000, Number.MAX_SAFE_INTEGER)
        : expiresAt,
    refreshAt: refreshAhead === undefined ? undefined : now + ttl * refreshAhead * 1000,
    ...tagged,
  };
}

/** `tags` checked (`CacheArgumentError`), or `undefined` when none. */
function checkedTags(tags: unknown): readonly string[] | undefined {
  if (tags === undefined) return undefined;
  const problem = tagsProblem(tags);
  if (problem) {
    const bad = Array.isArray(tags)
      ? tags.length > MAX_TAGS
        ? `${tags.length} tags`
        : `tag ${tags.findIndex((tag) => typeof tag !== 'string' || tag === '')} is ${describeValue(tags.find((tag) => typeof tag !== 'string' || tag === ''))}`
      : describeValue(tags);
    throw new CacheArgumentError(`Invalid tags (${bad}): expected ${problem}.`);
  }
  const list = tags as readonly string[];
  return list.length === 0 ? undefined : list;
}

/** The TTL (seconds) the stored entry is written with: its TTL, plus its grace if any. */
function keptFor(ttl: number, times: EntryTimes | undefined): number {
  if (times === undefined || !(ttl > 0)) return ttl;
  return Math.min(MAX_TTL, ttl + (times.keptUntil - times.expiresAt) / 1000);
}

/** Throws `CacheArgumentError` on an unknown field or a loading option out of bounds. */
function checkWrapOptions(options: object): void {
  for (const name in options) {
    if (!WRAP_FIELD_SET.has(name) && Object.prototype.hasOwnProperty.call(options, name)) {
      throw new CacheArgumentError(
        `Unknown wrap option "${name}". Known options: ${WRAP_FIELDS.join(', ')}.`,
      );
    }
  }
  checkLoading(options);
}

/** Throws `CacheArgumentError` on a loading option (`grace`, `timeouts`, ...) out of bounds. */
function checkLoading(options: object): void {
  const problem = loadingOptionsProblem(options);
  if (problem && 'unknown' in problem) {
    throw new CacheArgumentError(
      `Unknown option "${problem.unknown}". Known: ${problem.known.join(', ')}.`,
    );
  }
  if (problem) {
    throw new CacheArgumentError(
      `Invalid ${problem.field} ${describeValue(problem.value)}: expected ${problem.expected}.`,
    );
  }
}

function keyError(key: unknown): CacheKeyError | undefined {
  if (typeof key === 'string' && key.length > 0) return undefined;
  return new CacheKeyError(
    `Cache keys must be non-empty strings, got ${key === '' ? 'an empty string' : typeof key}.`,
  );
}

/** Throws `CacheKeyError` unless `key` is a non-empty string. */
export function assertKey(key: unknown): asserts key is string {
  const error = keyError(key);
  if (error) throw error;
}

async function callThrough<T>(
  loader: () => T | Promise<T>,
  status: WrapStatus,
): Promise<WrapResult<T>> {
  return { value: await loader(), status };
}

/** `call()`, with a synchronous throw (an adapter that throws instead of rejecting) as a rejection. */
function attempt<R>(call: () => Promise<R>): Promise<R> {
  try {
    return call();
  } catch (error) {
    return Promise.reject(asError(error));
  }
}

const WRAP_MANY = 'The loader of wrapMany';

/** A key the store did not answer for: a miss of the shared tier. */
const MISSED: SourcedRead = Object.freeze({ value: undefined, tier: L2 });

/** Throws `CacheArgumentError` / `CacheKeyError` unless `keys` is an array of valid keys. */
function assertKeys(keys: unknown, operation: string): asserts keys is readonly string[] {
  if (!Array.isArray(keys)) {
    throw new CacheArgumentError(
      `${operation} needs an array of keys, got ${describeValue(keys)}.`,
    );
  }
  for (let i = 0; i < keys.length; i++) {
    const invalid = keyError(keys[i]);
    if (invalid) throw new CacheKeyError(`${operation} key ${i}: ${invalid.message}`);
  }
}

/** How a log line names the keys of a bulk call: the first few, and how many more. */
function keysLabel(keys: readonly string[]): string {
  const shown = keys.slice(0, 3).join(', ');
  return keys.length > 3 ? `${shown} (+${keys.length - 3} more)` : shown;
}

/**
 * What a bulk read that failed for part of its keys still read (the rest: misses): `sourced`
 * reads (a tier's `readMany`) carry their tier, plain values (a store's `getMany`) are `tier`'s.
 */
function partialReads(
  error: unknown,
  sourced: boolean,
  tier: Tier,
): ReadonlyArray<SourcedRead | undefined> {
  if (!(error instanceof CachePartialError)) return NONE_READ;
  if (sourced) return error.results as ReadonlyArray<SourcedRead | undefined>;
  return (error.results as unknown[]).map((value) =>
    value === undefined ? undefined : { value, tier },
  );
}

const NONE_READ: ReadonlyArray<SourcedRead | undefined> = Object.freeze([]);
