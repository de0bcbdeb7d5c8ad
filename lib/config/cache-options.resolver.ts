import { CacheConfigError } from '../utils/cache.errors';
import type { CacheAdapter } from '../interfaces/cache-adapter.interface';
import type { CacheInvalidationOptions } from '../interfaces/cache-invalidation-options.interface';
import { FAILOVER_DEFAULTS } from '../adapters/failover.adapter';
import type {
  CacheFailoverOptions,
  CacheModuleOptions,
  CacheProvider,
  CacheRedisOptions,
} from '../interfaces/cache-module-options.interface';
import { redactUrl, registerRedisSecrets } from '../utils/redact';

/** The options after defaults, environment and user input are merged and validated. */
export interface ResolvedCacheOptions {
  readonly enabled: boolean;
  readonly provider: CacheProvider;
  readonly ttl: number;
  readonly namespace: string;
  readonly redis: CacheRedisOptions;
  /** `false`, or the failover tuning with every default filled in. */
  readonly failover: false | Readonly<Required<CacheFailoverOptions>>;
  readonly memory: { readonly maxEntries: number; readonly sweepInterval: number };
  readonly strict: boolean;
  readonly adapter?: CacheAdapter;
  /** Dispatchers and event sources of invalidation rules (see `CacheInvalidationOptions`). */
  readonly invalidation: CacheInvalidationOptions;
}

const DEFAULTS = {
  enabled: true,
  provider: 'memory' as CacheProvider,
  ttl: 300,
  namespace: 'cache',
  failover: false,
  strict: false,
  maxEntries: 10_000,
  sweepInterval: 60,
  redisUrl: 'redis://127.0.0.1:6379',
};

const KNOWN_OPTIONS = new Set<string>([
  'isGlobal',
  'enabled',
  'provider',
  'ttl',
  'namespace',
  'redis',
  'failover',
  'memory',
  'strict',
  'adapter',
  'invalidation',
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
    DEFAULTS.enabled,
  );
  if (typeof enabled !== 'boolean') throw invalid('enabled', enabled, 'a boolean');

  const provider = pick(
    user.provider,
    env,
    'CACHE_PROVIDER',
    'provider',
    (s) => s,
    DEFAULTS.provider,
  );
  if (provider !== 'memory' && provider !== 'redis') {
    throw invalid(
      source('provider', user.provider, 'CACHE_PROVIDER'),
      provider,
      "'memory' or 'redis'",
    );
  }

  const ttl = pick(user.ttl, env, 'CACHE_TTL', 'ttl', parseNumber, DEFAULTS.ttl);
  assertTtl(ttl, source('ttl', user.ttl, 'CACHE_TTL'));

  const namespace = pick(
    user.namespace,
    env,
    'CACHE_NAMESPACE',
    'namespace',
    (s) => s,
    DEFAULTS.namespace,
  );
  assertNamespace(namespace, source('namespace', user.namespace, 'CACHE_NAMESPACE'));

  const failover = resolveFailover(user.failover ?? DEFAULTS.failover);
  const strict = user.strict ?? DEFAULTS.strict;
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

  return {
    enabled,
    provider,
    ttl,
    namespace,
    redis,
    failover,
    memory,
    strict,
    adapter: user.adapter,
    invalidation: resolveInvalidation(user.invalidation),
  };
}

/**
 * The longest TTL, in seconds, that every built-in backend stores exactly: its milliseconds stay
 * a safe integer, which Redis takes as `PX` and lru-cache compares without rounding (about
 * 285 000 years). A longer TTL is rejected rather than written as "never expires" by one
 * backend and refused by another.
 */
export const MAX_TTL = Math.floor(Number.MAX_SAFE_INTEGER / 1000);

const TTL_EXPECTED = `a number of seconds from 0 to ${MAX_TTL} (0 = never expires)`;

