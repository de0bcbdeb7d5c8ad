import {
  Inject,
  Injectable,
  StreamableFile,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { HttpAdapterHost, Reflector, type AbstractHttpAdapter } from '@nestjs/core';
import { createHash } from 'node:crypto';
import { lastValueFrom, map, of, tap, type Observable } from 'rxjs';
import { RouteCacheMetadata } from './route-cache.metadata';
import {
  CacheStatusRecorder,
  headerFor,
  withCacheStatus,
  type CacheStatusHeader,
} from '../runtime/cache-status';
import { CacheStack, type StaleReason, type WrapStatus, type WrapTally } from '../core/cache-stack';
import type { Tier } from '../tiers/sourced-read';
import { escapeKeyText } from '../keys/key-constructor.encoding';
import {
  headersSent,
  hostKey,
  isEntry,
  restoreVary,
  storageVerdict,
  variantKey,
  varyMatches,
  whenSent,
  type RequestHeaders,
  type ResponseEntry,
  type StorageRefusal,
} from './http-cache-rules';
import type { CacheSafetyRules } from '../interfaces/cache-route.interface';
import { writeCacheStatus } from '../runtime/http-response';
import { parseTtl, ttlProblem } from '../config/validators';
import { CacheArgumentError, CacheKeyError } from '../utils/cache.errors';
import { describeError, describeValue, quote } from '../utils/describe-value';
import { CacheLogger, RateLimitedLogger } from '../utils/rate-limited-logger';

/** Failures of routes' cache metadata, at most one line per route and kind every 10 s. */
const routeLog = new RateLimitedLogger();

/** Every safety rule on: what {@link CacheInterceptor.safetyRules} answers by default. */
const SAFE: CacheSafetyRules = Object.freeze({
  credentials: true,
  cacheControl: true,
  setCookie: true,
  vary: true,
});

/** Why a request was not cached for safety: a rule of {@link CacheSafetyRules}. */
type SafetyReason = keyof CacheSafetyRules;

const safetyLog = new CacheLogger();

/** What each safety reason's log line says was refused. */
const SAFETY_REFUSED: Readonly<Record<SafetyReason, string>> = {
  credentials:
    'a request carrying credentials (Authorization, Proxy-Authorization or Cookie) was neither ' +
    'answered from nor stored into the shared entry of its URL, as its response may be personal',
  cacheControl:
    'a response was not stored, as its Cache-Control says private, no-store or no-cache',
  setCookie: 'a response was not stored, as it sets a cookie (Set-Cookie)',
  vary: 'a response was not stored, as it varies on every request header (Vary: *)',
};

interface HttpRequestLike {
  method?: string;
  url?: string;
  originalUrl?: string;
  headers?: RequestHeaders;
}

/** What a response's run left to store: the entry, or this when HTTP says not to. */
const NOT_STORED: unique symbol = Symbol('cachekit:not-stored');
type Outcome = ResponseEntry | typeof NOT_STORED;

function isNotStored(outcome: Outcome): boolean {
  return outcome === NOT_STORED;
}

/** How a request is to be answered. */
type Answer =
  /** It ran the handler itself (the load was its own). */
  | { readonly kind: 'ran'; readonly body: unknown }
  /** From the cache, or from a concurrent request's stored response. */
  | {
      readonly kind: 'cached';
      readonly entry: ResponseEntry;
      readonly status: 'hit' | 'shared' | 'stale';
    }
  /** Nothing it may share: it runs the handler, uncached. */
  | { readonly kind: 'uncached' };

const UNCACHED: Answer = { kind: 'uncached' };

/**
 * Whether a route (controller class, handler) may be URL-cached at all: facts of its
 * declaration (cache decorators, `@Res()`, `@Sse()`, a `StreamableFile` return type) that never
 * change, worked out on its first request instead of on every one. A route found returning a
 * stream is marked `false` here too.
 */
const routeEligibility = new WeakMap<object, WeakMap<object, boolean>>();

/**
 * Response-level caching for HTTP routes, for users of `@nestjs/cache-manager`:
 * `@UseInterceptors(CacheInterceptor)` on a controller or handler, or globally with
 * `{ provide: APP_INTERCEPTOR, useClass: CacheInterceptor }`.
 *
 * - `GET` responses are cached under `http:<host><url>` (or `@CacheKey`), for `@CacheTTL`
 *   seconds (default: the module's `ttl`); other methods are never cached.
 * - HTTP decides what is stored, from the response as it was sent: only a `200` that is not
 *   `Cache-Control: private | no-store | no-cache` and sets no cookie. A response with `Vary`
 *   is stored per value of the request headers it names (never with `Vary: *`).
 * - Concurrent requests for one uncached URL run the handler once (and share its response
 *   only if it was stored).
 * - `X-Cache: HIT | MISS` is set on every cached route. Routes cached with `@Cacheable`
 *   (and routes whose handler calls `@Cacheable` services or `cacheResult` functions) report
 *   their status instead: `HIT` when every cached call hit.
 * - Safe by default: a request carrying `Authorization`, `Proxy-Authorization` or `Cookie`
 *   is neither answered from nor stored into the URL cache, unless the route is marked
 *   `@CachePerUser`, which gives every user their own entry.
 * - Left alone: `@Res()`/`@Next()` handlers, `@Sse()` routes, `StreamableFile`s, streams and
 *   buffers, `undefined` results, and non-HTTP contexts.
 *
 * Subclass it as with `@nestjs/cache-manager`: override {@link trackBy} to choose the key (or
 * `undefined`/`null`: not cached), {@link isRequestCacheable} or {@link allowedMethods} to choose
 * which requests are cached, and {@link safetyRules} to relax a safety rule for the requests
 * where it does not apply. A request (or response) refused by a safety rule is logged once per
 * route, with the way to relax it. Unlike `@nestjs/cache-manager`, `isRequestCacheable` is
 * asked for every request, before `trackBy` (an overridden `trackBy` or a `@CacheKey` does not
 * make a `POST` cacheable), and `@CacheTTL` is in seconds.
 *
 * @example
 * ```ts
 * @Controller('articles')
 * @UseInterceptors(CacheInterceptor)
 * export class ArticlesController {
 *   @Get()
 *   @CacheTTL(30)
 *   list() { ... }                      // X-Cache: MISS, then HIT for 30 s
 * }
 *
 * // The NestJS caching sample's subclass, unchanged:
 * @Injectable()
 * class HttpCacheInterceptor extends CacheInterceptor {
 *   protected override trackBy(context: ExecutionContext): string | undefined {
 *     const request = context.switchToHttp().getRequest();
 *     const { httpAdapter } = this.httpAdapterHost;
 *     if (httpAdapter.getRequestUrl(request) === '/health') return undefined;
 *     return httpAdapter.getRequestUrl(request);
 *   }
 * }
 * ```
 */
@Injectable()
export class CacheInterceptor implements NestInterceptor {
  /** @internal Reads `@CacheKey`, `@CacheTTL`, `@CachePerUser` and the decorators' metadata. */
  protected readonly metadata: RouteCacheMetadata;

  /**
   * Nest's HTTP adapter host, as in `@nestjs/cache-manager`: `this.httpAdapterHost.httpAdapter`
   * reads requests the platform's way (Express or Fastify).
   *
   * Always there. Nest provides `HttpAdapterHost` in every application context (its core module
   * is global), so it is injected as a required dependency — by property, so a subclass's own
   * constructor need not pass it. What may be missing is the adapter inside it: `httpAdapter` is
   * `undefined` where there is no HTTP server (a microservice, a standalone application
   * context). This interceptor never needs it there: it passes every non-HTTP context through
   * before `trackBy` or `isRequestCacheable` runs, and reads the request itself if an HTTP
   * context comes without an adapter. A subclass that reads `httpAdapter` outside those two
   * methods should check it. Built by hand (`new CacheInterceptor(...)`), it holds an empty host.
   */
  @Inject(HttpAdapterHost)
  protected readonly httpAdapterHost: HttpAdapterHost = new HttpAdapterHost();

  /**
   * The request methods the default {@link isRequestCacheable} caches, as in
   * `@nestjs/cache-manager`. Only safe methods belong here unless the route's response depends
   * on nothing but its URL (a `POST` is cached by URL, whatever its body).
   * @defaultValue `['GET']`
   */
  protected allowedMethods: string[] = ['GET'];

  /**
   * The safety reasons already logged, per controller class and handler: each is said once per
   * route for the life of the interceptor (the application), not once per request.
   */
  private readonly safetyNotices = new WeakMap<object, WeakMap<object, Set<SafetyReason>>>();

  /** @internal Nest builds the interceptor; the cache stack is not part of the public API. */
  constructor(
    /** @internal The application's cache stack. */
    protected readonly cache: CacheStack,
    protected readonly reflector: Reflector,
  ) {
    this.metadata = new RouteCacheMetadata(reflector);
  }

  /** Answers a cacheable GET from the cache, or runs the handler and caches its response. */
  intercept(
    context: ExecutionContext,
    next: CallHandler,
  ): Observable<unknown> | Promise<Observable<unknown>> {
    if (context.getType() !== 'http') return next.handle();
    if (
      !this.cache.enabled ||
      !this.isRouteCacheable(context) ||
      !this.isRequestCacheable(context)
    ) {
      return passThrough(context, next);
    }
    let rules: CacheSafetyRules;
    let key: string | undefined | Promise<string | undefined>;
    try {
      rules = this.safetyRules(context);
      key = this.keyFor(context, rules);
    } catch (error) {
      return this.uncached(context, next, 'key', undefined, error);
    }
    if (typeof key === 'string') {
      // A hit in the in-process store is answered here and now, with no Promise in between.
      const entry = this.peek(key, headersOf(context));
      if (entry) return of(this.cached(context, entry, 'HIT'));
    }
    return this.serve(context, next, key, rules);
  }

  /** The in-process entry of `key` (or of its variant) for a request with `headers`. */
  private peek(key: string, headers: RequestHeaders): ResponseEntry | undefined {
    // Counted as a hit only when it answers (a variant's entry may not).
    const entry: unknown = this.cache.peek(key, false);
    if (!isEntry(entry)) return undefined;
    if (varyMatches(entry, headers)) {
      this.cache.peeked(key);
      return entry;
    }
    const variant = variantKey(key, entry, headers);
    const stored: unknown = this.cache.peek(variant, false);
    if (!isEntry(stored) || !varyMatches(stored, headers)) return undefined;
    this.cache.peeked(variant);
    return stored;
  }

  private async serve(
    context: ExecutionContext,
    next: CallHandler,
    pending: string | undefined | Promise<string | undefined>,
    rules: CacheSafetyRules,
  ): Promise<Observable<unknown>> {
    let key: string | undefined;
    let ttl: number | undefined;
    try {
      key = await pending;
    } catch (error) {
      return this.uncached(context, next, 'key', undefined, error);
    }
    if (key === undefined) return passThrough(context, next);
    try {
      ttl = await this.ttlFor(context);
    } catch (error) {
      return this.uncached(context, next, 'TTL', key, error);
    }
    const headers = headersOf(context);
    // One request is one read in the cache's counters: the read that answered it.
    const first = new Tally(this.cache, key);
    let answer = await this.lookup(context, next, key, ttl, rules, first.record).catch(first.fail);
    if (answer.kind === 'cached' && !varyMatches(answer.entry, headers)) {
      // Cached for other values of the request headers the response varies on: this
      // request's variant has its own key.
      first.decide(false);
      const variant = variantKey(key, answer.entry, headers);
      const second = new Tally(this.cache, variant);
      answer = await this.lookup(context, next, variant, ttl, rules, second.record).catch(
        second.fail,
      );
      second.decide(true);
      if (answer.kind === 'cached' && !varyMatches(answer.entry, headers)) answer = UNCACHED;
    } else {
      first.decide(true);
    }
    switch (answer.kind) {
      case 'ran':
        return of(this.ran(context, answer.body));
      case 'cached':
        return of(this.cached(context, answer.entry, headerOf(answer.status)));
      default:
        // Joined a run whose response was not stored (and must not be shared): run our own.
        return next.handle().pipe(map((body) => this.ran(context, body)));
    }
  }

  /**
   * Gets `key` from the cache, or runs the handler, which answers this request at once and
   * stores its response once it has been sent (see {@link respond}). Concurrent requests for
   * the key wait for that decision: they share the response only if it was stored.
   */
  private lookup(
    context: ExecutionContext,
    next: CallHandler,
    key: string,
    ttl: number | undefined,
    rules: CacheSafetyRules,
    tally: WrapTally,
  ): Promise<Answer> {
    let owner = false;
    let handOver!: (answer: Answer) => void;
    const ran = new Promise<Answer>((resolve) => (handOver = resolve));
    let failure: { readonly error: unknown } | undefined;
    const loaded = this.cache.wrap<Outcome>(
      key,
      () => {
        owner = true;
        return this.respond(context, next, handOver, rules).catch((error: unknown) => {
          failure = { error };
          throw error;
        });
      },
      { ttl, unless: isNotStored },
      true,
      false,
      tally,
    );
    return Promise.race([
      ran,
      loaded.then(({ value, status }): Answer | Promise<Answer> => {
        // The handler failed (this request's, or the one it joined) and `grace` kept the last
        // response: it answers, marked STALE.
        if (status === 'stale' && isEntry(value)) return { kind: 'cached', entry: value, status };
        // Its handler failed and the stale value is no stored response: the error answers.
        if (status === 'stale' && failure) throw failure.error;
        if (owner) return ran;
        if (value === NOT_STORED || !isEntry(value)) return UNCACHED;
        return { kind: 'cached', entry: value, status: status === 'hit' ? 'hit' : 'shared' };
      }),
    ]);
  }

  /**
   * The loader of a cold key: runs the handler, hands its result to the request (which sends
   * it), then waits until the response has been sent and returns what to store. Deciding on
   * the response as sent, not on the value, sees every status and header set after the
   * handler: by an interceptor outside this one, Nest's router (`@Redirect`), an exception
   * filter, or a middleware that sets `Vary` when the headers are written (compression).
   */
  private async respond(
    context: ExecutionContext,
    next: CallHandler,
    handOver: (answer: Answer) => void,
    rules: CacheSafetyRules,
  ): Promise<Outcome> {
    const response: unknown = context.getArgByIndex(1);
    // Listening from the start: the client may go away while the handler runs.
    const sent = whenSent(response);
    const body: unknown = await lastValueFrom(next.handle(), { defaultValue: undefined });
    // Something else already answered (a handler writing through `req.res`): not this body.
    const answeredElsewhere = headersSent(response);
    handOver({ kind: 'ran', body });
    if (answeredElsewhere || !isStorableBody(body) || !(await sent)) return NOT_STORED;
    let verdict: ResponseEntry | StorageRefusal;
    try {
      const headers = headersOf(context);
      verdict = storageVerdict(
        response,
        this.adapter,
        headers,
        body,
        rules,
        this.okStatus(context),
      );
    } catch {
      // A response object that cannot be read is not one we can vouch for.
      return NOT_STORED;
    }
    if (typeof verdict !== 'string') return verdict;
    // Not storing an error (or any other status) is no safety rule: nothing to relax.
    if (verdict !== 'status') this.noteSafety(context, verdict);
    return NOT_STORED;
  }

  /**
   * The status a stored response must have: the one a cached answer is replayed with, as Nest's
   * router sets it again on a hit — `200`, or `201` for a `POST` route left at Nest's default
   * (or marked `@HttpCode(201)`) when {@link allowedMethods} lets `POST` in.
   */
  private okStatus(context: ExecutionContext): number {
    if (this.methodOf(context) !== 'POST') return 200;
    return (this.metadata.getHttpCode(context) ?? 201) === 201 ? 201 : 200;
  }

  /**
   * Logs, once per route and reason, that a safety rule kept a request out of the cache, and how
   * to relax it. No request data goes into the line.
   */
  private noteSafety(context: ExecutionContext, reason: SafetyReason): void {
    const controller = context.getClass();
    let routes = this.safetyNotices.get(controller);
    if (!routes) this.safetyNotices.set(controller, (routes = new WeakMap()));
    let noticed = routes.get(context.getHandler());
    if (!noticed) routes.set(context.getHandler(), (noticed = new Set()));
    if (noticed.has(reason)) return;
    noticed.add(reason);
    const interceptor = this.constructor.name || 'CacheInterceptor';
    const route = `${controller.name}.${context.getHandler().name}`;
    const perUser =
      reason === 'credentials'
        ? 'Mark the route @CachePerUser() to give each user their own entry, or, if its ' +
          'responses never depend on the caller, '
        : "If this route's responses are the same for everyone, ";
    safetyLog.log(
      `${interceptor}: ${route}: ${SAFETY_REFUSED[reason]}. ${perUser}override ` +
        `safetyRules(context) in a subclass of CacheInterceptor to return ` +
        `{ ...super.safetyRules(context), ${reason}: false }. Logged once per route.`,
    );
  }

  /** Answers with a stored response: its `X-Cache`, its `Vary`, its body. */
  private cached(
    context: ExecutionContext,
    entry: ResponseEntry,
    status: CacheStatusHeader,
  ): unknown {
    writeCacheStatus(context, status);
    if (entry.vary) {
      restoreVary(context.getArgByIndex(1), this.adapter, entry.vary);
    }
    return entry.body;
  }

  /** Reports a body this request's handler produced (`MISS`), and passes it on. */
  private ran(context: ExecutionContext, body: unknown): unknown {
    if (isStorableBody(body)) writeCacheStatus(context, 'MISS');
    else if (isStream(body)) routesOf(context.getClass()).set(context.getHandler(), false);
    return body;
  }

  /**
   * The base key of a request: `@CacheKey` if set (used as given; a function's result, which may
   * be a Promise), else `http:` + the host name the request was sent to (escaped, case kept, no
   * port) + its URL. `undefined`, `null` or `''` leaves the request uncached. Override to change
   * it (as in `@nestjs/cache-manager`); it may return a Promise. It runs only for requests
   * {@link isRequestCacheable} accepts, and the safety rules still apply to its key: a request
   * with credentials gets no shared entry (see {@link safetyRules}).
   */
  protected trackBy(
    context: ExecutionContext,
  ): string | undefined | null | Promise<string | undefined | null> {
    const custom = this.metadata.getCacheKey(context);
    if (typeof custom === 'string') return custom;
    if (typeof custom === 'function') return custom(context);
    const request = requestOf(context);
    const adapter = this.adapter;
    const url = adapter
      ? (adapter.getRequestUrl(request) as string | undefined)
      : (request.originalUrl ?? request.url);
    // Only origin-form targets ('/path?query'): an absolute-form target could imitate the
    // per-user key layout below. The host is escaped (no ':' and no '/'), so the first '/'
    // ends it and hosts never share entries.
    return typeof url === 'string' && url.startsWith('/')
      ? `http:${hostKey(hostnameOf(request, adapter))}${url}`
      : undefined;
  }

  /** Whether the route may be URL-cached at all (worked out once per route). */
  private isRouteCacheable(context: ExecutionContext): boolean {
    const routes = routesOf(context.getClass());
    const handler = context.getHandler();
    let eligible = routes.get(handler);
    if (eligible === undefined) {
      eligible =
        this.metadata.getCacheOperations(handler).length === 0 &&
        !this.metadata.usesResponseObject(context) &&
        !this.metadata.isServerSentEvents(context) &&
        !returnsStreamableFile(context);
      routes.set(handler, eligible);
    }
    return eligible;
  }

  /**
   * Whether this request may be cached at all: by default, if its method is one of
   * {@link allowedMethods} (`GET`). Asked for every request on a cacheable route, before
   * {@link trackBy}. Override to exclude paths or let other methods in, as in
   * `@nestjs/cache-manager`.
   */
  protected isRequestCacheable(context: ExecutionContext): boolean {
    const method = this.methodOf(context);
    return method !== undefined && this.allowedMethods.includes(method);
  }

  /**
   * The safety rules that apply to this request: every rule of {@link CacheSafetyRules} is on
   * by default. Override to relax one where it does not apply — say, for routes whose responses
   * never depend on the caller's credentials — and keep the others:
   *
   * ```ts
   * protected override safetyRules(context: ExecutionContext): CacheSafetyRules {
   *   const rules = super.safetyRules(context);
   *   return isPublicCatalogue(context) ? { ...rules, credentials: false } : rules;
   * }
   * ```
   *
   * Asked once per request on a cacheable route, before {@link trackBy}'s key is used. While a
   * rule is on, the first request (or response) it refuses on each route is logged, saying how
   * to relax it.
   */
  protected safetyRules(context: ExecutionContext): CacheSafetyRules {
    void context;
    return SAFE;
  }

  /** The adapter in {@link httpAdapterHost}; `undefined` without an HTTP server. */
  private get adapter(): AbstractHttpAdapter | undefined {
    return this.httpAdapterHost.httpAdapter as AbstractHttpAdapter | undefined;
  }

  /** The request's method, through the adapter when there is one. */
  private methodOf(context: ExecutionContext): string | undefined {
    const request = requestOf(context);
    const adapter = this.adapter;
    const method: unknown = adapter ? adapter.getRequestMethod(request) : request.method;
    return typeof method === 'string' ? method : undefined;
  }

  /**
   * `true` if the request carries credentials (`Authorization`, `Proxy-Authorization` or
   * `Cookie`), so its response may be personal.
   */
  protected hasCredentials(context: ExecutionContext): boolean {
    const headers = requestOf(context).headers;
    // The CREDENTIAL_HEADERS, read one by one (this runs on every cacheable request).
    return (
      headers !== undefined &&
      (!!headers.authorization?.length ||
        !!headers['proxy-authorization']?.length ||
        !!headers.cookie?.length)
    );
  }

  /**
   * A route whose cache metadata fails (a `@CacheKey`, `@CacheTTL` or `@CachePerUser` function
   * that throws, rejects or answers something unusable) is a programming error, not the
   * client's: logged, and the request is served uncached rather than failed.
   */
  private uncached(
    context: ExecutionContext,
    next: CallHandler,
    what: 'key' | 'TTL',
    key: string | undefined,
    error: unknown,
  ): Observable<unknown> {
    const route = `${context.getClass().name}.${context.getHandler().name}`;
    routeLog.warn(
      `interceptor:${what}:${route}`,
      `CacheInterceptor: ${route} served uncached, its cache ${what} failed` +
        `${key === undefined ? '' : ` for ${quote(key)}`}: ${describeError(error)}`,
    );
    return passThrough(context, next);
  }

  /**
   * The request's key; a Promise only when {@link trackBy} (or a `@CacheKey` function) or a
   * `@CachePerUser` identify function is async.
   */
  private keyFor(
    context: ExecutionContext,
    rules: CacheSafetyRules,
  ): string | undefined | Promise<string | undefined> {
    const base: unknown = this.trackBy(context);
    return isThenable(base)
      ? Promise.resolve(base).then((resolved) => this.scopedKey(context, rules, resolved))
      : this.scopedKey(context, rules, base);
  }

  /** The key of `base` for this request: shared, the user's own, or none (credentials). */
  private scopedKey(
    context: ExecutionContext,
    rules: CacheSafetyRules,
    base: unknown,
  ): string | undefined | Promise<string | undefined> {
    if (base === undefined || base === null || base === '') return undefined;
    if (typeof base !== 'string') {
      throw new CacheKeyError(`the key is ${describeValue(base)}, expected a string`);
    }
    const credentialed = this.hasCredentials(context);
    const perUser = this.metadata.getPerUser(context);
    if (!perUser) {
      if (!credentialed || !rules.credentials) return base;
      this.noteSafety(context, 'credentials');
      return undefined;
    }
    // Credentials without an identity get no entry, unless the credentials rule is off.
    const guarded = credentialed && rules.credentials;
    const identity = perUser.identify
      ? perUser.identify(context)
      : credentialed
        ? hashCredentials(requestOf(context))
        : undefined;
    // Any thenable (a query builder, a Promise from another realm), not only a native Promise.
    return isThenable(identity)
      ? Promise.resolve(identity).then((resolved) => userKey(base, resolved, guarded))
      : userKey(base, identity, guarded);
  }

  private async ttlFor(context: ExecutionContext): Promise<number | undefined> {
    const declared = this.metadata.getCacheTtl(context);
    // A numeric string ('60', from ConfigService) is seconds, as in @CacheTTL itself.
    const ttl: unknown = parseTtl(
      typeof declared === 'function' ? await declared(context) : declared,
    );
    if (ttl === undefined) return undefined;
    // A module built by CacheModule.register takes @nestjs/cache-manager's milliseconds.
    const inMs = this.cache.routeTtlInMs;
    const seconds = inMs && typeof ttl === 'number' ? ttl / 1000 : ttl;
    const problem = ttlProblem(seconds);
    if (problem) {
      const unit = inMs ? ' (milliseconds: the module was built by CacheModule.register)' : '';
      throw new CacheArgumentError(`the TTL is ${describeValue(ttl)}${unit}, expected ${problem}`);
    }
    return seconds as number;
  }
}

/** Runs the handler uncached, still reporting what the cached calls it made did. */
function passThrough(context: ExecutionContext, next: CallHandler): Observable<unknown> {
  const recorder = new CacheStatusRecorder();
  return withCacheStatus(recorder, () => next.handle()).pipe(
    tap(() => writeCacheStatus(context, recorder.header)),
  );
}

function userKey(base: string, identity: unknown, credentialed: boolean): string | undefined {
  if (identity === undefined || identity === null || identity === '') {
    // Anonymous requests share an entry; credentials without an identity are not cached.
    return credentialed ? undefined : base;
  }
  // Only text and numbers tell users apart; anything else (an object would read
  // "[object Object]" for everyone) leaves the request uncached.
  if (typeof identity !== 'string' && typeof identity !== 'number') return undefined;
  return `http:user:${escapeKeyText(String(identity))}:${base}`;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as { then?: unknown }).then === 'function'
  );
}

