import { AsyncResource } from 'node:async_hooks';
import { defer, from, isObservable, lastValueFrom, Observable } from 'rxjs';
import { boundCache, namedStack } from './cache-binding';
import { runBatch, type BatchSpec } from './batch-operation';
import { headerFor, recordCacheStatus } from './cache-status';
import { isResponse, writeStatusHeader, type StatusResponse } from './http-response';
import type { CacheStack, WrapOptions, WrapResult, WrapStatus } from '../core/cache-stack';
import type { CacheLoadingOptions } from '../interfaces/cache-module-options.interface';
import type { CacheCondition, CacheUnless } from '../interfaces/cache-operation-options.interface';
import type { KeyResolver, MethodCall } from '../keys/key-resolver';
import type { TagsResolver } from '../keys/tag-resolver';
import type { MethodSignature } from '../keys/key-template';
import { describeError, quote } from '../utils/describe-value';
import { isThenable } from '../utils/thenable';
import { CacheLogger, RateLimitedLogger } from '../utils/rate-limited-logger';

/** `@Cacheable`: answer from the cache, or run the method and store its result. */
export interface CacheableOperation {
  readonly kind: 'cacheable';
  readonly key: KeyResolver;
  /** The tags of the stored result, if the decorator sets any. */
  readonly tags?: TagsResolver;
  readonly ttl?: number;
  /** The loading options the decorator sets (`grace`, `timeouts`, `lock`, ...), if any. */
  readonly loading?: Readonly<CacheLoadingOptions>;
  readonly condition?: CacheCondition;
  readonly unless?: CacheUnless;
  /** The named cache it uses (`cache: 'sessions'`); `undefined`: the module's own. */
  readonly cache?: string;
  /** The batch form: the method takes a list of ids, each cached under its own key. */
  readonly batch?: BatchSpec;
}

/** `@CachePut`: always run the method, then store its result. */
export interface CachePutOperation {
  readonly kind: 'put';
  readonly key: KeyResolver;
  /** The tags of the stored result, if the decorator sets any. */
  readonly tags?: TagsResolver;
  readonly ttl?: number;
  readonly jitter?: number;
  readonly grace?: number;
  readonly condition?: CacheCondition;
  readonly unless?: CacheUnless;
  /** The named cache it uses (`cache: 'sessions'`); `undefined`: the module's own. */
  readonly cache?: string;
}

/** `@CacheEvict`: delete a key, a prefix, tags or the namespace, before or after the method. */
export interface CacheEvictOperation {
  readonly kind: 'evict';
  readonly target:
    | { readonly type: 'key'; readonly key: KeyResolver }
    | { readonly type: 'prefix'; readonly prefix: KeyResolver }
    | { readonly type: 'tags'; readonly tags: TagsResolver }
    | { readonly type: 'all' };
  readonly beforeInvocation: boolean;
  readonly condition?: CacheCondition;
  /** The named cache it evicts from; `undefined`: the module's own. */
  readonly cache?: string;
}

/** One decorator's behaviour, compiled when the decorator was applied. */
export type CacheOperation = CacheableOperation | CachePutOperation | CacheEvictOperation;

/** A decorated method: the original function and the operations stacked on it. */
export interface CachedMethod extends MethodSignature {
  /** The method as written (what the wrapper calls). */
  readonly original: (...args: unknown[]) => unknown;
  /** The class that declares it (where Nest's parameter decorators keep their metadata). */
  readonly declaringClass: object;
  /** The function that replaced the method (another decorator may wrap it in turn). */
  wrapper?: (...args: unknown[]) => unknown;
  /** In declaration order. */
  readonly operations: CacheOperation[];
  /**
   * Whether the method returns an Observable: from `design:returntype` when TypeScript emitted
   * a telling type, else learned from the first value the method returns.
   */
  resultKind: 'observable' | 'promise' | 'unknown';
  /** Set once the "called before binding" warning was written. */
  warnedUnbound?: boolean;
  /** Whether an operation names a cache (`cache: 'sessions'`). */
  named?: boolean;
  /**
   * On a `@Cacheable` route handler: the position of the response object Nest passes after the
   * declared arguments, so the wrapper can write `X-Cache` itself (see `route-cache-status.ts`).
   * The wrapper takes it off before the method, keys or conditions see the arguments.
   */
  responseIndex?: number;
}

const log = new RateLimitedLogger();

/**
 * What a decorated method does when called: find the cache bound to `instance`, then run the
 * stacked operations around the original method through the caching core. Without a bound
 * cache (no CacheModule in the application, or a call on an instance Nest does not manage) or
 * with `enabled: false`, it is a plain call.
 */
