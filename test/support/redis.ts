import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';

/** URL of the run's shared test Redis (started by the Jest global setup). */
export function sharedRedisUrl(): string {
  const url = process.env.CACHEKIT_TEST_REDIS_URL;
  if (!url) throw new Error('CACHEKIT_TEST_REDIS_URL is unset: run the tests through `npm test`.');
  return url;
}

/** A namespace no other test uses, so a test touches only data it created. */
export function uniqueNamespace(label = 'test'): string {
  return `${label}-${randomUUID().slice(0, 8)}`;
}

/** A plain ioredis client for inspecting what the adapter wrote (closed by the caller). */
export function inspector(url = sharedRedisUrl()): Redis {
  return new Redis(url, { lazyConnect: false, maxRetriesPerRequest: 1 });
}
