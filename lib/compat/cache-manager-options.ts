import type {
  InjectionToken,
  ModuleMetadata,
  OptionalFactoryDependency,
  Type,
} from '@nestjs/common';
import { KeyvCacheAdapter, type KeyvStore } from '../adapters/keyv.adapter';
import { StoresCacheAdapter } from '../tiers/stores.adapter';
import { MODULE_DEFAULTS } from '../config/defaults';
import {
  assertNamespace,
  invalidOption,
  parseTtl,
  ttlProblem,
  MAX_TTL,
} from '../config/validators';
import type { CacheAdapter } from '../interfaces/cache-adapter.interface';
import type { CacheModuleOptions } from '../interfaces/cache-module-options.interface';
import { CacheConfigError } from '../utils/cache.errors';
import { describeValue } from '../utils/describe-value';

/**
 * The options of `CacheModule.register` — `@nestjs/cache-manager`'s, as they are: **TTLs in
 * milliseconds**, `stores` of Keyv instances. Everything else of this module (Redis without
 * Keyv, `l1`, `failover`, `grace`, ...) is configured with `forRoot` (seconds).
 *
 * @example
 * ```ts
 * CacheModule.register({ ttl: 60_000, isGlobal: true });
 * CacheModule.register({ stores: [new Keyv({ store: new KeyvRedis('redis://localhost:6379') })] });
 * ```
 */
export interface CacheManagerModuleOptions {
  /** Register the module globally. @default false */
  isGlobal?: boolean;
  /**
   * Milliseconds an entry lives (a number, or a string of plain decimal digits as
   * `ConfigService.get` returns it); `0` never expires.
   * @default 300000 (this module's default of 300 s)
   */
  ttl?: number | `${number}`;
  /**
   * Where entries are stored: a `Keyv` instance, a Keyv storage adapter (`new KeyvRedis(url)`),
   * a `cacheable` instance, or several of them, read in order and all written.
   * @default the in-process memory store
   */
  stores?: KeyvStore | readonly KeyvStore[];
  /** With several `stores`: writes wait for the first store only. @default false */
  nonBlocking?: boolean;
  /** Most entries of the in-process memory store (without `stores`). @default 10000 */
  max?: number;
  /** The namespace every key is written under. @default 'cache' */
  namespace?: string;
  /**
   * Default of `CACHE_MANAGER`'s `wrap`: milliseconds before expiry from which a hit refreshes
   * the entry in the background.
   */
  refreshThreshold?: number;
  /** Accepted for compatibility: a refresh writes every store here anyway. */
  refreshAllStores?: boolean;
  /** The id `cacheManager.cacheId()` answers. @default a random one */
  cacheId?: string;
}

/** `CacheModule.registerAsync`: `@nestjs/cache-manager`'s async options. */
export interface CacheManagerModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  /** Register the module globally. @default false */
  isGlobal?: boolean;
  /** Returns the options (milliseconds), given the providers of `inject`. */
  useFactory?: (...args: never[]) => CacheManagerModuleOptions | Promise<CacheManagerModuleOptions>;
  /** Providers whose instances are passed to `useFactory`. */
  inject?: Array<InjectionToken | OptionalFactoryDependency>;
  /** A class whose `createCacheOptions()` returns the options. */
  useClass?: Type<CacheManagerOptionsFactory>;
  /** An existing provider whose `createCacheOptions()` returns the options. */
  useExisting?: Type<CacheManagerOptionsFactory>;
  /** More providers of the module (what the factory class needs). */
  extraProviders?: ModuleMetadata['providers'];
}

/** What `registerAsync({ useClass })` and `({ useExisting })` call. */
export interface CacheManagerOptionsFactory {
  /** Returns {@link CacheManagerModuleOptions} (TTLs in milliseconds). */
  createCacheOptions(): CacheManagerModuleOptions | Promise<CacheManagerModuleOptions>;
}

const KNOWN = new Set([
  'isGlobal',
  'ttl',
  'stores',
  'nonBlocking',
  'max',
  'namespace',
  'refreshThreshold',
  'refreshAllStores',
  'cacheId',
]);

/** What `register` builds: this module's options, and the cache-manager id. @internal */
export interface ConvertedOptions {
  readonly options: CacheModuleOptions;
  readonly cacheId: string | undefined;
  /** `wrap`'s default `refreshThreshold` for `CACHE_MANAGER`, in ms. */
  readonly refreshThreshold: number | undefined;
}

/**
 * `@nestjs/cache-manager`'s options as this module's (`forRoot`): milliseconds to seconds,
 * `stores` to an adapter, `max` to the memory bound. Throws {@link CacheConfigError} naming
 * the option for a value it cannot take. @internal
 */
