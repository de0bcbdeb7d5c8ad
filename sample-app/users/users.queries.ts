import { InvalidationRule, cacheResult } from '../../lib';
import { User } from './user';
import { UserStatsKey } from './users.keys';

/**
 * Function-level caching for code outside Nest classes (Restflow's `@cache_result`): cached under
 * `UserStatsKey` in the running application's cache and dropped whenever a `User` is saved.
 */
export const computeUserStats = cacheResult(
  async (userId: number) => {
    await new Promise((resolve) => setTimeout(resolve, 50)); // an expensive aggregation
    return { userId, logins: 40 + userId, computedAt: new Date().toISOString() };
  },
  {
    key: UserStatsKey,
    ttl: 600,
    invalidateOn: [InvalidationRule({ event: User, fieldMapping: { userId: 'id' } })],
  },
);
