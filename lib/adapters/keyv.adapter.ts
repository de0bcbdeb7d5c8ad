import { Logger } from '@nestjs/common';
import { assertNamespace, invalidTtlMessage, ttlProblem } from '../config/validators';
import type { CacheAdapter, CacheAdapterEntry } from '../interfaces/cache-adapter.interface';
import { CacheArgumentError, CacheConfigError, CacheError } from '../utils/cache.errors';
import { describeError, quote } from '../utils/describe-value';
import { CACHE_LOGGER_CONTEXT, RateLimitedLogger } from '../utils/rate-limited-logger';
import { toStorable } from '../utils/serializable';
import { asError } from '../utils/timeout';

/**
 * What {@link KeyvCacheAdapter} needs of a `cacheable` `Cacheable` instance (matched by shape, so
 * `cacheable` is never imported): its TTLs are in milliseconds, as Keyv's.
 */
export interface CacheableStore {
  /** The `primary` Keyv of the instance (how a `Cacheable` is recognised). */
  readonly primary: unknown;
  /** The `secondary` Keyv, if any. */
  readonly secondary: unknown;
  /** Whether the instance writes its secondary in the background. */
  readonly nonBlocking: boolean;
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown, ttl?: number): Promise<boolean>;
  delete(key: string): Promise<boolean>;
  has(key: string): Promise<boolean>;
  clear(): Promise<void>;
  disconnect?(): Promise<void>;
  on?(event: 'error', listener: (error: unknown) => void): unknown;
}

/**
 * A `Keyv` instance or a Keyv storage adapter, as this module sees them (structurally: the
 * package's own types are never imported, so the declarations do not need `keyv` installed).
 */
export interface KeyvStoreLike {
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown, ttl?: number): Promise<unknown>;
  delete(key: string): Promise<unknown>;
  clear(): Promise<void>;
}

/**
 * A store {@link KeyvCacheAdapter} accepts: a `Keyv` instance, a Keyv storage adapter (such as
 * `new KeyvRedis(url)` from `@keyv/redis`, or a `Map`), or a `cacheable` `Cacheable` instance.
 */
export type KeyvStore = KeyvStoreLike | Map<unknown, unknown> | CacheableStore;

/** Options of {@link KeyvCacheAdapter}. */
export interface KeyvCacheAdapterOptions {
  /**
   * Every key reaches the store as `namespace:key`: 1 to 128 letters, digits, `_`, `-` or `.`
   * (no `:`, so two namespaces on one store never overlap). `clear` and `deleteByPrefix` touch
   * this namespace only. @default 'cache'
   */
  namespace?: string;
  /**
   * Call the store's `disconnect()` in `onApplicationShutdown`. Defaults to `true` when the
   * adapter wrapped a storage adapter in a Keyv of its own, `false` for a `Keyv` or `Cacheable`
   * instance you pass (you own it and may share it). `@nestjs/cache-manager` disconnects every
   * store: pass `true` to keep that behaviour.
   */
  disconnectOnShutdown?: boolean;
}

/** The Keyv surface used here (its own typings are loaded lazily, by type only). */
interface KeyvLike {
  readonly namespace?: string;
  readonly useKeyPrefix?: boolean;
  readonly iterator?: (namespace?: string) => AsyncGenerator<[string, unknown], void>;
  get(key: string): Promise<unknown>;
  set(key: string, value: unknown, ttl?: number): Promise<boolean>;
  delete(key: string): Promise<boolean>;
  clear(): Promise<void>;
  disconnect?(): Promise<void>;
  on(event: 'error', listener: (error: unknown) => void): unknown;
}

type KeyvConstructor = new (options: {
  store: unknown;
  namespace?: string;
  useKeyPrefix?: boolean;
  throwOnErrors?: boolean;
}) => KeyvLike;

function loadKeyv(): KeyvConstructor {
  try {
    // Optional peer dependency, loaded only to wrap a storage adapter.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const loaded = require('keyv') as { Keyv?: KeyvConstructor; default?: KeyvConstructor };
    const Ctor = loaded.Keyv ?? loaded.default;
    if (typeof Ctor !== 'function') throw new Error('the package exports no Keyv class');
    return Ctor;
  } catch (error) {
    throw new CacheConfigError(
      `KeyvCacheAdapter needs the optional package "keyv" to wrap a Keyv storage adapter: ` +
        `npm install keyv, or pass a Keyv instance (${describeError(error)}).`,
    );
  }
}

