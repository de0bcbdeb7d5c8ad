import { Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import { bindInstance, registerLateBinder, unbindInstance, type LateBinder } from './cache-binding';
import { CacheMetadataAccessor } from './cache-metadata.accessor';
import { CACHE_LOGGER_CONTEXT } from './cache.constants';
import { CacheService } from './cache.service';
import { wireRouteCacheStatus } from './decorators/route-cache-status';
import type { InstanceWrapper, NestModule } from './nest-internals';

/**
 * Binds every provider and controller instance whose class carries cache decorators to the
 * {@link CacheService} of its own application: the one its module would get by injecting
 * `CacheService` (its imports, then global modules), or the application's only CacheModule.
 * The decorators' wrappers read that binding at call time.
 *
 * When the application is created it also wires `X-Cache` into `@Cacheable` route handlers
 * (see `wireRouteCacheStatus`).
 *
 * Binds in `onModuleInit`, and on demand for a decorated call that arrives earlier. Skips
 * wrappers without an instance and aliases, warns on request-scoped providers (their
 * instances are created per request, after bootstrap: their methods run uncached), and logs
 * instead of failing when one provider cannot be handled.
 */
@Injectable()
export class CacheExplorer implements OnModuleInit, OnApplicationShutdown, LateBinder {
  private readonly logger = new Logger(CACHE_LOGGER_CONTEXT);
  private readonly bound = new Set<object>();
  private unregister: (() => void) | undefined;
  private ownHost: NestModule | undefined | null = null;
  private cacheHosts: Set<NestModule> | undefined;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly cache: CacheService,
    private readonly accessor: CacheMetadataAccessor,
  ) {
    this.unregister = registerLateBinder(this);
    // Now, not in onModuleInit: Nest builds its routes before running the init hooks.
    wireRouteCacheStatus(discovery.getControllers().map((wrapper) => wrapper.metatype));
  }

  onModuleInit(): void {
    this.stopLateBinding();
    for (const wrapper of this.wrappers()) {
      try {
        this.bindWrapper(wrapper);
      } catch (error) {
        this.logger.error(
          `Could not bind ${describe(wrapper)} to the cache; its cached methods will run uncached: ` +
            (error instanceof Error ? error.message : String(error)),
        );
      }
    }
  }

  onApplicationShutdown(): void {
    this.stopLateBinding();
    for (const instance of this.bound) unbindInstance(instance, this.cache);
    this.bound.clear();
  }

  /** @internal Binds `instance` now if it belongs to this application. */
  claim(instance: object): CacheService | undefined {
    try {
      if (!this.accessor.hasCacheOperations(instance)) return undefined;
      const wrapper = this.wrappers().find((w) => !w.isAlias && w.instance === instance);
      if (!wrapper || !this.servedHere(wrapper)) return undefined;
      this.bind(instance);
      return this.cache;
    } catch {
      // A decorated call must never fail on binding: it runs uncached; onModuleInit will log.
      return undefined;
    }
  }

  private bindWrapper(wrapper: InstanceWrapper): void {
    if (wrapper.isAlias) return;
    if (!wrapper.isDependencyTreeStatic()) {
      const prototype = (wrapper.metatype as { prototype?: unknown } | null)?.prototype;
      if (prototype && this.accessor.hasCacheOperations(prototype)) {
        this.logger.warn(
          `${describe(wrapper)} is request-scoped (or depends on a request-scoped provider): its ` +
            `instances are created per request, so its cache decorators cannot be bound and its ` +
            `methods run uncached. Make it a singleton, or cache in a singleton it calls.`,
        );
      }
      return;
    }
    const instances = wrapper.isTransient
      ? wrapper.getStaticTransientInstances().map((entry) => entry?.instance as unknown)
      : [wrapper.instance as unknown];
    for (const instance of instances) {
      if (typeof instance !== 'object' || instance === null) continue;
      if (!this.accessor.hasCacheOperations(instance)) continue;
      if (this.servedHere(wrapper)) this.bind(instance);
    }
  }

  private bind(instance: object): void {
    bindInstance(instance, this.cache);
    this.bound.add(instance);
  }

  private stopLateBinding(): void {
    this.unregister?.();
    this.unregister = undefined;
  }

  private wrappers(): InstanceWrapper[] {
    return [...this.discovery.getProviders(), ...this.discovery.getControllers()];
  }

  /** `true` if `wrapper`'s module resolves `CacheService` to this explorer's CacheModule. */
  private servedHere(wrapper: InstanceWrapper): boolean {
    const own = this.host();
    if (!own || !wrapper.host) return false;
    const resolved = resolveCacheHost(wrapper.host);
    if (resolved) return resolved === own;
    // The module cannot inject CacheService (decorators need no import): use the application's
    // cache if it has only one.
    this.cacheHosts ??= new Set(
      this.discovery
        .getProviders()
        .filter((w) => w.token === CacheService && !w.isAlias && w.host)
        .map((w) => w.host as NestModule),
    );
    return this.cacheHosts.size === 1 && this.cacheHosts.has(own);
  }

  private host(): NestModule | undefined {
    if (this.ownHost === null) {
      this.ownHost = this.discovery
        .getProviders()
        .find((w) => w.token === CacheService && w.instance === this.cache)?.host;
    }
    return this.ownHost;
  }
}

/**
 * The module whose `CacheService` a provider of `module` would receive, found the way Nest's
 * injector looks up an imported provider (own providers, then imports and their re-exports;
 * global modules are part of every module's imports).
 */
function resolveCacheHost(
  module: NestModule,
  visited = new Set<string>(),
  traversing = false,
): NestModule | undefined {
  if (!traversing && module.providers.has(CacheService)) return module;
  let children = [...module.imports].filter(Boolean);
  if (traversing) children = children.filter((child) => module.exports.has(child.metatype));
  for (const child of children) {
    if (visited.has(child.id)) continue;
    visited.add(child.id);
    if (child.providers.has(CacheService) && child.exports.has(CacheService)) return child;
    const found = resolveCacheHost(child, visited, true);
    if (found) return found;
  }
  return undefined;
}

function describe(wrapper: InstanceWrapper): string {
  return typeof wrapper.name === 'string' && wrapper.name ? wrapper.name : String(wrapper.token);
}
