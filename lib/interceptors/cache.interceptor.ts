import {
  Injectable,
  Optional,
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
  storedEntry,
  variantKey,
  varyMatches,
  whenSent,
  type RequestHeaders,
  type ResponseEntry,
} from './http-cache-rules';
import { writeCacheStatus } from '../runtime/http-response';
import { ttlProblem } from '../config/validators';
import { CacheArgumentError, CacheKeyError } from '../utils/cache.errors';
import { describeError, describeValue, quote } from '../utils/describe-value';
import { RateLimitedLogger } from '../utils/rate-limited-logger';

/** Failures of routes' cache metadata, at most one line per route and kind every 10 s. */
const routeLog = new RateLimitedLogger();

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
 * Subclass it and override {@link trackBy} or {@link isRequestCacheable} to change what is
 * cached, as with `@nestjs/cache-manager`.
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
 * ```
 */
@Injectable()
export class CacheInterceptor implements NestInterceptor {
  /** @internal Reads `@CacheKey`, `@CacheTTL`, `@CachePerUser` and the decorators' metadata. */
  protected readonly metadata: RouteCacheMetadata;

  /** @internal Nest builds the interceptor; the cache stack is not part of the public API. */
  constructor(
    /** @internal The application's cache stack. */
    protected readonly cache: CacheStack,
    protected readonly reflector: Reflector,
    @Optional() protected readonly httpAdapterHost?: HttpAdapterHost,
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
    let key: string | undefined | Promise<string | undefined>;
    try {
      key = this.keyFor(context);
    } catch (error) {
      return this.uncached(context, next, 'key', undefined, error);
    }
    if (typeof key === 'string') {
      // A hit in the in-process store is answered here and now, with no Promise in between.
      const entry = this.peek(key, headersOf(context));
      if (entry) return of(this.cached(context, entry, 'HIT'));
    }
    return this.serve(context, next, key);
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
    let answer = await this.lookup(context, next, key, ttl, first.record).catch(first.fail);
    if (answer.kind === 'cached' && !varyMatches(answer.entry, headers)) {
      // Cached for other values of the request headers the response varies on: this
      // request's variant has its own key.
      first.decide(false);
      const variant = variantKey(key, answer.entry, headers);
      const second = new Tally(this.cache, variant);
      answer = await this.lookup(context, next, variant, ttl, second.record).catch(second.fail);
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
        return this.respond(context, next, handOver).catch((error: unknown) => {
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
  ): Promise<Outcome> {
    const response: unknown = context.getArgByIndex(1);
    // Listening from the start: the client may go away while the handler runs.
    const sent = whenSent(response);
    const body: unknown = await lastValueFrom(next.handle(), { defaultValue: undefined });
    // Something else already answered (a handler writing through `req.res`): not this body.
    const answeredElsewhere = headersSent(response);
    handOver({ kind: 'ran', body });
    if (answeredElsewhere || !isStorableBody(body) || !(await sent)) return NOT_STORED;
    try {
      return (
        storedEntry(response, this.httpAdapterHost?.httpAdapter, headersOf(context), body) ??
        NOT_STORED
      );
    } catch {
      // A response object that cannot be read is not one we can vouch for.
      return NOT_STORED;
    }
  }

  /** Answers with a stored response: its `X-Cache`, its `Vary`, its body. */
  private cached(
    context: ExecutionContext,
    entry: ResponseEntry,
    status: CacheStatusHeader,
  ): unknown {
    writeCacheStatus(context, status);
    if (entry.vary) {
      restoreVary(context.getArgByIndex(1), this.httpAdapterHost?.httpAdapter, entry.vary);
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
   * The base key of a request: `@CacheKey` if set (used as given), else `http:` + the host name
   * the request was sent to (escaped, case kept, no port) + its URL; `undefined` leaves the
   * request uncached. Override to change it (as in `@nestjs/cache-manager`).
   */
  protected trackBy(context: ExecutionContext): string | undefined {
    const custom = this.metadata.getCacheKey(context);
    if (typeof custom === 'string') return custom;
    if (typeof custom === 'function') return custom(context) || undefined;
    const request = requestOf(context);
    const adapter = this.httpAdapterHost?.httpAdapter;
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

  /** Only `GET` requests are cached. Override to narrow it further. */
  protected isRequestCacheable(context: ExecutionContext): boolean {
    const request = requestOf(context);
    const adapter = this.httpAdapterHost?.httpAdapter;
    const method = adapter ? (adapter.getRequestMethod(request) as string) : request.method;
    return method === 'GET';
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

  /** The request's key; a Promise only when a `@CachePerUser` identify function is async. */
  private keyFor(context: ExecutionContext): string | undefined | Promise<string | undefined> {
    const base: unknown = this.trackBy(context);
    if (!base) return undefined;
    if (typeof base !== 'string') {
      throw new CacheKeyError(`the key is ${describeValue(base)}, expected a string`);
    }
    const credentialed = this.hasCredentials(context);
    const perUser = this.metadata.getPerUser(context);
    if (!perUser) return credentialed ? undefined : base;
    const identity = perUser.identify
      ? perUser.identify(context)
      : credentialed
        ? hashCredentials(requestOf(context))
        : undefined;
    // Any thenable (a query builder, a Promise from another realm), not only a native Promise.
    return isThenable(identity)
      ? Promise.resolve(identity).then((resolved) => userKey(base, resolved, credentialed))
      : userKey(base, identity, credentialed);
  }

  private async ttlFor(context: ExecutionContext): Promise<number | undefined> {
    const declared = this.metadata.getCacheTtl(context);
    const ttl: unknown = typeof declared === 'function' ? await declared(context) : declared;
    if (ttl === undefined) return undefined;
    const problem = ttlProblem(ttl);
    if (problem) {
      throw new CacheArgumentError(`the TTL is ${describeValue(ttl)}, expected ${problem}`);
    }
    return ttl as number;
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
