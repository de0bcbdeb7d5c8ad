import { Logger, Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import type { DynamicModule, Provider } from '@nestjs/common';
import { createCacheAdapter } from './core/create-adapter';
import { createCacheStack } from './core/create-stack';
import { CacheStack } from './core/cache-stack';
import {
  CACHE_LOGGER_CONTEXT,
  CACHE_MANAGER,
  CACHE_MANAGER_SETTINGS,
  CACHE_MODULE_OPTIONS,
  CACHE_USER_OPTIONS,
} from './config/cache.constants';
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
export class CacheModule {
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
      ],
      exports: CacheModule.exported,
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
      ],
      exports: CacheModule.exported,
    };
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
        provide: CacheAdapter,
        useFactory: (options: ResolvedCacheOptions) => createCacheAdapter(options),
        inject: [CACHE_MODULE_OPTIONS],
      },
      {
        // The one core every entry point goes through, over whatever adapter the application
        // ends up with (a user may override the CacheAdapter provider).
        provide: CacheStack,
        useFactory: (
          adapter: CacheAdapter,
          options: ResolvedCacheOptions,
          settings: Converted | typeof SECONDS,
        ) =>
          createCacheStack(adapter, {
            ...options,
            callTimeoutMs: callTimeoutOf(options),
            // register(): @nestjs/cache-manager's units, @CacheTTL in milliseconds included.
            routeTtlInMs: 'options' in settings,
          }),
        inject: [CacheAdapter, CACHE_MODULE_OPTIONS, CACHE_MANAGER_SETTINGS],
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