/** The request of an HTTP context (`switchToHttp()` builds three closures per call). */
function requestOf(context: ExecutionContext): HttpRequestLike {
  return context.getArgByIndex<HttpRequestLike>(0);
}

const NO_HEADERS: RequestHeaders = {};

function headersOf(context: ExecutionContext): RequestHeaders {
  return requestOf(context).headers ?? NO_HEADERS;
}

/**
 * The host name a request was sent to, as the platform sees it (`req.hostname`: the `Host`
 * header, or `X-Forwarded-Host` when the app trusts the proxy), without the port; `''` when
 * there is none (HTTP/1.0).
 */
function hostnameOf(request: HttpRequestLike, adapter: AbstractHttpAdapter | undefined): string {
  if (adapter) {
    const hostname: unknown = adapter.getRequestHostname(request);
    return typeof hostname === 'string' ? hostname : '';
  }
  const host = request.headers?.host;
  return typeof host === 'string' ? host.replace(/:\d*$/, '') : '';
}

function routesOf(controller: object): WeakMap<object, boolean> {
  let routes = routeEligibility.get(controller);
  if (!routes) routeEligibility.set(controller, (routes = new WeakMap()));
  return routes;
}

const CREDENTIAL_HEADERS = ['authorization', 'proxy-authorization', 'cookie'];

