import { freePort } from '../support/redis-server';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';
import { describeCacheContract } from './cache-contract';

// Redis healthy: the failover layer must behave exactly like the other backends.
describeCacheContract('redis + failover', () => ({
  provider: 'redis',
  redis: { url: sharedRedisUrl() },
  namespace: uniqueNamespace('contract-failover'),
  failover: true,
}));

// Redis unreachable from the start: the in-memory fallback alone must still honour the contract.
let deadPort = 0;
beforeAll(async () => {
  deadPort = await freePort();
});
describeCacheContract('redis + failover, Redis unreachable', () => ({
  provider: 'redis',
  redis: { url: `redis://127.0.0.1:${deadPort}`, retryStrategy: () => 60_000 },
  namespace: uniqueNamespace('contract-failover-down'),
  failover: true,
}));