/** `@nestjs/cache-manager`'s test for a Keyv instance (by shape: Keyv may come in several copies). */
function isKeyv(store: object): store is KeyvLike {
  const s = store as Record<string, unknown>;
  return (
    'opts' in s &&
    'hooks' in s &&
    'stats' in s &&
    typeof s.get === 'function' &&
    typeof s.set === 'function' &&
    typeof s.delete === 'function' &&
    typeof s.clear === 'function' &&
    typeof s.disconnect === 'function'
  );
}

/** `@nestjs/cache-manager`'s test for a `Cacheable` instance. */
function isCacheable(store: object): store is CacheableStore {
  return 'primary' in store && 'secondary' in store && 'nonBlocking' in store;
}

function isStorageAdapter(store: object): boolean {
  if (store instanceof Map) return true;
  const s = store as Record<string, unknown>;
  return ['get', 'set', 'delete', 'clear'].every((m) => typeof s[m] === 'function');
}

/** What the store is, for messages. */
function describeStore(store: object): string {
  const name = store.constructor?.name;
  return name && name !== 'Object' ? name : 'the Keyv store';
}

/**
 * A {@link CacheAdapter} over Keyv (`keyv` is an optional peer, loaded lazily): a `Keyv` instance,
 * a Keyv storage adapter (wrapped in a Keyv of the adapter's own), or a `cacheable` instance.
 * What `@nestjs/cache-manager` accepts as `stores`.
 *
 * - Keys reach Keyv as `namespace:key` (Keyv and its store may add their own prefixes on top).
 * - TTLs arrive in seconds (`0`: never expires) and go to Keyv in milliseconds; `0` is passed as
 *   `0`, which Keyv reads as "no expiry" even when the Keyv has a default `ttl`.
 * - Values are stored in their JSON form (plain JSON data as it is), so a stored `null` reads
 *   back as `null`; a miss is `undefined`.
 * - `deleteByPrefix` and `clear` walk Keyv's `iterator()`, which Keyv offers for `Map` stores and
 *   iterable adapters (`@keyv/redis`: `SCAN` within the Keyv's namespace), and delete only keys
 *   of this namespace that start with the prefix, literally. Without an iterator,
 *   `deleteByPrefix` rejects with {@link CacheError} and `clear` clears the whole Keyv namespace
 *   (what `cache-manager` does).
 * - Keyv's `'error'` events are logged (rate-limited), never thrown.
 * - A Keyv built here around a storage adapter throws on store errors (`throwOnErrors`), so the
 *   cache sees a failed read as a failure, not as a miss; a Keyv you pass keeps its settings.
 *
 * @example
 * ```ts
 * import KeyvRedis from '@keyv/redis';
 * new KeyvCacheAdapter(new KeyvRedis('redis://127.0.0.1:6379'), { namespace: 'shop' });
 * ```
 */
export class KeyvCacheAdapter implements CacheAdapter {
  /** The namespace every key is written under (`namespace:key`). */
  readonly namespace: string;
  /** @internal The Keyv (or `Cacheable`) the adapter reads and writes. */
  readonly keyv: KeyvLike | CacheableStore;
  private readonly prefix: string;
  private readonly storeName: string;
  private readonly disconnectOnShutdown: boolean;
  private readonly log = new RateLimitedLogger(new Logger(CACHE_LOGGER_CONTEXT));

