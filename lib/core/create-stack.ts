import type { Redis } from 'ioredis';
import { MemoryCacheAdapter } from '../adapters/memory.adapter';
import { RedisCacheAdapter } from '../adapters/redis.adapter';
import { RedisBus } from '../bus/redis-bus';
import type { CacheAdapter } from '../interfaces/cache-adapter.interface';
import type { CacheSerializer } from '../interfaces/cache-serializer.interface';
import { storedWriterOf } from '../interfaces/stored-write';
import { FailoverCacheAdapter } from '../tiers/failover.adapter';
import { LocalTier } from '../tiers/local-tier';
import { failoverShared, plainShared, TwoTier } from '../tiers/two-tier';
import { CacheConfigError } from '../utils/cache.errors';
import { JSON_SERIALIZER } from '../utils/serializer';
import { CacheStack, type CacheStackOptions, type CacheTiers } from './cache-stack';

/** The two-tier part of the resolved options (`l1`, `bus`), when the stack has two tiers. */
export interface TwoTierStackOptions {
  /** `false`, or the L1's bounds and TTL (seconds). */
  readonly l1?:
    false | { readonly maxEntries: number; readonly maxSize: number; readonly ttl: number };
  /** `false`, or the bus tuning (seconds). */
  readonly bus?: false | { readonly heartbeat: number; readonly maxBuffered: number };
  /** The per-call timeout of the cache, in ms (bounds a PUBLISH). */
  readonly callTimeoutMs?: number;
}

/**
 * The stack over the application's `CacheAdapter` provider, holding its tiers directly:
 * a {@link FailoverCacheAdapter} (built for `failover`, given as `adapter`, or provided by
 * overriding the provider) lends its failover policy (remote tier with breaker, timeout,
 * journal and recovery, plus its fallback: one memory copy); an adapter with a sync view is
 * the local tier; any other is a plain remote store whose failures the stack's error policy
 * answers. With `l1`, an in-process tier goes in front of the remote one (the failover fallback
 * itself when there is one) with a bus over the adapter's Redis client. The adapter stays the
 * provider Nest starts and stops, so each piece's lifecycle runs once.
 */
export function createCacheStack(
  adapter: CacheAdapter,
  options: CacheStackOptions & TwoTierStackOptions,
): CacheStack {
  // An adapter of ours given as `adapter` (or a provider override) writes with its own
  // serializer: the stack checks values for that one, and the L1 keeps them in its form.
  const own = serializerOf(adapter);
  if (
    own !== undefined &&
    options.serializer !== undefined &&
    options.serializer !== JSON_SERIALIZER &&
    own !== options.serializer
  ) {
    throw new CacheConfigError(
      'Invalid CacheModule option "serializer": the adapter given writes with a serializer of ' +
        'its own; pass the serializer to the adapter (new RedisCacheAdapter({ ..., serializer })) ' +
        'and leave the module option out.',
    );
  }
  if (
    own === undefined &&
    options.serializer !== undefined &&
    options.serializer !== JSON_SERIALIZER
  ) {
    // Not one of ours (a Keyv store, your own adapter): it stores values its own way, so rich
    // values would reach a store that cannot keep them (a Map written as {}).
    throw new CacheConfigError(
      'Invalid CacheModule option "serializer": it applies to the built-in memory and Redis ' +
        'stores; the adapter given stores values its own way. Leave the option out (values are ' +
        'then checked as JSON), or have your adapter serialize richer values itself.',
    );
  }
  const serializer = own ?? options.serializer;
  const resolved = serializer === options.serializer ? options : { ...options, serializer };
  return new CacheStack(tiersOf(adapter, resolved), resolved);
}

/** The serializer an adapter of this library writes with, if `adapter` is one. */
function serializerOf(adapter: CacheAdapter): CacheSerializer | undefined {
  const inner =
    Object.getPrototypeOf(adapter) === FailoverCacheAdapter.prototype
      ? (adapter as FailoverCacheAdapter).primary
      : adapter;
  return inner instanceof RedisCacheAdapter || inner instanceof MemoryCacheAdapter
    ? inner.serializer
    : undefined;
}

