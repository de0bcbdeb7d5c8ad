import type { RedisServer } from './redis-server';

export default async function globalTeardown(): Promise<void> {
  await (globalThis as { __CACHEKIT_REDIS__?: RedisServer }).__CACHEKIT_REDIS__?.stop();
}