  /**
   * Throws `CacheConfigError` for an invalid `namespace`, for a value that is no Keyv store, and
   * when a storage adapter is given but `keyv` cannot be loaded.
   */
  constructor(store: KeyvStore, options: KeyvCacheAdapterOptions = {}) {
    const namespace = options.namespace ?? 'cache';
    assertNamespace(namespace, 'namespace', 'KeyvCacheAdapter');
    this.namespace = namespace;
    this.prefix = `${namespace}:`;
    if (typeof store !== 'object' || store === null) {
      throw new CacheConfigError(
        `KeyvCacheAdapter takes a Keyv instance, a Keyv storage adapter or a cacheable instance; ` +
          `got ${store === null ? 'null' : typeof store}.`,
      );
    }
    let created = false;
    if (isCacheable(store)) {
      this.keyv = store;
    } else if (isKeyv(store)) {
      this.keyv = store;
    } else if (isStorageAdapter(store)) {
      const Keyv = loadKeyv();
      // Keyv leaves keys as given (useKeyPrefix: false): they already carry this namespace. The
      // store gets the namespace too, so iterable stores scan it alone (@keyv/redis: `ns::*`).
      this.keyv = new Keyv({ store, namespace, useKeyPrefix: false, throwOnErrors: true });
      created = true;
    } else {
      throw new CacheConfigError(
        `KeyvCacheAdapter takes a Keyv instance, a Keyv storage adapter (get, set, delete, clear) ` +
          `or a cacheable instance; ${describeStore(store)} is none of these.`,
      );
    }
    this.storeName = describeStore(created ? store : this.keyv);
    this.disconnectOnShutdown = options.disconnectOnShutdown ?? created;
    // Without a listener some stores throw on 'error'; with one, an outage never crashes.
    this.keyv.on?.('error', (error: unknown) =>
      this.log.warn('keyv-error', `${this.storeName} reported an error: ${describeError(error)}`),
    );
  }

  /** See {@link CacheAdapter.get}. */
  async get<T = unknown>(key: string): Promise<T | undefined> {
    const value = await this.keyv.get(this.prefix + key);
    return value as T | undefined;
  }

  /**
   * Stores the JSON form of `value` for `ttl` seconds. Rejects with `CacheSerializationError`
   * for a value JSON cannot hold, `CacheArgumentError` for an invalid `ttl`, and
   * {@link CacheError} when Keyv reports that it did not write.
   */
  async set(key: string, value: unknown, ttl: number): Promise<void> {
    const problem = ttlProblem(ttl);
    if (problem) throw new CacheArgumentError(invalidTtlMessage(ttl, problem));
    const stored = toStorable(value, key);
    // Above 0, at least 1 ms (a tiny fraction must not round to 0, "no expiry").
    const ms = ttl > 0 ? Math.max(1, Math.round(ttl * 1000)) : 0;
    const written = await this.keyv.set(this.prefix + key, stored, ms);
    if (written === false) {
      throw new CacheError(`${this.storeName} did not write cache key ${quote(key)}.`);
    }
  }

