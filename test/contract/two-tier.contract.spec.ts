import { sharedRedisUrl, uniqueNamespace } from '../support/redis';
import { describeCacheContract } from './cache-contract';

// Two tiers (L1 in front of Redis, kept coherent by the bus): the same contract as every backend.
describeCacheContract('redis + l1', () => ({
  provider: 'redis',
  redis: { url: sharedRedisUrl() },
  namespace: uniqueNamespace('contract-l1'),
  l1: true,
}));

describeCacheContract('redis + l1 + failover', () => ({
  provider: 'redis',
  redis: { url: sharedRedisUrl() },
  namespace: uniqueNamespace('contract-l1-failover'),
  l1: true,
  failover: true,
}));

describeCacheContract('redis + l1, bus: false', () => ({
  provider: 'redis',
  redis: { url: sharedRedisUrl() },
  namespace: uniqueNamespace('contract-l1-nobus'),
  l1: { ttl: 30, maxEntries: 1000 },
  bus: false,
}));
