import {
  Injectable,
  Optional,
  StreamableFile,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { HttpAdapterHost, Reflector } from '@nestjs/core';
import { createHash } from 'node:crypto';
import { lastValueFrom, of, tap, type Observable } from 'rxjs';
import { CacheMetadataAccessor } from '../cache-metadata.accessor';
import { CacheStatusRecorder, withCacheStatus } from '../cache-status';
import { CacheService, PEEK, WRAP_WITH_STATUS } from '../cache.service';
import { escapeKeyText } from '../keys/key-constructor.encoding';
import { writeCacheStatus } from './http-response';

interface HttpRequestLike {
  method?: string;
  url?: string;
  originalUrl?: string;
  headers?: Record<string, string | string[] | undefined>;
}

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
 * - `GET` responses are cached under `http:<url>` (or `@CacheKey`), for `@CacheTTL` seconds
 *   (default: the module's `ttl`); other methods are never cached.
 * - Concurrent requests for one uncached URL run the handler once.
 * - `X-Cache: HIT | MISS` is set on every cached route. Routes cached with `@Cacheable`
 *   (and routes whose handler calls `@Cacheable` services) report their decorators' status
 *   instead: `HIT` when every cached call hit.
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
  /** Reads `@CacheKey`, `@CacheTTL`, `@CachePerUser` and the decorators' metadata. */
  protected readonly metadata: CacheMetadataAccessor;

  constructor(
    protected readonly cache: CacheService,
    protected readonly reflector: Reflector,
    @Optional() protected readonly httpAdapterHost?: HttpAdapterHost,
  ) {
    this.metadata = new CacheMetadataAccessor(reflector);
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
    const key = this.keyFor(context);
    if (typeof key === 'string') {
      // A hit in the in-process store is answered here and now, with no Promise in between.
      const hit: unknown = this.cache[PEEK](key);
      if (hit !== undefined && isStorableBody(hit)) {
        writeCacheStatus(context, 'HIT');
        return of(hit);
      }
    }
    return this.serve(context, next, key);
  }

  private async serve(
    context: ExecutionContext,
    next: CallHandler,
    pending: string | undefined | Promise<string | undefined>,
  ): Promise<Observable<unknown>> {
    const key = await pending;
    if (key === undefined) return passThrough(context, next);

    const ttl = await this.ttlFor(context);
    const { value, status } = await this.cache[WRAP_WITH_STATUS]<unknown>(
      key,
      () => lastValueFrom(next.handle(), { defaultValue: undefined }),
      { ttl, unless: (body) => !isStorableBody(body) },
    );
    if (!isStorableBody(value)) {
      if (isStream(value)) {
        routesOf(context.getClass()).set(context.getHandler(), false);
        // A stream can be read once: a request that joined another's run needs its own.
        if (status === 'shared') return next.handle();
      }
      return of(value);
    }
    writeCacheStatus(context, status === 'hit' ? 'HIT' : 'MISS');
    return of(value);
  }

  /**
   * The base key of a request: `@CacheKey` if set, else `http:` + the request URL; `undefined`
   * leaves the request uncached. Override to change it (as in `@nestjs/cache-manager`).
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
    // per-user key layout below.
    return typeof url === 'string' && url.startsWith('/') ? `http:${url}` : undefined;
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

  /** The request's key; a Promise only when a `@CachePerUser` identify function is async. */
  private keyFor(context: ExecutionContext): string | undefined | Promise<string | undefined> {
    const base = this.trackBy(context);
    if (!base) return undefined;
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
    const ttl = this.metadata.getCacheTtl(context);
    return typeof ttl === 'function' ? await ttl(context) : ttl;
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