  /**
   * The values of `keys`, in their order (see {@link CacheAdapter.getMany}): Keyv's `getMany`
   * when the store has one (one call), else one `get` per key, concurrently.
   */
  async getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    if (keys.length === 0) return [];
    const bulk = this.keyv as { getMany?: (keys: string[]) => Promise<unknown[]> };
    if (typeof bulk.getMany !== 'function' || this.get !== KeyvCacheAdapter.prototype.get) {
      return Promise.all(keys.map((key) => this.get<T>(key)));
    }
    const values = await bulk.getMany(keys.map((key) => this.prefix + key));
    return keys.map((_, i) => values[i] as T | undefined);
  }

  /**
   * Stores every entry (see {@link CacheAdapter.setMany}): every value and TTL is checked first
   * (nothing is written when one is invalid), then Keyv's `setMany` when the store has one, else
   * one `set` per entry, concurrently. Rejects with {@link CacheError} when Keyv reports that it
   * did not write some of them.
   */
  async setMany(entries: readonly CacheAdapterEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const stored = entries.map(({ key, value, ttl }) => {
      const problem = ttlProblem(ttl);
      if (problem) throw new CacheArgumentError(invalidTtlMessage(ttl, problem));
      // Above 0, at least 1 ms (a tiny fraction must not round to 0, "no expiry").
      const ms = ttl > 0 ? Math.max(1, Math.round(ttl * 1000)) : 0;
      return { key: this.prefix + key, value: toStorable(value, key), ttl: ms };
    });
    const bulk = this.keyv as {
      setMany?: (entries: Array<{ key: string; value: unknown; ttl: number }>) => Promise<unknown>;
    };
    const written =
      typeof bulk.setMany === 'function' && this.set === KeyvCacheAdapter.prototype.set
        ? await bulk.setMany(stored)
        : await Promise.all(stored.map(({ key, value, ttl }) => this.keyv.set(key, value, ttl)));
    const refused = Array.isArray(written)
      ? entries.filter((_, i) => written[i] === false).map(({ key }) => quote(key))
      : [];
    if (refused.length > 0) {
      throw new CacheError(`${this.storeName} did not write cache keys ${refused.join(', ')}.`);
    }
  }

  /** Deletes every key, one `delete` each, concurrently; resolves how many existed. */
  async deleteMany(keys: readonly string[]): Promise<number> {
    const existed = await Promise.all([...new Set(keys)].map((key) => this.delete(key)));
    return existed.filter(Boolean).length;
  }

  /** See {@link CacheAdapter.delete}. */
  delete(key: string): Promise<boolean> {
    return this.keyv.delete(this.prefix + key);
  }

  /** `true` exactly when {@link get} resolves a value (read through `get`). */
  async has(key: string): Promise<boolean> {
    return (await this.get(key)) !== undefined;
  }

  /**
   * Deletes this namespace's entries: through Keyv's iterator when the store has one (only
   * `namespace:` keys), else the whole Keyv namespace (`Keyv.clear()`).
   */
  async clear(): Promise<void> {
    if (this.iterator()) {
      await this.deleteByPrefix('');
      return;
    }
    await this.keyv.clear();
  }

  /**
   * Deletes every entry of this namespace whose key starts with `prefix` (literally: glob
   * characters are plain characters), walking Keyv's iterator. Rejects with {@link CacheError}
   * when the store cannot be iterated.
   */
  async deleteByPrefix(prefix: string): Promise<number> {
    const iterator = this.iterator();
    if (!iterator) {
      throw new CacheError(
        `deleteByPrefix(${quote(prefix)}) needs an iterable Keyv store; ${this.storeName} offers ` +
          `no iterator (Keyv has one for Map stores and iterable adapters such as @keyv/redis). ` +
          `Delete keys one by one, or use an iterable store.`,
      );
    }
    const keyv = this.keyv as KeyvLike;
    const view = this.view(keyv);
    const wanted = view.prefix + prefix;
    const matched: string[] = [];
    try {
      // Collected first: deleting while a store scans may skip or repeat keys.
      for await (const [key] of iterator()) {
        if (typeof key === 'string' && key.startsWith(wanted)) matched.push(view.keyOf(key));
      }
    } catch (error) {
      throw new CacheError(
        `${this.storeName} failed while iterating its keys for deleteByPrefix(${quote(prefix)}): ` +
          describeError(error),
        { cause: error },
      );
    }
    let deleted = 0;
    for (const key of matched) if (await keyv.delete(key)) deleted++;
    return deleted;
  }

  /** Calls the store's `disconnect()` when the adapter owns it (see `disconnectOnShutdown`). */
  async onApplicationShutdown(): Promise<void> {
    if (!this.disconnectOnShutdown) return;
    try {
      await this.keyv.disconnect?.();
    } catch (error) {
      this.log.warn(
        'keyv-disconnect',
        `${this.storeName} failed to disconnect: ${describeError(asError(error))}`,
      );
    }
  }

  private iterator(): KeyvLike['iterator'] {
    if (isCacheable(this.keyv)) return undefined;
    const { iterator } = this.keyv;
    return typeof iterator === 'function' ? iterator : undefined;
  }

  /**
   * How this adapter's keys look in what Keyv's iterator yields. Keyv yields each stored key with
   * its first `:` segment cut off when it prefixes keys (`useKeyPrefix`), which is the Keyv
   * namespace when it added one: then keys come back whole. It adds none when the key already
   * starts with `<its namespace>:` (this namespace equals the Keyv's): keys come back without
   * `namespace:`. Without a Keyv namespace and with `useKeyPrefix`, this namespace is cut off
   * and lost: no key can be told as this adapter's.
   */
  private view(keyv: KeyvLike): { prefix: string; keyOf(yielded: string): string } {
    const whole = { prefix: this.prefix, keyOf: (key: string) => key };
    if (keyv.useKeyPrefix === false) return whole;
    if (keyv.namespace && keyv.namespace !== this.namespace) return whole;
    if (keyv.namespace === this.namespace) {
      return { prefix: '', keyOf: (key: string) => this.prefix + key };
    }
    throw new CacheError(
      `${this.storeName} has no namespace but prefixes keys (useKeyPrefix), so its iterator cuts ` +
        `the namespace off every key and cachekit cannot tell its own: give the Keyv a namespace ` +
        `or useKeyPrefix: false.`,
    );
  }
}
