import { CacheConfigError } from '../utils/cache.errors';
import { describeError, describeValue } from '../utils/describe-value';
import { redactUrl } from '../utils/redact';
import type { CacheSerializer } from '../interfaces/cache-serializer.interface';
import { JSON_SERIALIZER, loadRichSerializer, RICH_SERIALIZER } from '../utils/serializer';
import { REDIS_DEFAULT_HOST, REDIS_DEFAULT_PORT } from './defaults';

// The shared checks of every entry point (module options, `set`/`wrap`, decorators, adapters,
// dispatchers). A `...Problem` function answers `undefined` when the value is fine, else what
// the value must be, so each caller throws its own error class with its own wording.

/**
 * The longest TTL, in seconds, that every built-in backend stores exactly: its milliseconds stay
 * a safe integer, which Redis takes as `PX` and lru-cache compares without rounding (about
 * 285 000 years). A longer TTL is rejected rather than written as "never expires" by one
 * backend and refused by another.
 * @internal
 */
export const MAX_TTL = Math.floor(Number.MAX_SAFE_INTEGER / 1000);

const TTL_EXPECTED = `a number of seconds from 0 to ${MAX_TTL} (0 = never expires)`;

/**
 * The one TTL check: `undefined` when `ttl` is a number of seconds from 0 to {@link MAX_TTL},
 * else what a TTL must be. Fractions are fine: a TTL above 0 is stored as at least 1 ms, never
 * as "no expiry".
 * @internal
 */
export function ttlProblem(ttl: unknown): string | undefined {
  // NaN fails both comparisons, Infinity the second.
  return typeof ttl === 'number' && ttl >= 0 && ttl <= MAX_TTL ? undefined : TTL_EXPECTED;
}

/**
 * {@link ttlProblem} without 0: `undefined` for a number of seconds above 0 and at most
 * {@link MAX_TTL}, for a TTL that must expire (`l1.ttl`), else what it must be.
 * @internal
 */
export function expiringTtlProblem(ttl: unknown): string | undefined {
  return typeof ttl === 'number' && ttl > 0 && ttl <= MAX_TTL
    ? undefined
    : `a number of seconds above 0 and at most ${MAX_TTL} (0, "never expires", is refused)`;
}

/**
 * The longest period, in seconds, a Node.js timer keeps: `setTimeout`/`setInterval` take at most
 * 2^31 - 1 ms and fire after 1 ms instead (with a warning) beyond it.
 * @internal
 */
export const MAX_TIMER_SECONDS = 2_147_483.647;

/**
 * `undefined` for a number of seconds from 0 to {@link MAX_TIMER_SECONDS}, the period of a
 * timer (`zero` says what 0 means), else what the value must be.
 * @internal
 */
export function timerSecondsProblem(value: unknown, zero: string): string | undefined {
  return typeof value === 'number' && value >= 0 && value <= MAX_TIMER_SECONDS
    ? undefined
    : `a number of seconds from 0 to ${MAX_TIMER_SECONDS} (0 = ${zero})`;
}

/**
 * `undefined` for a number from 0 to 1, the largest fraction of a TTL that `jitter` adds at
 * random to a write, else what it must be.
 * @internal
 */
export function jitterProblem(value: unknown): string | undefined {
  return typeof value === 'number' && value >= 0 && value <= 1
    ? undefined
    : 'a number from 0 to 1 (a fraction of the TTL; 0 = no jitter)';
}

/**
 * A TTL with its jitter applied: `ttl * (1 + random() * jitter)`, at most {@link MAX_TTL}. A TTL
 * of 0 ("never expires") stays 0; `random()` is in [0, 1), and called only when there is jitter.
 * @internal
 */
export function jitteredTtl(ttl: number, jitter: number, random = Math.random): number {
  if (!(jitter > 0) || !(ttl > 0)) return ttl;
  return Math.min(MAX_TTL, ttl * (1 + random() * jitter));
}

/**
 * What is wrong with an option: a field nobody knows (its dotted name, with the names known
 * there), or a field whose value is refused, with what it must be.
 * @internal
 */
export type OptionProblem =
  | { readonly unknown: string; readonly known: readonly string[] }
  | { readonly field: string; readonly value: unknown; readonly expected: string };

