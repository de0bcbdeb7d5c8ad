import { CacheConfigError } from '../utils/cache.errors';
import type { CacheAdapter } from '../interfaces/cache-adapter.interface';
import type { CacheInvalidationOptions } from '../interfaces/cache-invalidation-options.interface';
import type {
  CacheBusOptions,
  CacheFailoverOptions,
  CacheL1Options,
  CacheLoaderTimeouts,
  CacheMeterProvider,
  CacheModuleOptions,
  CacheProvider,
  CacheRedisOptions,
} from '../interfaces/cache-module-options.interface';
import { registerRedisSecrets } from '../utils/redact';
import type { CacheSerializer } from '../interfaces/cache-serializer.interface';
import { DEFAULT_LOAD_POLICY, loadPolicyOf, type LoadPolicy } from './load-policy';
import {
  BUS_DEFAULTS,
  FAILOVER_DEFAULTS,
  L1_DEFAULTS,
  MEMORY_DEFAULTS,
  MODULE_DEFAULTS,
  REDIS_FAIL_FAST,
} from './defaults';
import {
  assertNamespace,
  configTtl,
  describeConfigValue as describe,
  expiringTtlProblem,
  invalidOption as invalid,
  loadingOptionsProblem,
  nonNegativeProblem,
  parseRedisUrl,
  positiveIntegerProblem,
  positiveProblem,
  resolveSerializer,
  timerSecondsProblem,
} from './validators';

/**
 * The options after defaults, environment and user input are merged and validated.
 * @internal
 */
export interface ResolvedCacheOptions {
  readonly enabled: boolean;
  readonly provider: CacheProvider;
  readonly ttl: number;
  readonly namespace: string;
  readonly redis: CacheRedisOptions;
  /** `false`, or the failover tuning with every default filled in. */
  readonly failover: false | Readonly<Required<CacheFailoverOptions>>;
  readonly memory: {
    readonly maxEntries: number;
    readonly sweepInterval: number;
    /** Bytes; `undefined` = entries are not measured. */
    readonly maxSize: number | undefined;
  };
  /** `false`, or the L1 tier's bounds with every default filled in. */
  readonly l1: false | Readonly<Required<CacheL1Options>>;
  /** `false` (no L1, or `bus: false`), or the bus tuning with every default filled in. */
  readonly bus: false | Readonly<Required<CacheBusOptions>>;
  readonly strict: boolean;
  /** Fraction of the TTL (0 to 1) added at random to each write; `0` = none. */
  readonly jitter: number;
  /** Default loader timeouts (seconds); `{}` = none. */
  readonly timeouts: Readonly<CacheLoaderTimeouts>;
  /** The loading options (`jitter`, `timeouts`, `grace`, `lock`, ...) with every default. */
  readonly loading: LoadPolicy;
  readonly adapter?: CacheAdapter;
  /** Dispatchers and event sources of invalidation rules (see `CacheInvalidationOptions`). */
  readonly invalidation: CacheInvalidationOptions;
  /** `false`, or where OpenTelemetry instruments are created (`undefined`: the global provider). */
  readonly metrics: false | { readonly meterProvider?: CacheMeterProvider };
  /** Forward events to `@nestjs/event-emitter` when it is set up. */
  readonly eventEmitter: boolean;
  /** How values are stored: `JSON_SERIALIZER`, `RICH_SERIALIZER` or the application's own. */
  readonly serializer: CacheSerializer;
}

const KNOWN_OPTIONS = new Set<string>([
  'isGlobal',
  'enabled',
  'provider',
  'ttl',
  'namespace',
  'redis',
  'failover',
  'memory',
  'l1',
  'bus',
  'strict',
  'jitter',
  'timeouts',
  'grace',
  'graceBackoff',
  'refreshAhead',
  'lock',
  'adapter',
  'invalidation',
  'metrics',
  'eventEmitter',
  'serializer',
  'caches',
]);

type Env = Record<string, string | undefined>;

/**
 * The one place where defaults, environment variables and user options meet.
 * Precedence: explicit option > environment variable > default. Throws
 * {@link CacheConfigError} naming the option (or variable) and the rejected value.
 */
