import { Module } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import type { DynamicModule, Provider } from '@nestjs/common';
import { createCacheAdapter } from './core/create-adapter';
import { createCacheStack } from './core/create-stack';
import { CacheStack } from './core/cache-stack';
import { CACHE_MODULE_OPTIONS, CACHE_USER_OPTIONS } from './config/cache.constants';
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
        ...CacheModule.coreProviders(),
      ],
      exports: CacheModule.exported,
    };
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
    CacheInvalidator,
    CacheHealthIndicator,
  ];

  private static coreProviders(): Provider[] {
    return [
      {
        provide: CACHE_MODULE_OPTIONS,
        useFactory: (user: CacheModuleOptions) => resolveCacheOptions(user),
        inject: [CACHE_USER_OPTIONS],
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
        useFactory: (adapter: CacheAdapter, options: ResolvedCacheOptions) =>
          createCacheStack(adapter, { ...options, callTimeoutMs: callTimeoutOf(options) }),
        inject: [CacheAdapter, CACHE_MODULE_OPTIONS],
      },
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