function tiersOf(
  adapter: CacheAdapter,
  options: CacheStackOptions & TwoTierStackOptions,
): CacheTiers {
  // The exact class only: a subclass may override a method, so it is called as a plain store.
  const failover =
    Object.getPrototypeOf(adapter) === FailoverCacheAdapter.prototype
      ? (adapter as FailoverCacheAdapter)
      : undefined;
  if (options.l1) return twoTiers(adapter, failover, options.l1, options);
  if (failover) return { failover: failover.tier };
  const local = LocalTier.of(adapter);
  return local ? { local } : { remote: adapter, write: storedWriterOf(adapter) };
}

function twoTiers(
  adapter: CacheAdapter,
  failover: FailoverCacheAdapter | undefined,
  l1: { readonly maxEntries: number; readonly maxSize: number; readonly ttl: number },
  options: CacheStackOptions & TwoTierStackOptions,
): CacheTiers {
  const local = failover
    ? LocalTier.of(failover.tier.fallback)
    : ownL1(adapter, l1, options.serializer);
  if (!local) {
    // One memory copy: with failover, the fallback is the L1.
    throw new CacheConfigError(
      'Invalid CacheModule option "l1": with a FailoverCacheAdapter, the L1 is its fallback, ' +
        'which must be an in-process store with a sync view (a MemoryCacheAdapter).',
    );
  }
  const shared = failover
    ? failoverShared(failover.tier.remote)
    : plainShared(adapter, storedWriterOf(adapter));
  const bus = options.bus ? busOf(failover ? failover.primary : adapter, options) : undefined;
  const twoTier = new TwoTier(local, shared, bus, { l1Ttl: l1.ttl }, failover?.tier.remote);
  return { twoTier, ownL1: !failover };
}

function ownL1(
  adapter: CacheAdapter,
  l1: { readonly maxEntries: number; readonly maxSize: number },
  serializer: CacheSerializer | undefined,
): LocalTier | undefined {
  if (LocalTier.of(adapter)) {
    throw new CacheConfigError(
      `Invalid CacheModule option "l1": the adapter is already in-process; l1 goes in front ` +
        `of a remote store (provider: 'redis').`,
    );
  }
  return LocalTier.of(
    new MemoryCacheAdapter({ maxEntries: l1.maxEntries, maxSize: l1.maxSize, serializer }),
  );
}

function busOf(remote: CacheAdapter, options: CacheStackOptions & TwoTierStackOptions): RedisBus {
  const redis = remote instanceof RedisCacheAdapter ? remote : undefined;
  const bus = options.bus;
  if (!redis || !bus) {
    throw new CacheConfigError(
      'Invalid CacheModule option "bus": the bus runs over Redis pub/sub and needs a ' +
        'RedisCacheAdapter as the remote tier; set bus: false for one instance.',
    );
  }
  return new RedisBus(redis.client, {
    // The adapter's own, with the database and key prefix (pub/sub ignores both): instances
    // share a channel exactly when they share keys.
    namespace: redis.namespace,
    scope: channelScope(redis),
    heartbeatMs: Math.round(bus.heartbeat * 1000),
    maxBuffered: bus.maxBuffered,
    timeoutMs: options.callTimeoutMs ?? 1000,
  });
}

/** `db<n>` for a database other than 0, and the client's key prefix (JSON-quoted), if any. */
function channelScope(redis: RedisCacheAdapter): string {
  if (redis.client.isCluster) return '';
  const { db, keyPrefix } = (redis.client as Redis).options;
  const parts: string[] = [];
  if (typeof db === 'number' && db !== 0) parts.push(`db${db}`);
  if (keyPrefix) parts.push(`prefix${JSON.stringify(keyPrefix)}`);
  return parts.join(':');
}
