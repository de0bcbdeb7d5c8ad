import type { CacheAdapter, CacheAdapterEntry } from '../interfaces/cache-adapter.interface';
import { deleteManyOf, getManyOf, setManyOf } from './bulk';
import { UNAVAILABLE, type RemoteTier } from './remote-tier';
import type { SharedEntry } from '../interfaces/entry-reader';
import { L1, L2, type SourcedRead } from './sourced-read';

/**
 * The failover read/write policy (PyFly's `CacheManager`), once: reads go to the remote tier,
 * then to the fallback when it misses, fails or is skipped; writes go to the fallback first (its
 * TTL then never outlasts the remote one), then to the remote tier, which journals what it
 * could not apply; deletes and clears hit both. Never rejects for the remote tier's sake.
 *
 * @internal
 */
export class FailoverTier implements CacheAdapter {
  /** `get` calls answered by the fallback. */
  fallbackHits = 0;
  /** `get` calls that found nothing in either tier. */
  misses = 0;

  constructor(
    readonly remote: RemoteTier,
    readonly fallback: CacheAdapter,
  ) {}

  async get<T = unknown>(key: string): Promise<T | undefined> {
    return (await this.read(key)).value as T | undefined;
  }

  /** {@link get}, telling which tier answered: the remote one (`l2`) or the fallback (`l1`). */
  async read(key: string): Promise<SourcedRead> {
    const remote = await this.remote.get(key);
    if (remote !== undefined) return { value: remote, tier: L2 };
    const value = await this.fallback.get(key);
    if (value === undefined) this.misses++;
    else this.fallbackHits++;
    return { value, tier: L1 };
  }

  /** The values of `keys`, in their order: {@link get} of each, in two bulk calls at most. */
  async getMany<T = unknown>(keys: readonly string[]): Promise<Array<T | undefined>> {
    return (await this.readMany(keys)).map((read) => read.value as T | undefined);
  }

  /**
   * {@link read} of many keys, in their order: one bulk read of the remote tier, then one of the
   * fallback for the keys it did not answer (missed, skipped, or failed — a partial failure of
   * the remote store included). Never rejects for the remote tier's sake.
   */
  async readMany(keys: readonly string[]): Promise<SourcedRead[]> {
    if (keys.length === 0) return [];
    const remote = await this.remote.getMany(keys);
    const answers = new Array<SourcedRead>(keys.length);
    const rest: number[] = [];
    remote.forEach((value, i) => {
      if (value !== undefined) answers[i] = { value, tier: L2 };
      else rest.push(i);
    });
    if (rest.length === 0) return answers;
    const values = await getManyOf(
      this.fallback,
      rest.map((i) => keys[i]),
    );
    rest.forEach((index, j) => {
      const value = values[j];
      if (value === undefined) this.misses++;
      else this.fallbackHits++;
      answers[index] = { value, tier: L1 };
    });
    return answers;
  }

  /**
   * `key`'s entry with the milliseconds it has left: the remote tier's, else the fallback's
   * (when it offers its TTLs); `undefined` on a miss.
   */
  async entry(key: string): Promise<SharedEntry | undefined> {
    const remote = await this.remote.read(key);
    if (remote !== UNAVAILABLE && remote !== undefined) return remote;
    const fallback = this.fallback as CacheAdapter & {
      remainingMs?(key: string): number | undefined;
    };
    const value = await this.fallback.get(key);
    if (value === undefined) return undefined;
    const left = fallback.remainingMs?.(key);
    return { value, ttlMs: left === undefined || left === Infinity ? undefined : left };
  }

  async has(key: string): Promise<boolean> {
    return (await this.remote.has(key)) || this.fallback.has(key);
  }

  async set(key: string, value: unknown, ttl: number): Promise<void> {
    await this.fallback.set(key, value, ttl);
    await this.remote.set(key, value, ttl);
  }

  /** {@link set} of every entry: the fallback first (all checked first), then the remote tier. */
  async setMany(entries: readonly CacheAdapterEntry[]): Promise<void> {
    if (entries.length === 0) return;
    await setManyOf(this.fallback, entries);
    await this.remote.setMany(entries);
  }

  /** Deletes every key from both tiers; resolves the larger of the two counts. */
  async deleteMany(keys: readonly string[]): Promise<number> {
    if (keys.length === 0) return 0;
    const inFallback = await deleteManyOf(this.fallback, keys);
    const inRemote = await this.remote.deleteMany(keys);
    return Math.max(inRemote, inFallback);
  }

  async delete(key: string): Promise<boolean> {
    const inFallback = await this.fallback.delete(key);
    const inRemote = await this.remote.delete(key);
    return inRemote || inFallback;
  }

  async clear(): Promise<void> {
    await this.fallback.clear();
    await this.remote.clear();
  }

  async deleteByPrefix(prefix: string): Promise<number> {
    const inFallback = await this.fallback.deleteByPrefix(prefix);
    const inRemote = await this.remote.deleteByPrefix(prefix);
    return inRemote === undefined ? inFallback : Math.max(inRemote, inFallback);
  }

  ping(): Promise<void> {
    return this.remote.ping();
  }

  async onModuleInit(): Promise<void> {
    this.remote.resume();
    await this.fallback.onModuleInit?.();
    await this.remote.start();
  }

  async onApplicationShutdown(signal?: string): Promise<void> {
    this.remote.stop();
    await Promise.all([
      this.remote.store.onApplicationShutdown?.(signal),
      this.fallback.onApplicationShutdown?.(signal),
    ]);
  }
}
