import { Inject, Logger, Module, Optional, type OnApplicationShutdown } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import type { DynamicModule, Provider } from '@nestjs/common';
import { adapterStarted, createCacheAdapter } from './core/create-adapter';
import { createCacheStack } from './core/create-stack';
import { CacheStack } from './core/cache-stack';
import { NamedStacks } from './core/named-stacks';
import {
  CACHE_LOGGER_CONTEXT,
  CACHE_MANAGER,
  CACHE_MANAGER_SETTINGS,
  CACHE_MODULE_OPTIONS,
  CACHE_NAMED_STACKS,
  CACHE_USER_OPTIONS,
  getCacheToken,
} from './config/cache.constants';
import { resolveNamedCaches } from './config/named-caches';
import { registerNamedStacks } from './runtime/cache-binding';
import { requestedCacheNames } from './decorators/inject-cache.decorator';
import { Cache, createCacheManager } from './compat/cache-manager.facade';
import {
  fromCacheManagerOptions,
  looksLikeMilliseconds,
  type CacheManagerModuleAsyncOptions,
  type CacheManagerModuleOptions,
  type CacheManagerOptionsFactory,
} from './compat/cache-manager-options';
import { KeyvCacheAdapter } from './adapters/keyv.adapter';
import { StoresCacheAdapter } from './tiers/stores.adapter';
import {
  callTimeoutOf,
  resolveCacheOptions,
  type ResolvedCacheOptions,
} from './config/cache-options.resolver';
import { CacheService } from './cache.service';
import { CacheExplorer } from './discovery/cache.explorer';
import { CacheMetadataAccessor } from './discovery/cache-metadata.accessor';
import { CacheInvalidator } from './invalidation/cache-invalidator.service';
import { CacheDiagnostics } from './diagnostics/cache-diagnostics';
import { CacheHealthIndicator } from './diagnostics/cache-health.indicator';
import { CacheAdapter } from './interfaces/cache-adapter.interface';
import type {
  CacheModuleAsyncOptions,
  CacheModuleOptions,
  CacheOptionsFactory,
} from './interfaces/cache-module-options.interface';
import { CacheConfigError } from './utils/cache.errors';

/**
 * The cache module. Import it once (usually in `AppModule`) with {@link CacheModule.forRoot}
 * or {@link CacheModule.forRootAsync}, then inject {@link CacheService}.
 *
 * @example
 * ```ts
 * @Module({ imports: [CacheModule.forRoot({ isGlobal: true, ttl: 60 })] })
 * export class AppModule {}
 * ```
 */
@Module({})
export class CacheModule implements OnApplicationShutdown {
  /** @internal Nest builds the module with its named caches, whose connections it closes. */
  constructor(@Optional() @Inject(CACHE_NAMED_STACKS) private readonly named?: NamedStacks) {}

  /**
   * @internal Closes the Redis connections the caches share, after every provider of the module
   * (each cache's stack and bus included) has stopped: Nest calls a module's own hook last.
   */
  async onApplicationShutdown(): Promise<void> {
    await this.named?.shared?.close();
  }

  /**
   * Configures the module with static options. Options left out fall back to the
   * environment (`CACHE_*` variables), then to the defaults. Invalid options fail startup
   * with a `CacheConfigError` naming the option.
   */
  static forRoot(options: CacheModuleOptions = {}): DynamicModule {
    return {
      module: CacheModule,
      global: options.isGlobal ?? false,
      imports: [DiscoveryModule],
      providers: [
        { provide: CACHE_USER_OPTIONS, useValue: options },
        { provide: CACHE_MANAGER_SETTINGS, useValue: SECONDS },
        ...CacheModule.coreProviders(),
        ...CacheModule.namedProviders(Object.keys(options.caches ?? {})),
      ],
      exports: [
        ...CacheModule.exported,
        ...CacheModule.namedTokens(Object.keys(options.caches ?? {})),
      ],
    };
  }

  /**
   * `@nestjs/cache-manager`'s `register`, taking its options as they are — **`ttl` in
   * milliseconds**, `stores` of Keyv instances (several: read in order, all written), `max`,
   * `isGlobal` — and building the same module as {@link forRoot}: a migration changes the
   * import line only. `CACHE_MANAGER` injects a cache-manager-compatible object over the same
   * entries as `CacheService` and the decorators.
   *
   * @example
   * ```ts
   * CacheModule.register({ ttl: 5000, isGlobal: true });
   * CacheModule.register({ stores: [new Keyv({ store: new KeyvRedis('redis://localhost') })] });
   * ```
   */
  static register(options: CacheManagerModuleOptions = {}): DynamicModule {
    return {
      module: CacheModule,
      global: options?.isGlobal ?? false,
      imports: [DiscoveryModule],
      providers: [
        { provide: CACHE_MANAGER_SETTINGS, useFactory: () => fromCacheManagerOptions(options) },
        {
          provide: CACHE_USER_OPTIONS,
          useFactory: (converted: Converted) => converted.options,
          inject: [CACHE_MANAGER_SETTINGS],
        },
        ...CacheModule.coreProviders(),
      ],
      exports: CacheModule.exported,
    };
  }

