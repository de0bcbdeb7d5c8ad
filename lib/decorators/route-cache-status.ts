import { CACHE_CLASS_METADATA } from '../cache.constants';
import { CacheStatusInterceptor } from '../interceptors/cache-status.interceptor';
import {
  INTERCEPTORS_METADATA,
  METHOD_METADATA,
  PATH_METADATA,
  RESPONSE_PASSTHROUGH_METADATA,
  ROUTE_ARGS_METADATA,
  RouteParamtypes,
} from '../nest-internals';
import { cachedMethodOf } from './cached-method';

interface RouteArgument {
  index: number;
  data?: unknown;
  pipes?: unknown[];
}

/**
 * Gives every `@Cacheable` route handler of `controllers` a way to write `X-Cache` on its
 * response. Runs when an application is created, before Nest builds its routes (it reads this
 * metadata once, when it registers a route).
 *
 * The handler gets the response object as one more argument after its declared ones (Nest's
 * own `@Res({ passthrough: true })`: no pipes run on it and Nest still sends the result); the
 * decorator's wrapper takes it off again, so the method, its key and its conditions never see
 * it. That costs nothing per request, where an interceptor around the handler would cost about
 * a third of a small route's throughput (bench/RESULTS.md). A handler that takes `@Res()` or
 * `@Next()` itself keeps the {@link CacheStatusInterceptor} instead.
 *
 * Idempotent: a controller class shared by several applications is wired once.
 */
export function wireRouteCacheStatus(controllers: Iterable<unknown>): void {
  for (const controller of controllers) {
    if (typeof controller !== 'function') continue;
    const names = (Reflect.getMetadata(CACHE_CLASS_METADATA, controller) ?? []) as Array<
      string | symbol
    >;
    const prototype = (controller as { prototype: Record<string | symbol, unknown> }).prototype;
    for (const name of names) wireHandler(prototype[name], name);
  }
}

const wired = new WeakSet<object>();

function wireHandler(handler: unknown, name: string | symbol): void {
  const method = cachedMethodOf(handler);
  if (!method || wired.has(method)) return;
  wired.add(method);
  const fn = handler as object;
  const isRoute =
    Reflect.getMetadata(PATH_METADATA, fn) !== undefined &&
    Reflect.getMetadata(METHOD_METADATA, fn) !== undefined;
  if (!isRoute || !method.operations.some((op) => op.kind === 'cacheable')) return;

  const host = method.declaringClass;
  const args = (Reflect.getMetadata(ROUTE_ARGS_METADATA, host, name) ?? {}) as Record<
    string,
    RouteArgument
  >;
  const own = [RouteParamtypes.RESPONSE, RouteParamtypes.NEXT].map(String);
  if (Object.keys(args).some((key) => own.includes(key.split(':')[0]))) {
    // The handler answers through the response itself: passthrough is not ours to switch on.
    const interceptors = (Reflect.getOwnMetadata(INTERCEPTORS_METADATA, fn) ?? []) as unknown[];
    Reflect.defineMetadata(INTERCEPTORS_METADATA, [...interceptors, CacheStatusInterceptor], fn);
    return;
  }
  const declared = Reflect.getMetadata(
    'design:paramtypes',
    (host as { prototype: object }).prototype,
    name,
  ) as unknown[] | undefined;
  const index = Math.max(
    method.original.length,
    declared?.length ?? 0,
    ...Object.values(args).map((arg) => arg.index + 1),
  );
  Reflect.defineMetadata(
    ROUTE_ARGS_METADATA,
    { ...args, [`${RouteParamtypes.RESPONSE}:${index}`]: { index, data: undefined, pipes: [] } },
    host,
    name,
  );
  Reflect.defineMetadata(RESPONSE_PASSTHROUGH_METADATA, true, host, name);
  method.responseIndex = index;
}