/**
 * The one TTL check of every entry point (module option, `set`/`wrap`, decorators, adapters):
 * `undefined` when `ttl` is a number of seconds from 0 to {@link MAX_TTL}, else what a TTL must
 * be, for the caller's own error. Fractions are fine: a TTL above 0 is stored as at least 1 ms,
 * never as "no expiry".
 */
export function ttlProblem(ttl: unknown): string | undefined {
  // NaN fails both comparisons, Infinity the second.
  return typeof ttl === 'number' && ttl >= 0 && ttl <= MAX_TTL ? undefined : TTL_EXPECTED;
}

/** Throws {@link CacheConfigError} naming `option` unless {@link ttlProblem} accepts `ttl`. */
export function assertTtl(ttl: unknown, option: string): asserts ttl is number {
  const problem = ttlProblem(ttl);
  if (problem) throw invalid(option, ttl, problem);
}

// ':' separates the namespace from the key, so without it in a namespace the key `ns:` + key
// names one namespace only: `a` and `a.b` can never reach each other's keys. Glob characters,
// braces (cluster hash tags), whitespace and control characters are out for the same reason.
const NAMESPACE = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * Throws {@link CacheConfigError} naming `option` unless `namespace` is 1 to 128 letters,
 * digits, `_`, `-` or `.`: the rule that keeps two namespaces on one Redis from overlapping.
 * The module's `namespace` option and `new RedisCacheAdapter({ namespace })` both check it here.
 */
export function assertNamespace(
  namespace: unknown,
  option: string,
  owner = 'CacheModule',
): asserts namespace is string {
  if (typeof namespace === 'string' && NAMESPACE.test(namespace)) return;
  const hint =
    typeof namespace === 'string'
      ? namespace
          .replace(/[^A-Za-z0-9_.-]+/g, '.')
          .slice(0, 128)
          .replace(/^\.+|\.+$/g, '')
      : '';
  throw new CacheConfigError(
    `Invalid ${owner} option "${option}": ${describe(namespace)} (expected 1 to 128 letters, ` +
      `digits, '_', '-' or '.'; ':' separates the namespace from the key, so a namespace holding ` +
      `it could overlap another). Use e.g. ${JSON.stringify(hint || 'cache')}.`,
  );
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
  for (const name of Object.keys(failover)) {
    if (!FAILOVER_FIELDS.has(name)) {
      throw new CacheConfigError(
        `Unknown CacheModule option "failover.${name}". Known: ${[...FAILOVER_FIELDS].join(', ')}.`,
      );
    }
  }
  const given = failover as CacheFailoverOptions;
  const failureThreshold = given.failureThreshold ?? FAILOVER_DEFAULTS.failureThreshold;
  if (!Number.isInteger(failureThreshold) || failureThreshold < 1) {
    throw invalid('failover.failureThreshold', failureThreshold, 'a whole number >= 1');
  }
  const cooldown = given.cooldown ?? FAILOVER_DEFAULTS.cooldown;
  if (typeof cooldown !== 'number' || !Number.isFinite(cooldown) || cooldown <= 0) {
    throw invalid('failover.cooldown', cooldown, 'a number of seconds > 0');
  }
  const timeout = given.timeout ?? FAILOVER_DEFAULTS.timeout;
  if (typeof timeout !== 'number' || !Number.isFinite(timeout) || timeout < 0) {
    throw invalid('failover.timeout', timeout, 'a number of seconds >= 0 (0 = no timeout)');
  }
  const maxTrackedKeys = given.maxTrackedKeys ?? FAILOVER_DEFAULTS.maxTrackedKeys;
  if (!Number.isInteger(maxTrackedKeys) || maxTrackedKeys < 1) {
    throw invalid('failover.maxTrackedKeys', maxTrackedKeys, 'a whole number >= 1');
  }
  return { failureThreshold, cooldown, timeout, maxTrackedKeys };
}

