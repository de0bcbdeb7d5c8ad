import { RedisServer } from './redis-server';

/**
 * Starts one `redis-server` for the whole run on a free loopback port and hands its URL to
 * the test workers through `CACHEKIT_TEST_REDIS_URL`. Suites that inject faults start their
 * own server instead (see `RedisServer`). Each test writes under its own namespace.
 */
export default async function globalSetup(): Promise<void> {
  const server = await RedisServer.start();
  process.env.CACHEKIT_TEST_REDIS_URL = server.url;
  (globalThis as { __CACHEKIT_REDIS__?: RedisServer }).__CACHEKIT_REDIS__ = server;
}
