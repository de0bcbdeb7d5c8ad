import { describeError, quote } from '../../utils/describe-value';
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
        `Cache invalidation for ${quote(job.event)} failed (${describeTargets(job)}): ${reason(error)}`,
      );
    }
  }
}

/** `keys "a", "b"; prefixes "c"` — what a job was meant to drop, for log lines. */
export function describeTargets(job: InvalidationJob): string {
  const parts: string[] = [];
  if (job.keys.length) {
    parts.push(`keys ${job.keys.slice(0, 5).map(quote).join(', ')}${more(job.keys)}`);
  }
  if (job.prefixes.length) {
    parts.push(`prefixes ${job.prefixes.slice(0, 5).map(quote).join(', ')}${more(job.prefixes)}`);
  }
  return parts.join('; ') || 'nothing';
}

/** The message of an error for a log line (quoted unless it is one of this module's). */
export function reason(error: unknown): string {
  return describeError(error);
}

function more(list: readonly string[]): string {
  return list.length > 5 ? ` and ${list.length - 5} more` : '';
}
