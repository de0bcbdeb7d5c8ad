import {
  Injectable,
  type CallHandler,
  type ExecutionContext,
  type NestInterceptor,
} from '@nestjs/common';
import { tap, type Observable } from 'rxjs';
import { CacheStatusRecorder, withCacheStatus } from '../runtime/cache-status';
import { writeCacheStatus } from '../runtime/http-response';

/**
 * Writes `X-Cache: HIT | MISS` from the cached calls a request made: `HIT` when every
 * `@Cacheable` call (on the handler or in services it called) and every `cacheResult` function
 * call was answered from the cache, `MISS` when one ran its method, no header when none was
 * made. It caches nothing itself.
 *
 * A `@Cacheable` route handler writes its own `X-Cache` without it (it gets this interceptor
 * only when it takes `@Res()`/`@Next()` itself); apply it yourself to report caching done in
 * services (`CacheInterceptor` reports the same way on routes it does not cache). Has no
 * dependencies.
 *
 * @example
 * ```ts
 * @Controller('products')
 * @UseInterceptors(CacheStatusInterceptor)
 * export class ProductsController { ... } // GET /products/1 → X-Cache: HIT
 * ```
 */
@Injectable()
export class CacheStatusInterceptor implements NestInterceptor {
  /** Runs the handler with a recorder and writes what it recorded as `X-Cache`. */
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    if (context.getType() !== 'http') return next.handle();
    const recorder = new CacheStatusRecorder();
    return withCacheStatus(recorder, () => next.handle()).pipe(
      tap(() => writeCacheStatus(context, recorder.header)),
    );
  }
}
