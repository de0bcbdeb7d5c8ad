import {
  Inject,
  Injectable,
  type BeforeApplicationShutdown,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { DiscoveryService, ModuleRef } from '@nestjs/core';
import { CACHE_MODULE_OPTIONS } from '../config/cache.constants';
import { CacheConfigError, CacheKeyError } from '../utils/cache.errors';
import { callTimeoutOf, type ResolvedCacheOptions } from '../config/cache-options.resolver';
import { CacheStack } from '../core/cache-stack';
import { MAX_TAGS } from '../config/validators';
import { KeyConstructor, type KeyFieldValues, type KeyTarget } from '../keys/key-constructor';
import { describeError, quote } from '../utils/describe-value';
import { RateLimitedLogger } from '../utils/rate-limited-logger';
import {
  cachedFunctionBindings,
  hostStarted,
  hostStopped,
  namedCachedFunctions,
} from './cached-function.registry';
import { namedStack, namedStacksOf } from '../runtime/cache-binding';
import { DeferredDispatcher } from './dispatchers/deferred.dispatcher';
import { InlineDispatcher } from './dispatchers/inline.dispatcher';
import { findEventEmitter, type EventEmitterLike } from '../diagnostics/event-emitter.bridge';
import type { CacheInvalidationOptions } from '../interfaces/cache-invalidation-options.interface';
import type {
  InvalidationDispatcher,
  InvalidationExecutor,
  InvalidationJob,
} from '../interfaces/invalidation-dispatcher.interface';
import type { InvalidationEvent } from '../interfaces/invalidation-rule.interface';
import { describeEvent, type InvalidationRule } from './invalidation-rule';
import {
  invalidationBindingsOf,
  planInvalidation,
  type InvalidationBinding,
  type InvalidationPlan,
} from './invalidation.registry';

interface Subscription {
  readonly binding: InvalidationBinding;
  readonly rule: InvalidationRule;
}

type Listener = (...args: unknown[]) => Promise<void>;

/**
 * Runs invalidation rules in one application. It collects, at startup, the rules of every
 * provider and controller whose cached methods declare `invalidateOn`, plus those of the
 * {@link cacheResult} functions bound to this application, and hears their events from three
 * sources: {@link CacheInvalidator.publish}, `@nestjs/event-emitter` (when the application has
 * it) and TypeORM entity changes ({@link attachTypeOrmInvalidation}). Each rule's work goes to
 * its dispatcher (`'inline'` by default).
 *
 * Deletes go through the cache stack, so a load in flight for an invalidated key is not written
 * back when it completes.
 *
 * @example
 * ```ts
 * @Injectable()
 * export class UsersRepository {
 *   constructor(private readonly invalidator: CacheInvalidator) {}
 *   async save(user: User) {
 *     await this.db.update(user);
 *     await this.invalidator.publish(User, user); // rules on User run before this resolves (inline)
 *   }
 * }
 * ```
 */
@Injectable()
// An InvalidationHost (cached-function.registry) by shape: that interface is internal.
export class CacheInvalidator
  implements OnModuleInit, BeforeApplicationShutdown, OnApplicationShutdown
{
  private readonly log = new RateLimitedLogger();
  private readonly dispatchers = new Map<string, InvalidationDispatcher>();
  private readonly started = new Set<InvalidationDispatcher>();
  private readonly classBindings: InvalidationBinding[] = [];
  private readonly listeners = new Map<string | symbol, Listener>();
  private emitter: EventEmitterLike | undefined;
  private initialised = false;
  private stopping = false;

  /** @internal Nest builds the invalidator from the module's internals. */
  constructor(
    /** @internal The cache stack this application's invalidations delete from. */
    readonly stack: CacheStack,
    private readonly discovery: DiscoveryService,
    private readonly moduleRef: ModuleRef,
    @Inject(CACHE_MODULE_OPTIONS) private readonly options: ResolvedCacheOptions,
  ) {
    this.dispatchers.set('inline', new InlineDispatcher());
    this.dispatchers.set('deferred', new DeferredDispatcher());
    for (const [name, dispatcher] of Object.entries(this.invalidationOptions.dispatchers ?? {})) {
      this.useDispatcher(name, dispatcher);
    }
  }

  /**
   * Fires `event`: every rule listening to it maps the payload (or each element of an array
   * payload) to key fields and its tags, and drops the matching entries and the tagged ones
   * through the rule's dispatcher.
   * Resolves once every dispatcher has taken its job — for `'inline'` rules, once the entries
   * are gone. Never rejects because of the cache: failures are logged.
   *
   * @example
   * ```ts
   * await invalidator.publish('user.updated', { id: 42 });
   * await invalidator.publish(User, [alice, bob]);
   * ```
   */
  async publish(event: InvalidationEvent, payload?: unknown): Promise<void> {
    const subscriptions = this.subscriptionsFor(event);
    if (subscriptions.length === 0) return;
    const label = describeEvent(event);
    const groups = new Map<
      string,
      {
        dispatcher: string;
        namespace: string;
        keys: Set<string>;
        prefixes: Set<string>;
        tags: Set<string>;
      }
    >();
    for (const { binding, rule } of subscriptions) {
      const where = `Invalidation rule of ${binding.owner} on ${quote(label)}`;
      let plan: InvalidationPlan;
      try {
        plan = planInvalidation(binding, rule, payload, (field, error, target) =>
          this.log.warn(
            `mapping:${binding.owner}:${label}:${field}`,
            `${where}: ${field === '*' ? 'the key' : field.startsWith('tags[') ? field : `fieldMapping.${field}`} ` +
              `failed on the payload (${describeError(error)}); ` +
              (target
                ? `treated as a missing value, so it drops ${describeTarget(target)}`
                : `that tag is not invalidated (the key is not a KeyConstructor, so nothing wider can be dropped)`),
          ),
        );
      } catch (error) {
        // Not knowing what to drop must never mean dropping nothing: drop the namespace.
        const targets: KeyTarget[] = binding.key ? [{ prefix: binding.key.prefix }] : [];
        plan = { targets, tags: [] };
        this.log.error(
          `plan:${binding.owner}:${label}`,
          `${where} could not map the payload (${describeError(error)}); it drops ` +
            `${targets.length > 0 ? describeTarget(targets[0]) : 'nothing'}`,
        );
      }
      // One job per dispatcher and cache: a job applies to the namespace it names.
      const groupKey = `${rule.dispatcher}\u0000${binding.cache ?? ''}`;
      let group = groups.get(groupKey);
      if (!group) {
        group = {
          dispatcher: rule.dispatcher,
          namespace: this.namespaceOf(binding.cache),
          keys: new Set(),
          prefixes: new Set(),
          tags: new Set(),
        };
        groups.set(groupKey, group);
      }
      for (const target of plan.targets) {
        if ('key' in target) group.keys.add(target.key);
        else group.prefixes.add(target.prefix);
      }
      for (const tag of plan.tags) group.tags.add(tag);
    }
    await Promise.all(
      [...groups.values()].map((group) =>
        this.dispatch(
          group.dispatcher,
          collapse(label, group.namespace, group.keys, group.prefixes, group.tags),
        ),
      ),
    );
  }

  /**
   * Drops every entry of one partition of `key` (all of user 42's entries, say) at once:
   * `deleteByPrefix` on the partition's prefix, on memory and Redis alike.
   *
   * @example
   * ```ts
   * await invalidator.wipePartition(UserPayloadKey, { userId: 42 });
   * ```
   */
  wipePartition<N extends string>(
    key: KeyConstructor<N>,
    values: KeyFieldValues<N>,
  ): Promise<number> {
    if (!(key instanceof KeyConstructor)) {
      throw new CacheKeyError('wipePartition needs a KeyConstructor.');
    }
    return this.stack.deleteByPrefix(key.partition(values));
  }

  /**
   * Registers a dispatcher under `name` (what rules name in `dispatcher`), replacing one of
   * the same name. Usually done through `CacheModule.forRoot({ invalidation: { dispatchers } })`.
   */
  useDispatcher(name: string, dispatcher: InvalidationDispatcher): void {
    if (typeof name !== 'string' || name.length === 0) {
      throw new CacheConfigError('A dispatcher needs a non-empty name.');
    }
    if (!dispatcher || typeof dispatcher.dispatch !== 'function') {
      throw new CacheConfigError(
        `Dispatcher "${name}" must implement InvalidationDispatcher (a dispatch(job, execute) method).`,
      );
    }
    this.dispatchers.set(name, dispatcher);
  }

  /** The dispatcher registered under `name`, if any (e.g. to inspect a BullMqDispatcher). */
  dispatcher<T extends InvalidationDispatcher = InvalidationDispatcher>(
    name: string,
  ): T | undefined {
    return this.dispatchers.get(name) as T | undefined;
  }

  /** @internal Makes sure `event` is heard from `@nestjs/event-emitter` too. */
  listen(event: InvalidationEvent): void {
    if (!this.emitter || typeof event === 'function' || this.listeners.has(event)) return;
    const listener: Listener = (payload: unknown) => this.publish(event, payload);
    this.listeners.set(event, listener);
    this.emitter.on(event, listener);
  }

  async onModuleInit(): Promise<void> {
    if (this.initialised) return;
    this.initialised = true;
    this.collectClassBindings();
    if (this.invalidationOptions.eventEmitter !== false) {
      this.emitter = findEventEmitter(this.moduleRef);
    }
    this.validateDispatchers(this.classBindings);
    this.validateCacheNames(
      this.classBindings.map((binding) => ({ name: binding.owner, cache: binding.cache })),
    );
    hostStarted(this);
    try {
      this.validateDispatchers(cachedFunctionBindings(this));
      this.validateCacheNames(
        namedCachedFunctions(this).map(({ name, cache }) => ({
          name: `cacheResult(${name})`,
          cache,
        })),
      );
    } catch (error) {
      hostStopped(this);
      throw error;
    }
    for (const binding of this.classBindings) {
      for (const rule of binding.rules) this.listen(rule.event);
    }
    for (const dispatcher of new Set(this.dispatchers.values())) await this.start(dispatcher);
  }

  /** Drains deferred work and stops queue workers while the cache backend is still open. */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.emitter) {
      for (const [event, listener] of this.listeners) this.emitter.off(event, listener);
    }
    this.listeners.clear();
    hostStopped(this);
    for (const dispatcher of new Set(this.dispatchers.values())) {
      try {
        await dispatcher.close?.();
      } catch (error) {
        this.log.error(
          'close',
          `Closing an invalidation dispatcher failed: ${describeError(error)}`,
        );
      }
    }
  }

  onApplicationShutdown(): Promise<void> {
    // If Nest skipped beforeApplicationShutdown (it does not for app.close()), still clean up.
    return this.beforeApplicationShutdown();
  }

  private readonly execute: InvalidationExecutor = async (job: InvalidationJob) => {
    // A job names keys relative to the namespace it was made for: applied here, it would leave
    // that namespace stale and drop this one's entries (a queue shared by two applications).
    const stack = this.stackOf(job.namespace);
    if (!stack) {
      throw new CacheConfigError(
        `The invalidation job for ${quote(job.event)} belongs to the cache namespace ` +
          `${quote(String(job.namespace))}, not to this application's (${quote(this.options.namespace)}); ` +
          `not applied. Give each application its own queue.`,
      );
    }
    // An entry takes at most MAX_TAGS tags, and so does one invalidation: a job naming more
    // (an array payload) marks them in batches, all at once.
    const tags = job.tags ?? [];
    const batches: Array<readonly string[]> = [];
    for (let i = 0; i < tags.length; i += MAX_TAGS) batches.push(tags.slice(i, i + MAX_TAGS));
    await Promise.all([
      stack.invalidate({ keys: job.keys, prefixes: job.prefixes, tags: batches[0] }),
      ...batches.slice(1).map((batch) => stack.invalidate({ tags: batch })),
    ]);
  };

  /** The namespace of the cache named `cache` (`undefined`: the module's own). */
  private namespaceOf(cache: string | undefined): string {
    return namedStack(this.stack, cache)?.namespace ?? this.options.namespace;
  }

  /** The stack of this application whose namespace a job names (no namespace: the default). */
  private stackOf(namespace: string | undefined): CacheStack | undefined {
    if (namespace === undefined || namespace === this.options.namespace) return this.stack;
    for (const stack of namedStacksOf(this.stack)?.values() ?? []) {
      if (stack.namespace === namespace) return stack;
    }
    return undefined;
  }

  /** Fails startup when a rule or a cached function names a cache this application lacks. */
  private validateCacheNames(
    users: ReadonlyArray<{ readonly name: string; readonly cache: string | undefined }>,
  ): void {
    for (const { name, cache } of users) {
      if (cache === undefined || namedStack(this.stack, cache)) continue;
      const known = ['default', ...(namedStacksOf(this.stack)?.keys() ?? [])];
      throw new CacheConfigError(
        `Unknown cache '${cache}' (used by ${name}); configured caches: ${known.join(', ')}. ` +
          `Add it to CacheModule's caches option, or fix the name.`,
      );
    }
  }

  private get invalidationOptions(): CacheInvalidationOptions {
    return this.options.invalidation ?? {};
  }

  private async dispatch(name: string, job: InvalidationJob): Promise<void> {
    const dispatcher = this.dispatchers.get(name);
    if (!dispatcher) {
      // Rules are validated at startup; this is a function attached later with a typo.
      this.log.error(
        `dispatcher:${name}`,
        `No invalidation dispatcher named ${quote(name)} (known: ${[...this.dispatchers.keys()].join(', ')}); ` +
          `running ${quote(job.event)} inline.`,
      );
      return this.dispatchers.get('inline')!.dispatch(job, this.execute);
    }
    try {
      await this.start(dispatcher);
      await dispatcher.dispatch(job, this.execute);
    } catch (error) {
      this.log.error(
        `dispatch:${name}`,
        `Invalidation dispatcher ${quote(name)} failed to take ${quote(job.event)}: ${describeError(error)}`,
      );
    }
  }

  private async start(dispatcher: InvalidationDispatcher): Promise<void> {
    if (this.started.has(dispatcher)) return;
    this.started.add(dispatcher);
    await dispatcher.start?.(this.execute, {
      namespace: this.options.namespace,
      timeout: callTimeoutOf(this.options),
    });
  }

  private subscriptionsFor(event: InvalidationEvent): Subscription[] {
    const subscriptions: Subscription[] = [];
    for (const binding of [...this.classBindings, ...cachedFunctionBindings(this)]) {
      for (const rule of binding.rules) {
        if (rule.event === event) subscriptions.push({ binding, rule });
      }
    }
    return subscriptions;
  }

  private collectClassBindings(): void {
    const seen = new Set<unknown>();
    const wrappers = [...this.discovery.getProviders(), ...this.discovery.getControllers()];
    for (const wrapper of wrappers) {
      if (wrapper.isAlias) continue;
      const instance: unknown = wrapper.instance;
      const types = [
        wrapper.metatype,
        typeof instance === 'object' && instance !== null ? instance.constructor : undefined,
      ];
      for (const type of types) {
        if (typeof type !== 'function' || seen.has(type)) continue;
        seen.add(type);
        this.classBindings.push(...invalidationBindingsOf(type));
      }
    }
  }

  private validateDispatchers(bindings: readonly InvalidationBinding[]): void {
    for (const binding of bindings) {
      for (const rule of binding.rules) {
        if (!this.dispatchers.has(rule.dispatcher)) {
          throw new CacheConfigError(
            `${binding.owner}: the invalidation rule on ${quote(describeEvent(rule.event))} uses dispatcher ` +
              `${quote(rule.dispatcher)}, which is not registered (known: ${[...this.dispatchers.keys()].join(', ')}). ` +
              `Register it with CacheModule.forRoot({ invalidation: { dispatchers: { ${quote(rule.dispatcher)}: ... } } }).`,
          );
        }
      }
    }
  }
}

/**
 * One job per dispatcher; keys and prefixes already covered by a shorter prefix are dropped.
 * `tags` is set only when there are some (a job without tags reads as before).
 */
function collapse(
  event: string,
  namespace: string,
  keys: Set<string>,
  prefixes: Set<string>,
  tags: Set<string>,
): InvalidationJob {
  const sorted = [...prefixes].sort((a, b) => a.length - b.length);
  const kept: string[] = [];
  for (const prefix of sorted) {
    if (!kept.some((shorter) => prefix.startsWith(shorter))) kept.push(prefix);
  }
  return {
    event,
    keys: [...keys].filter((key) => !kept.some((prefix) => key.startsWith(prefix))),
    prefixes: kept,
    ...(tags.size > 0 ? { tags: [...tags] } : {}),
    namespace,
  };
}

/** What a target drops, for log lines: `the key "..."` or `every key under "..."`. */
function describeTarget(target: KeyTarget): string {
  return 'key' in target
    ? `the key ${quote(target.key)}`
    : `every key under ${quote(target.prefix)}`;
}
