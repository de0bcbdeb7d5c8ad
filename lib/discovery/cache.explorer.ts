import { Inject, Injectable, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import { DiscoveryService, ModulesContainer } from '@nestjs/core';
import {
  bindInstance,
  registerLateBinder,
  unbindInstance,
  type LateBinder,
} from '../runtime/cache-binding';
import { CacheMetadataAccessor } from './cache-metadata.accessor';
import { CacheService } from '../cache.service';
import { CacheStack } from '../core/cache-stack';
import { wireRouteCacheStatus } from './route-cache-status';
import { bindDefaultKeyOwners } from '../keys/key-resolver';
import { rootModuleOf, type InstanceWrapper, type NestModule } from './nest-internals';
import { describeError } from '../utils/describe-value';
import { CacheLogger } from '../utils/rate-limited-logger';
import { CACHE_CLASS_METADATA, CACHE_NAMED_STACKS } from '../config/cache.constants';
import type { NamedStacks } from '../core/named-stacks';
import { cachedMethodOf } from '../decorators/cached-method';
import { injectedCacheNames } from '../decorators/inject-cache.decorator';
import { CacheConfigError } from '../utils/cache.errors';

/**
 * Binds every provider and controller instance whose class carries cache decorators to the
 * {@link CacheService} of its own application: the one its module would get by injecting
 * `CacheService` (its imports, then global modules), or the application's only CacheModule.
 * The decorators' wrappers read that binding at call time.
 *
 * When the application is created it also wires `X-Cache` into `@Cacheable` route handlers
 * (see `wireRouteCacheStatus`).
 *
 * It also names the owner of each instance's default keys (`@Cacheable()` without a key): the
 * class name where it is unique among the application's cached providers and controllers,
 * else the provider's place in the module tree (see {@link defaultKeyOwners}).
 *
 * Binds in `onModuleInit`, and on demand for a decorated call that arrives earlier. Skips
 * wrappers without an instance and aliases, warns on request-scoped providers (their
 * instances are created per request, after bootstrap: their methods run uncached), and logs
 * instead of failing when one provider cannot be handled.
 */
@Injectable()
export class CacheExplorer implements OnModuleInit, OnApplicationShutdown, LateBinder {
  private readonly logger = new CacheLogger();
  private readonly bound = new Set<object>();
  private unregister: (() => void) | undefined;
  private ownHost: NestModule | undefined | null = null;
  private cacheHosts: Set<NestModule> | undefined;
  private owners: Map<InstanceWrapper, Map<object, string>> | undefined;

  constructor(
    private readonly discovery: DiscoveryService,
    private readonly cache: CacheStack,
    private readonly accessor: CacheMetadataAccessor,
    private readonly modules: ModulesContainer,
    @Inject(CACHE_NAMED_STACKS) private readonly named: NamedStacks,
  ) {
    this.unregister = registerLateBinder(this);
    // Now, not in onModuleInit: Nest builds its routes before running the init hooks.
    wireRouteCacheStatus(discovery.getControllers().map((wrapper) => wrapper.metatype));
  }

  onModuleInit(): void {
    this.assertKnownCaches();
    this.stopLateBinding();
    // Every instance exists by now: name the owners from the complete picture.
    this.owners = undefined;
    for (const wrapper of this.wrappers()) {
      try {
        this.bindWrapper(wrapper);
      } catch (error) {
        this.logger.error(
          `Could not bind ${describe(wrapper)} to the cache; its cached methods will run uncached: ` +
            describeError(error),
        );
      }
    }
  }

  onApplicationShutdown(): void {
    this.stopLateBinding();
    for (const instance of this.bound) unbindInstance(instance, this.cache);
    this.bound.clear();
  }

  /**
   * Fails startup with {@link CacheConfigError} when a provider or controller served by this
   * module injects (`@InjectCache`) or uses (`cache:` on a decorator) a cache it does not
   * configure, naming the class (or method) and the configured caches.
   */
  private assertKnownCaches(): void {
    const known = new Set(['default', ...this.named.names()]);
    const unknown = (name: string, where: string): CacheConfigError =>
      new CacheConfigError(
        `Unknown cache '${name}' (${where}); configured caches: ${[...known].join(', ')}. ` +
          `Add it to CacheModule's caches option, or fix the name.`,
      );
    for (const wrapper of this.wrappers()) {
      if (wrapper.isAlias) continue;
      const type = classOf(wrapper);
      if (typeof type !== 'function') continue;
      const injected = injectedCacheNames(type).filter((name) => !known.has(name));
      const declaring = this.accessor.declaringClasses(type);
      if (injected.length === 0 && declaring.length === 0) continue;
      if (!this.servedHere(wrapper)) continue;
      if (injected.length > 0) throw unknown(injected[0], `injected into ${describe(wrapper)}`);
      for (const owner of declaring) {
        const names = (Reflect.getOwnMetadata(CACHE_CLASS_METADATA, owner) ?? []) as Array<
          string | symbol
        >;
        const prototype = (owner as { prototype: Record<string | symbol, unknown> }).prototype;
        for (const methodName of names) {
          const method = cachedMethodOf(prototype[methodName]);
          for (const op of method?.operations ?? []) {
            if (op.cache !== undefined && !known.has(op.cache)) {
              throw unknown(
                op.cache,
                `used by ${(owner as { name?: string }).name ?? 'anonymous'}.${String(methodName)}`,
              );
            }
          }
        }
      }
    }
  }

  /** @internal Binds `instance` now if it belongs to this application. */
  claim(instance: object): CacheStack | undefined {
    try {
      if (!this.accessor.hasCacheOperations(instance)) return undefined;
      const wrapper = this.wrappers().find((w) => !w.isAlias && w.instance === instance);
      if (!wrapper || !this.servedHere(wrapper)) return undefined;
      this.bind(instance, wrapper);
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
      if (this.servedHere(wrapper)) this.bind(instance, wrapper);
    }
  }

  private bind(instance: object, wrapper: InstanceWrapper): void {
    this.owners ??= defaultKeyOwners(this.wrappers(), this.modules.values(), this.accessor);
    const owners = this.owners.get(wrapper);
    if (owners) bindDefaultKeyOwners(instance, owners);
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
        .find((w) => w.token === CacheStack && w.instance === this.cache)?.host;
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
  return typeof wrapper.name === 'string' && wrapper.name ? wrapper.name : tokenName(wrapper.token);
}

/**
 * Names the owner of the default keys of every cached provider and controller, per class that
 * declares cached methods (a subclass inherits its parent's): stable across restarts and
 * instances of the application, as it is read from the code alone (never from Nest's module
 * ids, which are random per process).
 *
 * - The declaring class's name when no other cached provider or controller of the application
 *   has a class of that name (today's key: `UsersService:findOne:42`).
 * - Otherwise, for each of them, its place: the import path from the root module (module class
 *   names; `#2`, `#3` for the second and third same-named module imported by one module), then
 *   the provider's token, then the declaring class if its name differs from the token's:
 *   `AppModule/AdminModule/UsersService`, `AppModule/UsersModule/UsersService`,
 *   `AppModule/USERS_READER.UsersService`.
 * - Should two owners still share a name (same-named classes provided in one module), the later
 *   ones, in Nest's registration order, get `#2`, `#3`.
 */
export function defaultKeyOwners(
  wrappers: readonly InstanceWrapper[],
  modules: Iterable<NestModule>,
  accessor: CacheMetadataAccessor,
): Map<InstanceWrapper, Map<object, string>> {
  const pairs: Array<{ wrapper: InstanceWrapper; declaring: object; name: string }> = [];
  for (const wrapper of wrappers) {
    if (wrapper.isAlias) continue;
    for (const declaring of accessor.declaringClasses(classOf(wrapper))) {
      pairs.push({
        wrapper,
        declaring,
        name: (declaring as { name?: string }).name || 'anonymous',
      });
    }
  }
  const sharing = new Map<string, number>();
  for (const { name } of pairs) sharing.set(name, (sharing.get(name) ?? 0) + 1);

  let paths: Map<NestModule, string> | undefined;
  const used = new Set<string>();
  const owners = new Map<InstanceWrapper, Map<object, string>>();
  for (const { wrapper, declaring, name } of pairs) {
    let label = name;
    if ((sharing.get(name) ?? 0) > 1) {
      paths ??= modulePaths(modules);
      const token = tokenName(wrapper.token);
      const host = wrapper.host ? paths.get(wrapper.host) : undefined;
      label = `${host ?? `(unreachable)/${wrapper.host?.name ?? 'unknown'}`}/${token}`;
      if (token !== name) label += `.${name}`;
    }
    let unique = label;
    for (let n = 2; used.has(unique); n++) unique = `${label}#${n}`;
    used.add(unique);
    let byClass = owners.get(wrapper);
    if (!byClass) owners.set(wrapper, (byClass = new Map<object, string>()));
    byClass.set(declaring, unique);
  }
  return owners;
}

/** The class of a provider's instance (its value's class, for value and factory providers). */
function classOf(wrapper: InstanceWrapper): unknown {
  const instance: unknown = wrapper.instance;
  if (typeof instance === 'object' && instance !== null) return instance.constructor;
  // Not created (yet): a class provider's class is known; a factory's result is not.
  return wrapper.inject ? undefined : wrapper.metatype;
}

/**
 * Each module's import path from the root module, breadth first in import order: the shortest
 * path, the first one declared when several are as short. A module imported twice by one
 * module under the same class name (two dynamic modules of one class) is told apart by its
 * position: `Name`, `Name#2`, ...
 */
function modulePaths(modules: Iterable<NestModule>): Map<NestModule, string> {
  const paths = new Map<NestModule, string>();
  const root = rootModuleOf(modules);
  if (!root) return paths;
  paths.set(root, root.name);
  const queue = [root];
  for (let next = queue.shift(); next; next = queue.shift()) {
    const parent = paths.get(next) as string;
    const seen = new Map<string, number>();
    for (const child of next.imports) {
      if (!child) continue;
      const name = child.name || 'anonymous';
      const ordinal = (seen.get(name) ?? 0) + 1;
      seen.set(name, ordinal);
      if (paths.has(child)) continue;
      paths.set(child, `${parent}/${name}${ordinal > 1 ? `#${ordinal}` : ''}`);
      queue.push(child);
    }
  }
  return paths;
}

function tokenName(token: unknown): string {
  if (typeof token === 'function') return (token as { name?: string }).name || 'anonymous';
  if (typeof token === 'symbol') return token.toString();
  return String(token);
}
