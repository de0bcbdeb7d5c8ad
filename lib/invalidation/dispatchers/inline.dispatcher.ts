import { describeError, quote } from '../../utils/describe-value';
import { describeTargets } from './job-description';
import { RateLimitedLogger } from '../../utils/rate-limited-logger';
import type {
  InvalidationDispatcher,
  InvalidationExecutor,
  InvalidationJob,
} from '../../interfaces/invalidation-dispatcher.interface';

/**
 * The default dispatcher (`'inline'`): runs the job before the publishing call resolves — before
 * `publish(...)` resolves, before `emitAsync(...)` resolves, and before a TypeORM transaction's
 * `commit` resolves. A cache failure is logged (rate-limited), never thrown at the publisher.
 *
 * @example
 * ```ts
 * InvalidationRule({ event: User, fieldMapping: { userId: 'id' } }) // dispatcher: 'inline'
 * ```
 */
export class InlineDispatcher implements InvalidationDispatcher {
  private readonly log = new RateLimitedLogger();

  async dispatch(job: InvalidationJob, execute: InvalidationExecutor): Promise<void> {
    try {
      await execute(job);
    } catch (error) {
      this.log.error(
        `invalidation:${job.event}`,
        `Cache invalidation for ${quote(job.event)} failed (${describeTargets(job)}): ${describeError(error)}`,
      );
    }
  }
}