export function resolveCacheOptions(
  user: CacheModuleOptions = {},
  env: Env = process.env,
): ResolvedCacheOptions {
  if (user === null || typeof user !== 'object') {
    throw new CacheConfigError(`CacheModule options must be an object, got ${describe(user)}.`);
  }
  // First: from here on, no message (ours or a driver's) may show these passwords.
  registerRedisSecrets(user.redis);
  registerRedisSecrets(env.CACHE_REDIS_URL);
  for (const name of Object.keys(user)) {
    if (!KNOWN_OPTIONS.has(name)) {
      throw new CacheConfigError(
        `Unknown CacheModule option "${name}". Known options: ${[...KNOWN_OPTIONS].join(', ')}.`,
      );
    }
  }

  const enabled = pick(
    user.enabled,
    env,
    'CACHE_ENABLED',
    'enabled',
    parseBoolean,
    MODULE_DEFAULTS.enabled,
  );
  if (typeof enabled !== 'boolean') throw invalid('enabled', enabled, 'a boolean');

  const provider = pick(
    user.provider,
    env,
    'CACHE_PROVIDER',
    'provider',
    (s) => s,
    MODULE_DEFAULTS.provider,
  );
  if (provider !== 'memory' && provider !== 'redis') {
    throw invalid(
      source('provider', user.provider, 'CACHE_PROVIDER'),
      provider,
      "'memory' or 'redis'",
    );
  }

  // A numeric string is a TTL too (DESIGN), whether it came from CACHE_TTL or a config file,
  // but only plain decimal digits: the variable is not trimmed or read by Number (see parseTtl).
  const ttl = configTtl(
    pick(user.ttl, env, 'CACHE_TTL', 'ttl', (raw) => raw, MODULE_DEFAULTS.ttl, false),
    source('ttl', user.ttl, 'CACHE_TTL'),
  );

  const namespace = pick(
    user.namespace,
    env,
    'CACHE_NAMESPACE',
    'namespace',
    (s) => s,
    MODULE_DEFAULTS.namespace,
  );
  assertNamespace(namespace, source('namespace', user.namespace, 'CACHE_NAMESPACE'));

  const failover = resolveFailover(user.failover ?? MODULE_DEFAULTS.failover);
  const strict = user.strict ?? MODULE_DEFAULTS.strict;
  if (typeof strict !== 'boolean') throw invalid('strict', strict, 'a boolean');

  const memory = resolveMemory(user.memory);
  // The Redis settings (and CACHE_REDIS_URL) only matter, and are only checked, when used.
  const redis = provider === 'redis' ? resolveRedis(user.redis, env) : (user.redis ?? {});

  if (failover && provider !== 'redis') {
    throw new CacheConfigError(
      `Invalid CacheModule option "failover": ${user.failover === true ? 'true' : '{ ... }'} needs provider 'redis' (got provider '${provider}'). ` +
        `Failover puts Redis in front of an in-memory fallback; set provider: 'redis' and redis: { url }.`,
    );
  }
  if (user.adapter !== undefined && !isAdapter(user.adapter)) {
    throw invalid(
      'adapter',
      user.adapter,
      'an object with get, set, delete, has, clear and deleteByPrefix methods',
    );
  }

  const l1Option = source('l1', user.l1, 'CACHE_L1');
  const l1 = resolveL1(
    pick(user.l1, env, 'CACHE_L1', 'l1', parseBoolean, MODULE_DEFAULTS.l1),
    l1Option,
  );
  if (l1 && provider !== 'redis' && user.adapter === undefined) {
    throw new CacheConfigError(
      `Invalid CacheModule option "${l1Option}": L1 needs provider 'redis' (or a custom adapter), ` +
        `got provider '${provider}'. L1 is an in-process copy in front of a shared store; the ` +
        `memory provider is in-process already. Set provider: 'redis' and redis: { url }, or ` +
        `leave l1 off.`,
    );
  }
  const bus = resolveBus(user.bus, l1 !== false);
  const loading = resolveLoading(user);
  const jitter = loading.jitter;
  const timeouts = { ...(user.timeouts ?? {}) };

  return {
    enabled,
    provider,
    ttl,
    namespace,
    redis,
    failover,
    memory,
    l1,
    bus,
    strict,
    jitter,
    timeouts,
    loading,
    adapter: user.adapter,
    invalidation: resolveInvalidation(user.invalidation),
    metrics: resolveMetrics(user.metrics),
    eventEmitter: check('eventEmitter', user.eventEmitter ?? true, (value) =>
      typeof value === 'boolean' ? undefined : 'a boolean',
    ),
    serializer: resolveSerializer(user.serializer),
  };
}