export function fromCacheManagerOptions(given: unknown): ConvertedOptions {
  if (given === undefined || given === null) given = {};
  if (typeof given !== 'object' || Array.isArray(given)) {
    throw new CacheConfigError(
      `CacheModule.register options must be an object, got ${describeValue(given)}.`,
    );
  }
  const options = given as CacheManagerModuleOptions & Record<string, unknown>;
  for (const name of Object.keys(options)) {
    if (KNOWN.has(name)) continue;
    const hint =
      name === 'store'
        ? ' cache-manager 5\'s "store" is gone in @nestjs/cache-manager 3 too: pass ' +
          'stores: [new Keyv({ store: new KeyvRedis(url) })], or use CacheModule.forRoot ' +
          "({ provider: 'redis', redis: { url } })."
        : ' CacheModule.register takes the options of @nestjs/cache-manager; use ' +
          'CacheModule.forRoot for the rest (TTLs in seconds there).';
    throw new CacheConfigError(
      `Unknown CacheModule.register option "${name}". Known options: ${[...KNOWN].join(', ')}.${hint}`,
    );
  }
  const module: CacheModuleOptions = {};
  if (options.isGlobal !== undefined) module.isGlobal = options.isGlobal;
  const ttlMs = millisecondsOf('ttl', options.ttl);
  if (ttlMs !== undefined) module.ttl = ttlMs / 1000;
  const namespace = options.namespace ?? MODULE_DEFAULTS.namespace;
  if (options.namespace !== undefined) {
    assertNamespace(options.namespace, 'namespace', 'CacheModule.register');
    module.namespace = options.namespace;
  }
  if (options.max !== undefined) {
    if (!Number.isInteger(options.max) || options.max < 1) {
      throw invalidOption('max', options.max, 'a whole number >= 1', 'CacheModule.register');
    }
    if (options.stores !== undefined) {
      throw new CacheConfigError(
        'Invalid CacheModule.register option "max": it bounds the in-process memory store, ' +
          'which "stores" replaces; bound your Keyv store itself.',
      );
    }
    module.memory = { maxEntries: options.max };
  }
  if (options.nonBlocking !== undefined && typeof options.nonBlocking !== 'boolean') {
    throw invalidOption('nonBlocking', options.nonBlocking, 'a boolean', 'CacheModule.register');
  }
  if (options.stores !== undefined) {
    module.adapter = adapterOf(options.stores, namespace, options.nonBlocking === true);
  }
  // `wrap` of CACHE_MANAGER reads it per call, against that call's TTL (as cache-manager does);
  // the decorators and CacheService keep their own refreshAhead.
  const thresholdMs = millisecondsOf('refreshThreshold', options.refreshThreshold);
  if (options.cacheId !== undefined && typeof options.cacheId !== 'string') {
    throw invalidOption('cacheId', options.cacheId, 'a string', 'CacheModule.register');
  }
  return { options: module, cacheId: options.cacheId, refreshThreshold: thresholdMs };
}

/** Milliseconds of a cache-manager duration option, or `undefined` when it is not given. */
function millisecondsOf(option: string, given: unknown): number | undefined {
  if (given === undefined) return undefined;
  const ms = parseTtl(given);
  if (typeof ms !== 'number' || ttlProblem(ms / 1000) !== undefined) {
    throw invalidOption(
      option,
      given,
      `a number of milliseconds from 0 to ${MAX_TTL * 1000}, or a string of plain decimal digits`,
      'CacheModule.register',
    );
  }
  return ms;
}

/** The adapter over `stores`: one Keyv store, or several read in order. */
function adapterOf(stores: unknown, namespace: string, nonBlocking: boolean): CacheAdapter {
  const list = Array.isArray(stores) ? (stores as unknown[]) : [stores];
  if (list.length === 0) {
    throw new CacheConfigError(
      'Invalid CacheModule.register option "stores": an empty list (leave it out for the memory store).',
    );
  }
  // @nestjs/cache-manager disconnects every store at shutdown: so does register().
  const adapters = list.map(
    (store) => new KeyvCacheAdapter(store as KeyvStore, { namespace, disconnectOnShutdown: true }),
  );
  return adapters.length === 1 ? adapters[0] : new StoresCacheAdapter(adapters, { nonBlocking });
}

/**
 * A `forRoot` TTL that looks like milliseconds (`@nestjs/cache-manager`'s unit): a whole
 * number of thousands of at least 60 000 seconds (16.7 hours). @internal
 */
export function looksLikeMilliseconds(ttl: number): boolean {
  return ttl >= 60_000 && Number.isInteger(ttl / 1000);
}