function credentialHeaders(request: HttpRequestLike): string[] {
  const headers = request.headers ?? {};
  return CREDENTIAL_HEADERS.flatMap((name) => {
    const value = headers[name];
    const text = Array.isArray(value) ? value.join('\n') : value;
    return text ? [`${name}=${text}`] : [];
  });
}

function hashCredentials(request: HttpRequestLike): string {
  return createHash('sha256').update(credentialHeaders(request).join('\n')).digest('base64url');
}

function returnsStreamableFile(context: ExecutionContext): boolean {
  const type: unknown = Reflect.getMetadata(
    'design:returntype',
    context.getClass().prototype as object,
    context.getHandler().name,
  );
  return type === StreamableFile;
}

function isStream(value: unknown): boolean {
  return (
    value instanceof StreamableFile ||
    (typeof value === 'object' &&
      value !== null &&
      typeof (value as { pipe?: unknown }).pipe === 'function')
  );
}

function isStorableBody(value: unknown): boolean {
  return (
    value !== undefined &&
    !isStream(value) &&
    !ArrayBuffer.isView(value) &&
    !(value instanceof ArrayBuffer)
  );
}

/** The `X-Cache` of a stored response served to this request. */
function headerOf(status: 'hit' | 'shared' | 'stale'): CacheStatusHeader {
  return headerFor(status) ?? 'MISS';
}

/**
 * How one request's read of a key was answered, counted once the interceptor knows it is the
 * read that answered the request (not one that found another variant of the response). The
 * read may settle after that decision (a handler's run settles once its response is sent).
 */
class Tally {
  private outcome: [WrapStatus, Tier, StaleReason] | undefined;
  private counts: boolean | undefined;

  constructor(
    private readonly cache: CacheStack,
    private readonly key: string,
  ) {}

  readonly record: WrapTally = (status, tier, reason) => {
    this.outcome = [status, tier, reason];
    this.flush();
  };

  /** The read failed (the handler threw): it answered the request, with its error. */
  readonly fail = (error: unknown): never => {
    this.decide(true);
    throw error;
  };

  decide(counts: boolean): void {
    this.counts = counts;
    this.flush();
  }

  private flush(): void {
    if (this.counts !== true || this.outcome === undefined) return;
    const [status, tier, reason] = this.outcome;
    this.outcome = undefined;
    this.cache.countWrap(this.key, status, tier, reason);
  }
}