/**
 * The loading options every loading entry point takes (the module, `wrap`, `@Cacheable`,
 * `cacheResult`), checked by {@link loadingOptionsProblem}.
 * @internal
 */
export const LOADING_OPTION_FIELDS: readonly string[] = Object.freeze([
  'jitter',
  'timeouts',
  'grace',
  'graceBackoff',
  'refreshAhead',
  'lock',
]);

const TIMEOUT_FIELDS: readonly string[] = Object.freeze(['soft', 'hard']);
const LOCK_FIELDS: readonly string[] = Object.freeze(['ttl', 'wait']);

const TIMER_EXPECTED = `a number of seconds above 0 and at most ${MAX_TIMER_SECONDS}`;

function timerProblem(field: string, value: unknown): OptionProblem | undefined {
  return value === undefined ||
    (typeof value === 'number' && value > 0 && value <= MAX_TIMER_SECONDS)
    ? undefined
    : { field, value, expected: TIMER_EXPECTED };
}

function nestedProblem(
  field: string,
  value: unknown,
  known: readonly string[],
  example: string,
): OptionProblem | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    return { field, value, expected: `an object such as ${example}` };
  }
  for (const name of Object.keys(value)) {
    if (!known.includes(name)) return { unknown: `${field}.${name}`, known };
  }
  for (const name of known) {
    const problem = timerProblem(`${field}.${name}`, (value as Record<string, unknown>)[name]);
    if (problem) return problem;
  }
  return undefined;
}

/**
 * What is wrong with the loading options of `options` (the fields of
 * {@link LOADING_OPTION_FIELDS} it gives; the caller refuses other unknown fields itself), or
 * `undefined` when they are fine. Timeouts, the grace back-off and the lock are timers, so they
 * are bounded by {@link MAX_TIMER_SECONDS} (beyond it Node.js fires after 1 ms); `grace` adds to
 * a TTL, so it is bounded by {@link MAX_TTL}.
 * @internal
 */
export function loadingOptionsProblem(options: object): OptionProblem | undefined {
  const given = options as Record<string, unknown>;
  const { jitter, timeouts, grace, graceBackoff, refreshAhead, lock } = given;
  if (jitter !== undefined) {
    const expected = jitterProblem(jitter);
    if (expected) return { field: 'jitter', value: jitter, expected };
  }
  if (timeouts !== undefined) {
    const problem = nestedProblem('timeouts', timeouts, TIMEOUT_FIELDS, '{ soft: 1, hard: 5 }');
    if (problem) return problem;
  }
  if (grace !== undefined && !(typeof grace === 'number' && grace >= 0 && grace <= MAX_TTL)) {
    return {
      field: 'grace',
      value: grace,
      expected: `a number of seconds from 0 to ${MAX_TTL} (0 = no grace)`,
    };
  }
  const backoff = timerProblem('graceBackoff', graceBackoff);
  if (backoff) return backoff;
  if (
    refreshAhead !== undefined &&
    !(typeof refreshAhead === 'number' && refreshAhead > 0 && refreshAhead < 1)
  ) {
    return {
      field: 'refreshAhead',
      value: refreshAhead,
      expected:
        'a number above 0 and below 1 (the fraction of the TTL after which a hit refreshes)',
    };
  }
  if (lock !== undefined && typeof lock !== 'boolean') {
    return nestedProblem('lock', lock, LOCK_FIELDS, '{ ttl: 10, wait: 10 } (or true)');
  }
  return undefined;
}

/** Tags one entry may carry at most. @internal */
export const MAX_TAGS = 100;

/**
 * `undefined` for a list of 1 to {@link MAX_TAGS} non-empty strings (the tags of an entry, or
 * those `deleteByTag` invalidates), else what it must be.
 * @internal
 */
export function tagsProblem(tags: unknown): string | undefined {
  return Array.isArray(tags) &&
    tags.length <= MAX_TAGS &&
    tags.every((tag) => typeof tag === 'string' && tag.length > 0)
    ? undefined
    : `an array of at most ${MAX_TAGS} non-empty strings`;
}

/**
 * The one wording of a rejected TTL argument (`set`, `wrap`, the adapters):
 * `Invalid ttl <value as given>: expected ...`. A string is shown quoted — `"60"`, not `60` —
 * so a TTL that arrived as text is not mistaken for a number.
 * @internal
 */