const METRICS_FIELDS: ReadonlySet<string> = new Set(['meterProvider']);

function resolveMetrics(metrics: unknown): ResolvedCacheOptions['metrics'] {
  if (metrics === undefined || metrics === false) return false;
  if (metrics === true) return {};
  if (metrics === null || typeof metrics !== 'object' || Array.isArray(metrics)) {
    throw invalid('metrics', metrics, 'a boolean or { meterProvider }');
  }
  assertKnownFields('metrics', metrics, METRICS_FIELDS);
  const { meterProvider } = metrics as { meterProvider?: unknown };
  if (meterProvider === undefined) return {};
  if (
    meterProvider === null ||
    typeof meterProvider !== 'object' ||
    typeof (meterProvider as CacheMeterProvider).getMeter !== 'function'
  ) {
    throw invalid(
      'metrics.meterProvider',
      meterProvider,
      'an OpenTelemetry MeterProvider (an object with a getMeter method)',
    );
  }
  return { meterProvider: meterProvider as CacheMeterProvider };
}

/**
 * How long, in ms, one cache call of these options may wait for its backend: the Redis
 * client's `commandTimeout` (the module's fail-fast 1000 ms unless set; also for memory, custom
 * adapters and clients without one), or the failover guard's timeout when that is shorter.
 * Queue-backed dispatchers bound a `publish` by it (`InvalidationDispatcherContext.timeout`).
 * @internal
 */
export function callTimeoutOf(options: ResolvedCacheOptions): number {
  const fallback = REDIS_FAIL_FAST.commandTimeout as number;
  let command: unknown;
  if (options.provider === 'redis' && !options.adapter) {
    const redis = options.redis as Record<string, unknown>;
    if ('client' in redis) {
      const client = redis.client as { options?: Record<string, unknown> } | undefined;
      const clientOptions = client?.options;
      command =
        clientOptions?.commandTimeout ??
        (clientOptions?.redisOptions as Record<string, unknown> | undefined)?.commandTimeout;
    } else if ('cluster' in redis) {
      const clusterOptions = redis.clusterOptions as Record<string, unknown> | undefined;
      command = (clusterOptions?.redisOptions as Record<string, unknown> | undefined)
        ?.commandTimeout;
    } else {
      command = redis.commandTimeout;
    }
  }
  // 0 or unset means "no bound" to ioredis; the module's bound then applies to the hand-over.
  const budget = typeof command === 'number' && command > 0 ? command : fallback;
  const guard = options.failover ? options.failover.timeout * 1000 : 0;
  return guard > 0 ? Math.min(budget, guard) : budget;
}

const FAILOVER_FIELDS = new Set(Object.keys(FAILOVER_DEFAULTS));

function resolveFailover(failover: unknown): ResolvedCacheOptions['failover'] {
  if (failover === false) return false;
  if (failover === true) return { ...FAILOVER_DEFAULTS };
  if (failover === null || typeof failover !== 'object' || Array.isArray(failover)) {
    throw invalid(
      'failover',
      failover,
      'true, false or { failureThreshold, cooldown, timeout, maxTrackedKeys }',
    );
  }
  assertKnownFields('failover', failover, FAILOVER_FIELDS);
  const given = failover as CacheFailoverOptions;
  const failureThreshold = check(
    'failover.failureThreshold',
    given.failureThreshold ?? FAILOVER_DEFAULTS.failureThreshold,
    positiveIntegerProblem,
  );
  const cooldown = check(
    'failover.cooldown',
    given.cooldown ?? FAILOVER_DEFAULTS.cooldown,
    positiveProblem,
  );
  const timeout = check('failover.timeout', given.timeout ?? FAILOVER_DEFAULTS.timeout, (value) =>
    nonNegativeProblem(value, 'seconds', 'no timeout'),
  );
  const maxTrackedKeys = check(
    'failover.maxTrackedKeys',
    given.maxTrackedKeys ?? FAILOVER_DEFAULTS.maxTrackedKeys,
    positiveIntegerProblem,
  );
  return { failureThreshold, cooldown, timeout, maxTrackedKeys };
}

/** Unknown fields of an option object, listed with the known ones. */
function assertKnownFields(option: string, given: object, known: ReadonlySet<string>): void {
  for (const name of Object.keys(given)) {
    if (!known.has(name)) {
      throw new CacheConfigError(
        `Unknown CacheModule option "${option}.${name}". Known: ${[...known].join(', ')}.`,
      );
    }
  }
}