export function invokeCachedMethod(
  method: CachedMethod,
  instance: unknown,
  args: unknown[],
): unknown {
  let response: StatusResponse | undefined;
  const at = method.responseIndex;
  if (at !== undefined && args.length > at && isResponse(args[at])) {
    response = args[at];
    args = args.slice(0, at);
  }
  const cache =
    typeof instance === 'object' && instance !== null ? boundCache(instance) : undefined;
  if (!cache) {
    if (!method.warnedUnbound) {
      method.warnedUnbound = true;
      new CacheLogger().warn(
        `${method.className}.${method.methodName} ran uncached: its instance is not bound to a ` +
          `CacheModule (it is not a provider or controller of an initialised application that ` +
          `imports CacheModule). Logged once.`,
      );
    }
    return method.original.apply(instance, args);
  }
  if (!cache.enabled && !method.named) return method.original.apply(instance, args);
  const self = instance as object;
  switch (method.resultKind) {
    case 'observable':
      // Lazy like the Observable it replaces: the lookup happens on subscription, but in the
      // caller's async context (Nest subscribes to a handler's Observable outside it, which
      // would hide the request's X-Cache recorder).
      return defer(AsyncResource.bind(() => from(execute(cache, method, self, args, response))));
    case 'promise':
      return method.operations.length === 1 &&
        method.operations[0].kind === 'cacheable' &&
        method.operations[0].batch === undefined
        ? cacheableOnly(cache, method, method.operations[0], self, args, response)
        : execute(cache, method, self, args, response);
    default:
      // Not known yet (no telling return type, and the method has not run): answer with
      // something that works both ways.
      return new ObservablePromise(execute(cache, method, self, args, response));
  }
}

/**
 * {@link execute} for the most common shape, one `@Cacheable` and nothing else: the same
 * steps without the general bookkeeping, so a hit costs little more than the stack's `get`.
 */
function cacheableOnly(
  cache: CacheStack,
  method: CachedMethod,
  op: CacheableOperation,
  instance: object,
  args: unknown[],
  response: StatusResponse | undefined,
): unknown {
  if (op.cache !== undefined || !cache.enabled) {
    const stack = stackOf(cache, op, method);
    if (!stack) return execute(cache, method, instance, args, response);
    cache = stack;
  }
  const call: MethodCall = { instance, args, hasResult: false };
  const key =
    op.condition === undefined || applies(op, method, instance, args)
      ? render(op.key, method, call)
      : undefined;
  const tags = key === undefined ? undefined : renderTags(op.tags, method, call);
  if (key !== undefined && tags !== null) {
    const hit = cache.peek(key);
    if (hit !== undefined) {
      report('hit', response);
      // Called by Nest's router (it passed the response), which takes a value as it takes a
      // Promise: skip the Promise, and the ticks Nest spends awaiting it. Anyone else gets
      // the Promise the method's signature promises.
      return response ? hit : Promise.resolve(hit);
    }
  }
  const invoke = (): Promise<unknown> => {
    // As in `execute` (async): a method that throws at once rejects, it does not throw.
    try {
      return settle(method, method.original.apply(instance, args));
    } catch (error) {
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    }
  };
  if (key === undefined || tags === null) return invoke();
  const unless = vetoed(op.unless, method, key);
  const answer = cache.wrap(key, invoke, wrapOptionsOf(op, unless, tags), true, true);
  return response ? answer.then((result) => reported(result, response)) : answer.then(reported);
}

/** What `wrap` is given for a `@Cacheable` call: the TTL alone when that is all there is. */
function wrapOptionsOf(
  op: CacheableOperation,
  unless: ((value: unknown) => boolean) | undefined,
  tags: readonly string[] | undefined,
): number | undefined | WrapOptions<unknown> {
  if (unless === undefined && op.loading === undefined && tags === undefined) return op.ttl;
  return { ...op.loading, ttl: op.ttl, unless, tags };
}

function reported(result: WrapResult<unknown>, response?: StatusResponse): unknown {
  report(result.status, response);
  return result.value;
}

/**
 * Tells the request being handled how a cached call was answered: to the `X-Cache` recorder of
 * an interceptor around it, if any, and, on a wired route handler, straight onto its response
 * (the handler's own `@Cacheable` decides its `X-Cache`: on a hit nothing else ran, on a miss
 * the response is a `MISS` whatever the services it called did).
 */
function report(status: WrapStatus, response: StatusResponse | undefined): void {
  recordCacheStatus(status);
  if (response) writeStatusHeader(response, headerFor(status));
}

/**
 * The result of a cached call whose method may return a Promise or an Observable: an
 * Observable (emits the value, then completes) that can also be awaited.
 */
export class ObservablePromise<T> extends Observable<T> implements PromiseLike<T> {
  constructor(private readonly promise: Promise<T>) {
    super((subscriber) => from(promise).subscribe(subscriber));
  }