export function invalidTtlMessage(ttl: unknown, expected: string): string {
  const hint = typeof ttl === 'string' ? ' (a string; pass a number of seconds)' : '';
  return `Invalid ttl ${describeValue(ttl)}${hint}: expected ${expected}.`;
}

// The numeric strings configuration may hold: digits, optionally a fraction. No sign, exponent,
// hex, `Infinity`, underscores or whitespace, so a string is read one way only — `Number`
// would read '0x10' as 16, '1e3' as 1000 and ' ' as 0.
const DECIMAL_TTL = /^\d+(\.\d+)?$/;

const CONFIG_TTL_EXPECTED = `${TTL_EXPECTED}, or a string of plain decimal digits such as "60" or "1.5"`;

/**
 * A TTL given as configuration (the `ttl` option, `CACHE_TTL`): a number, or a string of plain
 * decimal digits (`'60'`, `'1.5'`) as the environment gives it. Any other value — `'0x10'`,
 * `'1e3'`, `' 60 '`, `'60s'`, `''`, `'Infinity'` — is returned unchanged, for
 * {@link ttlProblem} to reject.
 * @internal
 */
export function parseTtl(ttl: unknown): unknown {
  return typeof ttl === 'string' && DECIMAL_TTL.test(ttl) ? Number(ttl) : ttl;
}

/** `undefined` for a whole number >= 1, else what the value must be. @internal */
export function positiveIntegerProblem(value: unknown): string | undefined {
  return Number.isInteger(value) && (value as number) >= 1 ? undefined : 'a whole number >= 1';
}

/**
 * `undefined` for a finite number >= 0, else what the value must be (`unit` names it:
 * `'seconds'`, `'ms'`; `zero` says what 0 means, if anything).
 * @internal
 */
export function nonNegativeProblem(
  value: unknown,
  unit = 'seconds',
  zero?: string,
): string | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0
    ? undefined
    : `a number of ${unit} >= 0${zero ? ` (0 = ${zero})` : ''}`;
}

/** `undefined` for a finite number > 0, else what the value must be. @internal */
export function positiveProblem(value: unknown, unit = 'seconds'): string | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value > 0
    ? undefined
    : `a number of ${unit} > 0`;
}

/**
 * {@link describeValue} for configuration: a string has any URL password masked first.
 * @internal
 */
export function describeConfigValue(value: unknown): string {
  return describeValue(typeof value === 'string' ? redactUrl(value) : value);
}

/**
 * `Invalid <owner> option "<option>": <value> (expected <expected>).` as a
 * {@link CacheConfigError}.
 * @internal
 */
export function invalidOption(
  option: string,
  value: unknown,
  expected: string,
  owner = 'CacheModule',
): CacheConfigError {
  return new CacheConfigError(
    `Invalid ${owner} option "${option}": ${describeConfigValue(value)} (expected ${expected}).`,
  );
}

/**
 * The seconds of a TTL given as configuration ({@link parseTtl}), or a {@link CacheConfigError}
 * naming `option` and the value as it was given (`"0x10"`, not `16`).
 * @internal
 */
export function configTtl(given: unknown, option: string): number {
  const ttl = parseTtl(given);
  if (ttlProblem(ttl)) throw invalidOption(option, given, CONFIG_TTL_EXPECTED);
  return ttl as number;
}

// ':' separates the namespace from the key, so without it in a namespace the key `ns:` + key
// names one namespace only: `a` and `a.b` can never reach each other's keys. Glob characters,
// braces (cluster hash tags), whitespace and control characters are out for the same reason.
const NAMESPACE = /^[A-Za-z0-9_.-]{1,128}$/;

