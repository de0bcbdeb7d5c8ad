import { quote } from '../../utils/describe-value';
import type { InvalidationJob } from '../../interfaces/invalidation-dispatcher.interface';

/** `keys "a", "b"; prefixes "c"; tags "d"` — what a job was meant to drop, for the dispatchers' log lines. */
export function describeTargets(job: InvalidationJob): string {
  const parts: string[] = [];
  if (job.keys.length) {
    parts.push(`keys ${job.keys.slice(0, 5).map(quote).join(', ')}${more(job.keys)}`);
  }
  if (job.prefixes.length) {
    parts.push(`prefixes ${job.prefixes.slice(0, 5).map(quote).join(', ')}${more(job.prefixes)}`);
  }
  const tags = job.tags ?? [];
  if (tags.length) parts.push(`tags ${tags.slice(0, 5).map(quote).join(', ')}${more(tags)}`);
  return parts.join('; ') || 'nothing';
}

function more(list: readonly string[]): string {
  return list.length > 5 ? ` and ${list.length - 5} more` : '';
}
