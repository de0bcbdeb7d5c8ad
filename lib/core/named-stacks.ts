import type { ResolvedCacheOptions } from '../config/cache-options.resolver';
import { asNamedError } from '../config/named-caches';
import type { CacheAdapter } from '../interfaces/cache-adapter.interface';
import { createCacheAdapter, SharedRedisClients } from './create-adapter';
import type { CacheStack, CacheStackOptions } from './cache-stack';
import { createCacheStack, type TwoTierStackOptions } from './create-stack';

/** One named cache: its resolved options, its adapter and its stack. @internal */
export interface NamedCache {
  readonly name: string;
  readonly options: ResolvedCacheOptions;
  readonly adapter: CacheAdapter;
  readonly stack: CacheStack;
}

/**
 * The named caches of one application (`caches`), and the Redis connections they share with
 * the module's own cache. Nest starts and stops them through this object (a provider): each
 * adapter, then its stack, at init; each stack, then its adapter, at shutdown. The shared
 * connections are closed after that, by the module, once the default cache has stopped too.
 * @internal
 */
export class NamedStacks {
  private readonly caches = new Map<string, NamedCache>();
  private started = false;

  private constructor(
    /** The connections shared by the caches; `undefined` without named caches. */
    readonly shared: SharedRedisClients | undefined,
  ) {}

  /** No named caches (the default cache alone, built as before). */
  static none(): NamedStacks {
    return new NamedStacks(undefined);
  }

  /**
   * Builds the adapter and stack of each named cache over connections shared by equal Redis
   * settings (the root's included: `root` is registered first, so the default cache's adapter
   * finds its connection). The connections open at init ({@link onModuleInit}), not here: an
   * application that fails to build runs no hook that could close them.
   */
  static create(
    root: ResolvedCacheOptions,
    named: ReadonlyMap<string, ResolvedCacheOptions>,
    stackOptions: (
      options: ResolvedCacheOptions,
      name: string,
    ) => CacheStackOptions & TwoTierStackOptions,
  ): NamedStacks {
    if (named.size === 0) return NamedStacks.none();
    const shared = new SharedRedisClients();
    const stacks = new NamedStacks(shared);
    shared.register(root, 'default');
    for (const [name, options] of named) {
      shared.register(options, name);
      const adapter = createCacheAdapter(options, shared);
      let stack: CacheStack;
      try {
        stack = createCacheStack(adapter, stackOptions(options, name));
      } catch (error) {
        throw asNamedError(name, error);
      }
      stacks.caches.set(name, { name, options, adapter, stack });
    }
    return stacks;
  }

  /** The names of the named caches, in configuration order. */
  names(): string[] {
    return [...this.caches.keys()];
  }

  /** The named cache `name`, if configured. */
  get(name: string): NamedCache | undefined {
    return this.caches.get(name);
  }

  /** Every named cache, in configuration order. */
  all(): NamedCache[] {
    return [...this.caches.values()];
  }

  /**
   * Opens the shared connections (failing with `CacheConnectionError` for a `strict` cache that
   * cannot reach its Redis), then starts each cache: its adapter (connection checks), then its
   * stack (bus, tag clock).
   */
  async onModuleInit(): Promise<void> {
    if (this.started) return;
    await this.connected();
    this.started = true;
    for (const { adapter, stack } of this.caches.values()) {
      await adapter.onModuleInit?.();
      await stack.onModuleInit();
    }
  }

  /**
   * Opens the shared connections, once however often it is called (the default cache's stack
   * waits on it before it opens its bus); rejects when a `strict` cache cannot reach its Redis.
   */
  connected(): Promise<void> {
    return (this.connecting ??= this.shared?.connect() ?? Promise.resolve());
  }

  private connecting: Promise<void> | undefined;

  /** Stops each cache: its stack (bus flush), then its adapter. */
  async onApplicationShutdown(signal?: string): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.connecting = undefined;
    await Promise.all(
      [...this.caches.values()].map(async ({ adapter, stack }) => {
        await stack.onApplicationShutdown(signal);
        await adapter.onApplicationShutdown?.(signal);
      }),
    );
  }
}
