import { Logger } from '@nestjs/common';

/**
 * Wraps Nest's {@link Logger} so a repeated warning (one per `topic`) is written at most once
 * per `intervalMs`; the next line written for that topic says how many were suppressed.
 * An outage therefore costs a few log lines, not one per cache call.
 */
export class RateLimitedLogger {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    readonly logger: Logger,
    private readonly intervalMs = 10_000,
  ) {}

  warn(topic: string, message: string): void {
    this.write('warn', topic, message);
  }

  error(topic: string, message: string): void {
    this.write('error', topic, message);
  }

  private write(level: 'warn' | 'error', topic: string, message: string): void {
    const now = Date.now();
    const entry = this.last.get(topic);
    if (entry && now - entry.at < this.intervalMs) {
      entry.suppressed++;
      return;
    }
    const suffix = entry?.suppressed ? ` (${entry.suppressed} similar messages suppressed)` : '';
    this.last.set(topic, { at: now, suppressed: 0 });
    if (this.last.size > 1000) this.last.delete(this.last.keys().next().value as string);
    this.logger[level](message + suffix);
  }
}