/**
 * Throws {@link CacheConfigError} naming `option` unless `namespace` is 1 to 128 letters,
 * digits, `_`, `-` or `.`: the rule that keeps two namespaces on one Redis from overlapping.
 * The module's `namespace` option and `new RedisCacheAdapter({ namespace })` both check it here.
 * @internal
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
    `Invalid ${owner} option "${option}": ${describeConfigValue(namespace)} (expected 1 to 128 letters, ` +
      `digits, '_', '-' or '.'; ':' separates the namespace from the key, so a namespace holding ` +
      `it could overlap another). Use e.g. ${JSON.stringify(hint || 'cache')}.`,
  );
}

/** A Redis URL taken apart (`redis://[user:password@]host[:port][/db]`, or `rediss://`). @internal */
export interface RedisUrlParts {
  readonly tls: boolean;
  readonly host: string;
  readonly port: number;
  readonly username?: string;
  readonly password?: string;
  readonly db?: number;
}

/**
 * The one Redis URL parser: the parts of `url`, or `{ problem }` saying what is wrong with it
 * (password masked), for the caller's own error. A URL without a host, with another scheme or
 * with a path that is not a database number is refused.
 * @internal
 */
export function parseRedisUrl(url: unknown): RedisUrlParts | { readonly problem: string } {
  if (typeof url !== 'string') {
    return { problem: `${describeConfigValue(url)} is not a redis:// or rediss:// URL string.` };
  }
  const shown = JSON.stringify(redactUrl(url));
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return {
      problem:
        `${shown} is not a valid URL ` +
        `(expected redis://[user:password@]host[:port][/db] or rediss://...).`,
    };
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    return { problem: `${shown} must use redis:// or rediss://.` };
  }
  if (!parsed.hostname) return { problem: `${shown} has no host.` };
  const db = parsed.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) {
    return {
      problem: `${shown} has database "${db}"; the path must be a database number such as /0.`,
    };
  }
  return {
    tls: parsed.protocol === 'rediss:',
    host: parsed.hostname,
    port: parsed.port ? Number(parsed.port) : REDIS_DEFAULT_PORT,
    ...(parsed.username ? { username: safeDecode(parsed.username) } : {}),
    ...(parsed.password ? { password: safeDecode(parsed.password) } : {}),
    ...(db ? { db: Number(db) } : {}),
  };
}

/**
 * Where a Redis URL points, for log lines and errors, without its userinfo:
 * `Redis at redis://host:port/db`. `'Redis'` when the URL cannot be parsed.
 * @internal
 */
export function describeRedisUrl(url: string): string {
  try {
    const parsed = new URL(url);
    return `Redis at ${parsed.protocol}//${parsed.host}${parsed.pathname}`;
  } catch {
    return 'Redis';
  }
}

/**
 * A cluster node or a server as `host:port`, never showing a URL's userinfo whatever characters
 * it holds.
 * @internal
 */
export function describeRedisNode(
  node: string | number | { host?: string; port?: number },
): string {
  if (typeof node === 'object') {
    return `${node.host ?? REDIS_DEFAULT_HOST}:${node.port ?? REDIS_DEFAULT_PORT}`;
  }
  const text = String(node);
  try {
    return new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `redis://${text}`).host;
  } catch {
    return redactUrl(text);
  }
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/**
 * The `serializer` option: `'json'` (the default), `'rich'`, or an object with `serialize` and
 * `deserialize` functions (kept as it is, so its methods keep their `this`). Anything else is a
 * {@link CacheConfigError} naming the option and the value.
 * @internal
 */
export function resolveSerializer(serializer: unknown, owner = 'CacheModule'): CacheSerializer {
  if (serializer === undefined || serializer === 'json') return JSON_SERIALIZER;
  if (serializer === 'rich') {
    try {
      loadRichSerializer();
    } catch (error) {
      throw new CacheConfigError(
        `${owner}: serializer 'rich' needs the package devalue, which could not be loaded ` +
          `(${describeError(error)}). It ships ES modules only: under Jest, transform it ` +
          `(transformIgnorePatterns: ['/node_modules/(?!devalue/)']; see README, "Rich values").`,
      );
    }
    return RICH_SERIALIZER;
  }
  if (
    serializer !== null &&
    typeof serializer === 'object' &&
    typeof (serializer as Partial<CacheSerializer>).serialize === 'function' &&
    typeof (serializer as Partial<CacheSerializer>).deserialize === 'function'
  ) {
    return serializer as CacheSerializer;
  }
  throw invalidOption(
    'serializer',
    serializer,
    "'json', 'rich', or an object with serialize(value) and deserialize(text) functions",
    owner,
  );
}