  then<R1 = T, R2 = never>(
    onfulfilled?: ((value: T) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): Promise<R1 | R2> {
    return this.promise.then(onfulfilled, onrejected);
  }

  catch<R = never>(onrejected?: ((reason: unknown) => R | PromiseLike<R>) | null): Promise<T | R> {
    return this.promise.catch(onrejected);
  }

  finally(onfinally?: (() => void) | null): Promise<T> {
    return this.promise.finally(onfinally);
  }
}

async function execute(
  cache: CacheStack,
  method: CachedMethod,
  instance: object,
  args: unknown[],
  response?: StatusResponse,
): Promise<unknown> {
  // Each operation's cache: the instance's own, or the named one it gives (`cache`).
  const stacks = new Map<CacheOperation, CacheStack>();
  for (const op of method.operations) {
    const stack = stackOf(cache, op, method);
    if (stack) stacks.set(op, stack);
  }
  const active = method.operations.filter(
    (op) => stacks.has(op) && applies(op, method, instance, args),
  );
  const before: MethodCall = { instance, args, hasResult: false };
  // A hung backend must cost the caller one command timeout, not one per cache call (issue 10):
  // the cache calls of a phase run together, and once a backend call has failed while this call
  // waited (a counter moved), it does not wait for the backend again.
  const used = [...new Set(stacks.values())];
  const failures = used.map((stack) => stack.failures);
  const healthy = (): boolean => used.every((stack, i) => stack.failures === failures[i]);
  const on = (op: CacheOperation): CacheStack => stacks.get(op) as CacheStack;

  const early = active.filter(
    (op): op is CacheEvictOperation => op.kind === 'evict' && op.beforeInvocation,
  );
  if (early.length > 0) await Promise.all(early.map((op) => evict(on(op), op, method, before)));

  const invoke = (): Promise<unknown> => settle(method, method.original.apply(instance, args));
  let result: unknown;
  const cacheable = active.find((op): op is CacheableOperation => op.kind === 'cacheable');
  const batched =
    cacheable?.batch === undefined
      ? undefined
      : await batch(on(cacheable), method, cacheable, cacheable.batch, instance, args);
  const key =
    cacheable && cacheable.batch === undefined ? render(cacheable.key, method, before) : undefined;
  const tags = key === undefined ? undefined : renderTags(cacheable?.tags, method, before);
  if (batched) {
    report(batched.loaded ? 'miss' : 'hit', response);
    result = batched.value;
  } else if (cacheable && key !== undefined && tags !== null) {
    const unless = vetoed(cacheable.unless, method, key);
    result = reported(
      await on(cacheable).wrap(
        key,
        invoke,
        wrapOptionsOf(cacheable, unless, tags),
        healthy(),
        true,
      ),
      response,
    );
  } else {
    result = await invoke();
  }

  const after: MethodCall = { instance, args, hasResult: true, result };
  // Issued in declaration order (puts, then evictions), so the backend applies them in order.
  const late: Array<Promise<void>> = [];
  for (const op of active) if (op.kind === 'put') late.push(put(on(op), op, method, after));
  for (const op of active) {
    if (op.kind === 'evict' && !op.beforeInvocation) late.push(evict(on(op), op, method, after));
  }
  // Awaited while the backend answers, so the caller reads its own writes; each logs its failure.
  if (late.length > 0 && healthy()) await Promise.all(late);
  return result;
}

/**
 * The stack `op` runs on: the instance's own, or the named cache it gives — `undefined` when
 * that cache is switched off (`enabled: false`), or not configured in this application (logged:
 * the explorer refuses such a name at startup, so this is a call that came before it ran).
 */
function stackOf(
  cache: CacheStack,
  op: CacheOperation,
  method: CachedMethod,
): CacheStack | undefined {
  const stack = namedStack(cache, op.cache);
  if (!stack) {
    warn(
      method,
      'cache',
      `its cache ${quote(String(op.cache))} is not configured in this application; running uncached`,
    );
    return undefined;
  }
  return stack.enabled ? stack : undefined;
}

/** A `@Cacheable({ batch })` call (see `batch-operation.ts`); `undefined`: run it uncached. */
function batch(
  cache: CacheStack,
  method: CachedMethod,
  op: CacheableOperation,
  spec: BatchSpec,
  instance: object,
  args: unknown[],
): Promise<{ value: unknown; loaded: boolean } | undefined> {
  const unless = op.unless && vetoed(op.unless, method, `${method.className}.${method.methodName}`);
  return runBatch({
    cache,
    name: `${method.className}.${method.methodName}`,
    instance,
    args,
    spec,
    key: (call) => render(op.key, method, call),
    tags: (call) => renderTags(op.tags, method, call),
    invoke: (ids) => settle(method, method.original.apply(instance, ids)),
    options: { ...op.loading, ttl: op.ttl, unless },
  });
}

/** Awaits the method's result; an Observable counts by its last value. */
function settle(method: CachedMethod, value: unknown): Promise<unknown> {
  if (isObservable(value)) {
    method.resultKind = 'observable';
    return lastValueFrom(value, { defaultValue: undefined });
  }
  method.resultKind = 'promise';
  return Promise.resolve(value);
}

function applies(
  op: CacheOperation,
  method: CachedMethod,
  instance: object,
  args: unknown[],
): boolean {
  if (!op.condition) return true;
  try {
    const verdict: unknown = op.condition.apply(instance, args);
    if (verdict === true) return true;
    if (isThenable(verdict)) {
      warn(
        method,
        'condition',
        'its condition returned a Promise (it must be synchronous); not cached',
      );
    }
    return false;
  } catch (error) {
    warn(method, 'condition', `its condition threw (${describeError(error)}); not cached`);
    return false;
  }
}

function vetoed(
  unless: CacheUnless | undefined,
  method: CachedMethod,
  key: string,
): ((value: unknown) => boolean) | undefined {
  if (!unless) return undefined;
  return (value) => {
    try {
      const verdict: unknown = unless(value);
      if (verdict === true) return true;
      if (!isThenable(verdict)) return false;
      warn(
        method,
        'unless',
        `its unless returned a Promise (it must be synchronous); ${quote(key)} not stored`,
      );
      return true;
    } catch (error) {
      warn(
        method,
        'unless',
        `its unless threw (${describeError(error)}); ${quote(key)} not stored`,
      );
      return true;
    }
  };
}

async function put(
  cache: CacheStack,
  op: CachePutOperation,
  method: CachedMethod,
  call: MethodCall,
): Promise<void> {
  const key = render(op.key, method, call);
  if (key === undefined || vetoed(op.unless, method, key)?.(call.result)) return;
  // An entry stored without one of its tags would escape that tag's invalidation: nothing is
  // stored, and the old entry, which no longer describes the data, goes (as for undefined).
  const tags = call.result === undefined ? undefined : renderTags(op.tags, method, call);
  try {
    // A result of undefined: nothing to store, but the old entry no longer describes the data.
    if (call.result === undefined || tags === null) await cache.delete(key);
    else {
      await cache.set(
        key,
        call.result,
        op.jitter === undefined && op.grace === undefined && tags === undefined
          ? op.ttl
          : { ttl: op.ttl, jitter: op.jitter, grace: op.grace, tags },
      );
    }
  } catch (error) {
    // Backend errors are logged by the stack; this is a value JSON cannot hold. The old entry
    // no longer describes the data either: deleted, as for undefined.
    warn(
      method,
      'put',
      `its result was not stored under ${quote(key)}, entry deleted: ${describeError(error)}`,
    );
    await cache.delete(key).catch(() => undefined);
  }
}

async function evict(
  cache: CacheStack,
  op: CacheEvictOperation,
  method: CachedMethod,
  call: MethodCall,
): Promise<void> {
  const target = op.target;
  try {
    if (target.type === 'all') {
      await cache.clear();
      return;
    }
    if (target.type === 'tags') {
      const tags = renderTags(target.tags, method, call);
      if (tags) await cache.deleteByTag(tags);
      return;
    }
    const rendered = render(target.type === 'key' ? target.key : target.prefix, method, call);
    if (rendered === undefined) return;
    if (target.type === 'key') await cache.delete(rendered);
    else await cache.deleteByPrefix(rendered);
  } catch (error) {
    // Backend errors are logged by the stack; this is a key it refused (an empty one).
    warn(method, 'evict', `its eviction failed: ${describeError(error)}`);
  }
}

/** Renders a key, or logs and answers `undefined` so the call goes on uncached. */
function render(key: KeyResolver, method: CachedMethod, call: MethodCall): string | undefined {
  try {
    return key.render(call);
  } catch (error) {
    warn(method, 'key', `its key could not be rendered, calling through: ${describeError(error)}`);
    return undefined;
  }
}

/**
 * Renders a call's tags: `undefined` when the operation has none, `null` (logged) when they
 * cannot be rendered — the call then goes on uncached, as for a key that cannot be rendered.
 */
function renderTags(
  tags: TagsResolver | undefined,
  method: CachedMethod,
  call: MethodCall,
): string[] | undefined | null {
  if (tags === undefined) return undefined;
  try {
    const rendered = tags.render(call);
    return rendered.length > 0 ? rendered : undefined;
  } catch (error) {
    warn(
      method,
      'tags',
      `its tags could not be rendered, calling through: ${describeError(error)}`,
    );
    return null;
  }
}

function warn(method: CachedMethod, topic: string, message: string): void {
  const name = `${method.className}.${method.methodName}`;
  log.warn(`decorator:${topic}:${name}`, `${name}: ${message}`);
}