const L1_FIELDS = new Set(Object.keys(L1_DEFAULTS));

/** `l1` as given, or from `CACHE_L1` (then a boolean; `option` names the variable). */
function resolveL1(l1: unknown, option: string): ResolvedCacheOptions['l1'] {
  if (l1 === false) return false;
  if (l1 === true) return { ...L1_DEFAULTS };
  if (l1 === null || typeof l1 !== 'object' || Array.isArray(l1)) {
    throw invalid(option, l1, 'true, false or { maxEntries, maxSize, ttl }');
  }
  assertKnownFields('l1', l1, L1_FIELDS);
  const given = l1 as CacheL1Options;
  return {
    maxEntries: check(
      'l1.maxEntries',
      orDefault(given.maxEntries, L1_DEFAULTS.maxEntries),
      positiveIntegerProblem,
    ),
    maxSize: check(
      'l1.maxSize',
      orDefault(given.maxSize, L1_DEFAULTS.maxSize),
      positiveIntegerProblem,
    ),
    ttl: check('l1.ttl', orDefault(given.ttl, L1_DEFAULTS.ttl), expiringTtlProblem),
  };
}

const BUS_FIELDS = new Set(Object.keys(BUS_DEFAULTS));

function resolveBus(bus: unknown, l1: boolean): ResolvedCacheOptions['bus'] {
  if (bus === false) return false;
  if (bus === undefined) return l1 ? { ...BUS_DEFAULTS } : false;
  if (bus !== true && (bus === null || typeof bus !== 'object' || Array.isArray(bus))) {
    throw invalid('bus', bus, 'true, false or { heartbeat, maxBuffered }');
  }
  if (!l1) {
    throw new CacheConfigError(
      `Invalid CacheModule option "bus": ${bus === true ? 'true' : '{ ... }'} without l1. ` +
        `The bus keeps L1 tiers coherent; it needs l1: set l1: true (with provider 'redis'), ` +
        `or remove bus.`,
    );
  }
  if (bus === true) return { ...BUS_DEFAULTS };
  assertKnownFields('bus', bus, BUS_FIELDS);
  const given = bus as CacheBusOptions;
  return {
    heartbeat: check('bus.heartbeat', orDefault(given.heartbeat, BUS_DEFAULTS.heartbeat), (value) =>
      timerSecondsProblem(value, 'no heartbeat'),
    ),
    maxBuffered: check(
      'bus.maxBuffered',
      orDefault(given.maxBuffered, BUS_DEFAULTS.maxBuffered),
      positiveIntegerProblem,
    ),
  };
}

/** The loading options (`jitter`, `timeouts`, `grace`, `lock`, ...) over their defaults. */
function resolveLoading(user: CacheModuleOptions): LoadPolicy {
  const problem = loadingOptionsProblem(user);
  if (problem && 'unknown' in problem) {
    throw new CacheConfigError(
      `Unknown CacheModule option "${problem.unknown}". Known: ${problem.known.join(', ')}.`,
    );
  }
  if (problem) throw invalid(problem.field, problem.value, problem.expected);
  return loadPolicyOf({ ...DEFAULT_LOAD_POLICY, jitter: MODULE_DEFAULTS.jitter }, user);
}

/** `fallback` for an omitted field only: `null` is a value, and rejected as one. */
function orDefault<T>(given: T | undefined, fallback: T): T {
  return given === undefined ? fallback : given;
}

function resolveMemory(memory: CacheModuleOptions['memory']): ResolvedCacheOptions['memory'] {
  if (memory === undefined) return { ...MEMORY_DEFAULTS, maxSize: undefined };
  if (memory === null || typeof memory !== 'object') throw invalid('memory', memory, 'an object');
  const maxEntries = check(
    'memory.maxEntries',
    memory.maxEntries ?? MEMORY_DEFAULTS.maxEntries,
    positiveIntegerProblem,
  );
  const sweepInterval = check(
    'memory.sweepInterval',
    memory.sweepInterval ?? MEMORY_DEFAULTS.sweepInterval,
    (value) => nonNegativeProblem(value, 'seconds', 'no sweep'),
  );
  const maxSize =
    memory.maxSize === undefined
      ? undefined
      : check('memory.maxSize', memory.maxSize, positiveIntegerProblem);
  return { maxEntries, sweepInterval, maxSize };
}

