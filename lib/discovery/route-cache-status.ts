import {
  CACHE_CLASS_METADATA,
  CACHE_OPERATIONS_METADATA,
  INJECTED_RESPONSE,
} from '../config/cache.constants';
import { CacheStatusInterceptor } from '../interceptors/cache-status.interceptor';
import {
  INTERCEPTORS_METADATA,
  METHOD_METADATA,
  PATH_METADATA,
  RESPONSE_PASSTHROUGH_METADATA,
  ROUTE_ARGS_METADATA,
  RouteParamtypes,
} from './nest-internals';
import { declaresResponse } from './cache-metadata.accessor';
import { cachedMethodOf, type CacheOperationMetadata } from '../decorators/cached-method';

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
 * `@Next()` itself, or that another decorator wraps again above `@Cacheable` (the wrapper
 * would see the extra argument), gets the {@link CacheStatusInterceptor} instead.
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
  if (typeof handler !== 'function' || wired.has(handler)) return;
  wired.add(handler);
  const isRoute =
    Reflect.getMetadata(PATH_METADATA, handler) !== undefined &&
    Reflect.getMetadata(METHOD_METADATA, handler) !== undefined;
  if (!isRoute) return;
  const method = cachedMethodOf(handler);
  const recorded = Reflect.getMetadata(CACHE_OPERATIONS_METADATA, handler) as
    CacheOperationMetadata[] | undefined;
  const cacheable = method
    ? method.operations.some((op) => op.kind === 'cacheable')
    : (recorded?.some((op) => op.decorator === 'Cacheable') ?? false);
  if (!cacheable) return;
  // Only the decorator's own wrapper may be handed the response: a decorator applied above
  // @Cacheable wraps it again and would see the extra argument (and a bare value on a hit).
  if (!method || method.wrapper !== handler || declaresResponse(method.declaringClass, name)) {
    addStatusInterceptor(handler);
    return;
  }
  const host = method.declaringClass;
  const args = routeArguments(host, name);
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
    {
      ...args,
      [`${RouteParamtypes.RESPONSE}:${index}`]: { index, data: INJECTED_RESPONSE, pipes: [] },
    },
    host,
    name,
  );
  Reflect.defineMetadata(RESPONSE_PASSTHROUGH_METADATA, true, host, name);
  method.responseIndex = index;
}

function routeArguments(host: object, name: string | symbol): Record<string, RouteArgument> {
  return (Reflect.getMetadata(ROUTE_ARGS_METADATA, host, name) ?? {}) as Record<
    string,
    RouteArgument
  >;
}

function addStatusInterceptor(handler: object): void {
  const interceptors = (Reflect.getOwnMetadata(INTERCEPTORS_METADATA, handler) ?? []) as unknown[];
  if (interceptors.includes(CacheStatusInterceptor)) return;
  Reflect.defineMetadata(INTERCEPTORS_METADATA, [...interceptors, CacheStatusInterceptor], handler);
}
