import { sharedRedisUrl, uniqueNamespace } from '../support/redis';
import { describeCacheContract } from './cache-contract';

describeCacheContract('redis', () => ({
  provider: 'redis',
  redis: { url: sharedRedisUrl() },
  namespace: uniqueNamespace('contract'),
}));