  /**
   * `@nestjs/cache-manager`'s `registerAsync`: `useFactory` + `inject`, `useClass` or
   * `useExisting` producing {@link register}'s options (milliseconds), with `imports` and
   * `extraProviders`.
   */
  static registerAsync(options: CacheManagerModuleAsyncOptions): DynamicModule {
    const settings = CacheModule.managerSettingsProvider(options);
    return {
      module: CacheModule,
      global: options.isGlobal ?? false,
      imports: [...(options.imports ?? []), DiscoveryModule],
      providers: [
        ...settings,
        {
          provide: CACHE_USER_OPTIONS,
          useFactory: (converted: Converted) => converted.options,
          inject: [CACHE_MANAGER_SETTINGS],
        },
        ...(options.extraProviders ?? []),
        ...CacheModule.coreProviders(),
      ],
      exports: CacheModule.exported,
    };
  }

  private static managerSettingsProvider(options: CacheManagerModuleAsyncOptions): Provider[] {
    if (options.useFactory) {
      const factory = options.useFactory as (...args: unknown[]) => unknown;
      return [
        {
          provide: CACHE_MANAGER_SETTINGS,
          useFactory: async (...args: unknown[]) => fromCacheManagerOptions(await factory(...args)),
          inject: options.inject ?? [],
        },
      ];
    }
    const factoryClass = options.useClass ?? options.useExisting;
    if (!factoryClass) {
      throw new CacheConfigError(
        'CacheModule.registerAsync needs one of useFactory, useClass or useExisting.',
      );
    }
    const providers: Provider[] = [
      {
        provide: CACHE_MANAGER_SETTINGS,
        useFactory: async (factory: CacheManagerOptionsFactory) =>
          fromCacheManagerOptions(await factory.createCacheOptions()),
        inject: [factoryClass],
      },
    ];
    if (options.useClass) providers.push({ provide: options.useClass, useClass: options.useClass });
    return providers;
  }

  /**
   * Configures the module with options produced at bootstrap by a factory (`useFactory` +
   * `inject`), a class (`useClass`) or an existing provider (`useExisting`), typically from
   * `@nestjs/config`'s `ConfigService`.
   */
  static forRootAsync(options: CacheModuleAsyncOptions): DynamicModule {
    return {
      module: CacheModule,
      global: options.isGlobal ?? false,
      imports: [...(options.imports ?? []), DiscoveryModule],
      providers: [
        ...CacheModule.asyncOptionsProviders(options),
        { provide: CACHE_MANAGER_SETTINGS, useValue: SECONDS },
        ...(options.extraProviders ?? []),
        ...CacheModule.coreProviders(),
        ...CacheModule.namedProviders(options.cacheNames ?? []),
      ],
      exports: [...CacheModule.exported, ...CacheModule.namedTokens(options.cacheNames ?? [])],
    };
  }

  /**
   * The names with a `CacheService` provider (`@InjectCache(name)`): `'default'`, the names
   * given, and every name `@InjectCache` was given so far (a name the resolved options lack is
   * provided as `undefined`, and the explorer fails startup naming the class that injects it).
   */
  private static cacheNames(given: readonly string[]): string[] {
    return [...new Set(['default', ...given, ...requestedCacheNames()])];
  }

  private static namedTokens(given: readonly string[]): string[] {
    return CacheModule.cacheNames(given).map(getCacheToken);
  }

  private static namedProviders(given: readonly string[]): Provider[] {
    return CacheModule.cacheNames(given).map((name): Provider => {
      if (name === 'default') return { provide: getCacheToken(name), useExisting: CacheService };
      return {
        provide: getCacheToken(name),
        useFactory: (named: NamedStacks) => {
          const cache = named.get(name);
          return cache ? new CacheService(cache.stack) : undefined;
        },
        inject: [CACHE_NAMED_STACKS],
      };
    });
  }

  private static readonly exported = [
    CacheService,
    CacheStack,
    CacheAdapter,
    CACHE_MODULE_OPTIONS,
    CACHE_MANAGER,
    Cache,
    CacheInvalidator,
    CacheHealthIndicator,
  ];

