import { Logger } from '@nestjs/common';
import { escapeLogLine } from './describe-value';
import { redact } from './redact';

/**
 * Logger context of every log line this module writes. Here, beside the logger, because utils
 * sit below config in the layer order; `config/cache.constants.ts` re-exports it.
 * @internal
 */
export const CACHE_LOGGER_CONTEXT = 'CacheModule';

/**
 * Nest's {@link Logger} with the context `CacheModule`, through which every line of this module
 * is written: each message (and each extra string argument, such as a stack) has its passwords
 * masked ({@link redact}), and a message cannot start a new line, whatever text reached it
 * ({@link escapeLogLine}). User-controlled text is still quoted where it is written
 * (`quote(key)`), so it reads as data.
 */
export class CacheLogger extends Logger {
  constructor(context: string = CACHE_LOGGER_CONTEXT) {
    super(context);
  }

  override log(message: unknown, ...rest: unknown[]): void {
    super.log(safeMessage(message), ...rest.map(safeParam));
  }

  override warn(message: unknown, ...rest: unknown[]): void {
    super.warn(safeMessage(message), ...rest.map(safeParam));
  }

  override error(message: unknown, ...rest: unknown[]): void {
    super.error(safeMessage(message), ...rest.map(safeParam));
  }

  override debug(message: unknown, ...rest: unknown[]): void {
    super.debug(safeMessage(message), ...rest.map(safeParam));
  }

  override verbose(message: unknown, ...rest: unknown[]): void {
    super.verbose(safeMessage(message), ...rest.map(safeParam));
  }

  override fatal(message: unknown, ...rest: unknown[]): void {
    super.fatal(safeMessage(message), ...rest.map(safeParam));
  }
}

/** A log message with passwords masked and line breaks escaped. */
export function safeLogMessage(message: string): string {
  return escapeLogLine(redact(message));
}

function safeMessage(message: unknown): unknown {
  return typeof message === 'string' ? safeLogMessage(message) : message;
}

// Stacks keep their line breaks; passwords are masked in them too.
function safeParam(param: unknown): unknown {
  return typeof param === 'string' ? redact(param) : param;
}

/**
 * Wraps a {@link CacheLogger} so a repeated warning (one per `topic`) is written at most once
 * per `intervalMs`; the next line written for that topic says how many were suppressed.
 * An outage therefore costs a few log lines, not one per cache call. Lines are made safe as
 * `CacheLogger` does, whichever logger is passed in.
 */
export class RateLimitedLogger {
  private readonly last = new Map<string, { at: number; suppressed: number }>();

  constructor(
    readonly logger: Logger = new CacheLogger(),
    private readonly intervalMs = 10_000,
  ) {}

  warn(topic: string, message: string): void {
    this.write('warn', topic, message);
  }

  error(topic: string, message: string): void {
    this.write('error', topic, message);
  }

  /** Writes `message` at LOG level, not rate-limited (for rare, good news). */
  log(message: string): void {
    this.logger.log(safeLogMessage(message));
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
    this.logger[level](safeLogMessage(message + suffix));
  }
}
