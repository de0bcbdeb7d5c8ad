import { describeCacheContract } from './cache-contract';

describeCacheContract('memory', () => ({ provider: 'memory' }));