function resolveRedis(redis: CacheRedisOptions | undefined, env: Env): CacheRedisOptions {
  if (redis !== undefined && (redis === null || typeof redis !== 'object')) {
    throw invalid(
      'redis',
      redis,
      'an object ({ url }, ioredis options, { cluster }, { sentinels, name } or { client })',
    );
  }
  if (redis && ('client' in redis || 'cluster' in redis)) {
    if ('cluster' in redis && (!Array.isArray(redis.cluster) || redis.cluster.length === 0)) {
      throw invalid('redis.cluster', redis.cluster, 'a non-empty array of { host, port } nodes');
    }
    return redis;
  }
  const explicitUrl = redis?.url;
  const hasConnectionFields =
    redis !== undefined &&
    ('host' in redis || 'port' in redis || 'sentinels' in redis || 'path' in redis);
  const url =
    explicitUrl ??
    (hasConnectionFields ? undefined : (env.CACHE_REDIS_URL ?? MODULE_DEFAULTS.redisUrl));
  if (url !== undefined) {
    const option = explicitUrl !== undefined ? 'redis.url' : 'CACHE_REDIS_URL';
    assertRedisUrl(url, option);
    return { ...redis, url };
  }
  return { ...redis };
}

function assertRedisUrl(url: unknown, option: string): void {
  if (typeof url !== 'string') throw invalid(option, url, 'a redis:// or rediss:// URL string');
  const parsed = parseRedisUrl(url);
  if ('problem' in parsed) {
    throw new CacheConfigError(`Invalid CacheModule option "${option}": ${parsed.problem}`);
  }
}

/** `value` when `problem(value)` finds nothing, else a {@link CacheConfigError} naming `option`. */
function check<T>(option: string, value: T, problem: (value: unknown) => string | undefined): T {
  const found = problem(value);
  if (found) throw invalid(option, value, found);
  return value;
}

/** Names where a value came from: the option, or the environment variable that supplied it. */
function source(option: string, explicit: unknown, variable: string): string {
  return explicit === undefined ? `${option} (from ${variable})` : option;
}

function pick<T>(
  explicit: T | undefined,
  env: Env,
  variable: string,
  option: string,
  parse: (raw: string, variable: string) => unknown,
  fallback: T,
  trim = true,
): T {
  if (explicit !== undefined) return explicit;
  const raw = env[variable];
  // Set but blank is unset, for every variable (`CACHE_TTL=` in a compose file).
  if (raw === undefined || raw.trim() === '') return fallback;
  return parse(trim ? raw.trim() : raw, variable) as T;
}

function parseBoolean(raw: string, variable: string): boolean {
  const value = raw.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(value)) return true;
  if (['false', '0', 'no', 'off'].includes(value)) return false;
  throw new CacheConfigError(
    `Invalid environment variable ${variable}=${JSON.stringify(raw)}: expected true/false (or 1/0, yes/no, on/off).`,
  );
}

function isAdapter(value: unknown): value is CacheAdapter {
  if (value === null || typeof value !== 'object') return false;
  const candidate = value as Record<string, unknown>;
  return ['get', 'set', 'delete', 'has', 'clear', 'deleteByPrefix'].every(
    (method) => typeof candidate[method] === 'function',
  );
}

function resolveInvalidation(invalidation: unknown): CacheInvalidationOptions {
  if (invalidation === undefined) return {};
  if (invalidation === null || typeof invalidation !== 'object' || Array.isArray(invalidation)) {
    throw invalid('invalidation', invalidation, 'an object such as { dispatchers: { ... } }');
  }
  const { dispatchers, eventEmitter } = invalidation as CacheInvalidationOptions;
  if (dispatchers !== undefined) {
    if (dispatchers === null || typeof dispatchers !== 'object' || Array.isArray(dispatchers)) {
      throw invalid('invalidation.dispatchers', dispatchers, 'an object of dispatchers by name');
    }
    for (const [name, dispatcher] of Object.entries(dispatchers)) {
      if (typeof (dispatcher as { dispatch?: unknown } | null)?.dispatch !== 'function') {
        throw invalid(
          `invalidation.dispatchers.${name}`,
          dispatcher,
          'an InvalidationDispatcher (an object with a dispatch(job, execute) method)',
        );
      }
    }
  }
  if (eventEmitter !== undefined && typeof eventEmitter !== 'boolean') {
    throw invalid('invalidation.eventEmitter', eventEmitter, 'a boolean');
  }
  return invalidation;
}