  private static coreProviders(): Provider[] {
    return [
      {
        provide: CACHE_MODULE_OPTIONS,
        useFactory: (user: CacheModuleOptions, settings: Converted | typeof SECONDS) => {
          const resolved = resolveCacheOptions(user);
          if (settings === SECONDS && looksLikeMilliseconds(resolved.ttl)) {
            new Logger(CACHE_LOGGER_CONTEXT).warn(
              `CacheModule option "ttl" is ${resolved.ttl} seconds ` +
                `(${(resolved.ttl / 3600).toFixed(1)} hours): forRoot takes seconds, ` +
                `@nestjs/cache-manager took milliseconds. For ${resolved.ttl / 1000} s write ` +
                `ttl: ${resolved.ttl / 1000}, or use CacheModule.register, which takes milliseconds.`,
            );
          }
          return resolved;
        },
        inject: [CACHE_USER_OPTIONS, CACHE_MANAGER_SETTINGS],
      },
      {
        // The named caches (`caches`), with the Redis connections shared by equal settings.
        provide: CACHE_NAMED_STACKS,
        useFactory: (user: CacheModuleOptions, options: ResolvedCacheOptions) =>
          NamedStacks.create(options, resolveNamedCaches(user, options), (named, name) => ({
            ...named,
            name,
            callTimeoutMs: callTimeoutOf(named),
            routeTtlInMs: false,
          })),
        inject: [CACHE_USER_OPTIONS, CACHE_MODULE_OPTIONS],
      },
      {
        provide: CacheAdapter,
        useFactory: (options: ResolvedCacheOptions, named: NamedStacks) =>
          createCacheAdapter(options, named.shared),
        inject: [CACHE_MODULE_OPTIONS, CACHE_NAMED_STACKS],
      },
      {
        // The one core every entry point goes through, over whatever adapter the application
        // ends up with (a user may override the CacheAdapter provider).
        provide: CacheStack,
        useFactory: (
          adapter: CacheAdapter,
          options: ResolvedCacheOptions,
          settings: Converted | typeof SECONDS,
          named: NamedStacks,
        ) => {
          const stack = createCacheStack(adapter, {
            ...options,
            callTimeoutMs: callTimeoutOf(options),
            // register(): @nestjs/cache-manager's units, @CacheTTL in milliseconds included.
            routeTtlInMs: 'options' in settings,
            // Nest starts a module's providers together: the bus opens once the connections
            // have (a strict cache that cannot reach Redis fails startup, leaving none open).
            startAfter: () => Promise.all([adapterStarted(adapter), named.connected()]),
          });
          // What decorated methods and cached functions of this application reach by name.
          registerNamedStacks(
            stack,
            new Map(named.all().map((cache) => [cache.name, cache.stack] as const)),
          );
          return stack;
        },
        inject: [CacheAdapter, CACHE_MODULE_OPTIONS, CACHE_MANAGER_SETTINGS, CACHE_NAMED_STACKS],
      },
      {
        // cache-manager's API over the same cache (what @nestjs/cache-manager's token injected).
        provide: CACHE_MANAGER,
        useFactory: (
          stack: CacheStack,
          adapter: CacheAdapter,
          settings: Converted | typeof SECONDS,
        ) =>
          createCacheManager(stack, {
            stores: keyvStoresOf(adapter),
            ...('options' in settings && {
              cacheId: settings.cacheId,
              refreshThreshold: settings.refreshThreshold,
            }),
          }),
        inject: [CacheStack, CacheAdapter, CACHE_MANAGER_SETTINGS],
      },
      // @nestjs/cache-manager's class token for the same object.
      { provide: Cache, useExisting: CACHE_MANAGER },
      CacheService,
      CacheInvalidator,
      CacheMetadataAccessor,
      CacheExplorer,
      CacheDiagnostics,
      CacheHealthIndicator,
    ];
  }

  private static asyncOptionsProviders(options: CacheModuleAsyncOptions): Provider[] {
    if (options.useFactory) {
      return [
        {
          provide: CACHE_USER_OPTIONS,
          useFactory: options.useFactory as (...args: unknown[]) => unknown,
          inject: options.inject ?? [],
        },
      ];
    }
    const factoryClass = options.useClass ?? options.useExisting;
    if (!factoryClass) {
      throw new CacheConfigError(
        'CacheModule.forRootAsync needs one of useFactory, useClass or useExisting.',
      );
    }
    const providers: Provider[] = [
      {
        provide: CACHE_USER_OPTIONS,
        useFactory: (factory: CacheOptionsFactory) => factory.createCacheOptions(),
        inject: [factoryClass],
      },
    ];
    if (options.useClass) providers.push({ provide: options.useClass, useClass: options.useClass });
    return providers;
  }
}

/** What `register` converted, for `CACHE_MANAGER` (`forRoot`: {@link SECONDS}). */
type Converted = ReturnType<typeof fromCacheManagerOptions>;

/** The settings of a module configured by `forRoot` / `forRootAsync` (TTLs in seconds). */
const SECONDS = Object.freeze({ seconds: true as const });

/** The Keyv instances behind the adapter (`cacheManager.stores`), if it was built from some. */
function keyvStoresOf(adapter: CacheAdapter): unknown[] {
  if (adapter instanceof KeyvCacheAdapter) return [adapter.keyv];
  if (adapter instanceof StoresCacheAdapter) {
    return adapter.stores.flatMap((store) =>
      store instanceof KeyvCacheAdapter ? [store.keyv] : [],
    );
  }
  return [];
}
