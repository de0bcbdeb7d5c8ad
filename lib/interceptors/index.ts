export * from './cache.interceptor';
export { CacheStatusInterceptor } from './cache-status.interceptor';
export { CACHE_STATUS_HEADER } from '../runtime/http-response';