function resolveMemory(memory: CacheModuleOptions['memory']): ResolvedCacheOptions['memory'] {
  if (memory === undefined) {
    return { maxEntries: DEFAULTS.maxEntries, sweepInterval: DEFAULTS.sweepInterval };
  }
  if (memory === null || typeof memory !== 'object') throw invalid('memory', memory, 'an object');
  const maxEntries = memory.maxEntries ?? DEFAULTS.maxEntries;
  if (!Number.isInteger(maxEntries) || maxEntries < 1) {
    throw invalid('memory.maxEntries', maxEntries, 'a whole number >= 1');
  }
  const sweepInterval = memory.sweepInterval ?? DEFAULTS.sweepInterval;
  if (typeof sweepInterval !== 'number' || !Number.isFinite(sweepInterval) || sweepInterval < 0) {
    throw invalid('memory.sweepInterval', sweepInterval, 'a number of seconds >= 0 (0 = no sweep)');
  }
  return { maxEntries, sweepInterval };
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
    explicitUrl ?? (hasConnectionFields ? undefined : (env.CACHE_REDIS_URL ?? DEFAULTS.redisUrl));
  if (url !== undefined) {
    const option = explicitUrl !== undefined ? 'redis.url' : 'CACHE_REDIS_URL';
    assertRedisUrl(url, option);
    return { ...redis, url };
  }
  return { ...redis };
}

function assertRedisUrl(url: unknown, option: string): void {
  if (typeof url !== 'string') throw invalid(option, url, 'a redis:// or rediss:// URL string');
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new CacheConfigError(
      `Invalid CacheModule option "${option}": ${JSON.stringify(redactUrl(url))} is not a valid URL ` +
        `(expected redis://[user:password@]host[:port][/db] or rediss://...).`,
    );
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new CacheConfigError(
      `Invalid CacheModule option "${option}": ${JSON.stringify(redactUrl(url))} must use redis:// or rediss://.`,
    );
  }
  if (!parsed.hostname) {
    throw new CacheConfigError(
      `Invalid CacheModule option "${option}": ${JSON.stringify(redactUrl(url))} has no host.`,
    );
  }
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) {
    throw new CacheConfigError(
      `Invalid CacheModule option "${option}": ${JSON.stringify(redactUrl(url))} has database "${db}"; ` +
        `the path must be a database number such as /0.`,
    );
  }
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
): T {
  if (explicit !== undefined) return explicit;
  const raw = env[variable];
  if (raw === undefined || raw.trim() === '') return fallback;
  return parse(raw.trim(), variable) as T;
}

function parseBoolean(raw: string, variable: string): boolean {
  const value = raw.toLowerCase();
  if (['true', '1', 'yes', 'on'].includes(value)) return true;
  if (['false', '0', 'no', 'off'].includes(value)) return false;
  throw new CacheConfigError(
    `Invalid environment variable ${variable}=${JSON.stringify(raw)}: expected true/false (or 1/0, yes/no, on/off).`,
  );
}

function parseNumber(raw: string, variable: string): number {
  const value = Number(raw);
  if (!Number.isFinite(value)) {
    throw new CacheConfigError(
      `Invalid environment variable ${variable}=${JSON.stringify(raw)}: expected a number of seconds.`,
    );
  }
  return value;
}

function isAdapter(value: unknown): value is CacheAdapter {
  if (value === null || typeof value !== 'object') return false;
  const candidate = value as Record<string, unknown>;
  return ['get', 'set', 'delete', 'has', 'clear', 'deleteByPrefix'].every(
    (method) => typeof candidate[method] === 'function',
  );
}

function invalid(option: string, value: unknown, expected: string): CacheConfigError {
  return new CacheConfigError(
    `Invalid CacheModule option "${option}": ${describe(value)} (expected ${expected}).`,
  );
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(redactUrl(value));
  if (typeof value === 'bigint') return `${value}n`;
  if (typeof value === 'function') return 'a function';
  if (typeof value === 'object' && value !== null)
    return Array.isArray(value) ? 'an array' : 'an object';
  return String(value);
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
