import type { LoggerService } from '@nestjs/common';

/** A Nest logger that keeps every line, to assert on what users would see in their logs. */
export class CapturingLogger implements LoggerService {
  readonly lines: Array<{ level: string; message: string; context?: string }> = [];

  log(message: unknown, context?: string): void {
    this.push('log', message, context);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.push('error', message, rest.map(String).join(' '));
  }
  warn(message: unknown, context?: string): void {
    this.push('warn', message, context);
  }
  debug(message: unknown, context?: string): void {
    this.push('debug', message, context);
  }
  verbose(message: unknown, context?: string): void {
    this.push('verbose', message, context);
  }

  /** Every line (message and context) as one string. */
  get text(): string {
    return this.lines.map((l) => `${l.level} ${l.context ?? ''} ${l.message}`).join('\n');
  }

  warnings(): string[] {
    return this.lines.filter((l) => l.level === 'warn').map((l) => l.message);
  }

  private push(level: string, message: unknown, context?: string): void {
    this.lines.push({
      level,
      message: message instanceof Error ? `${message.message}\n${message.stack}` : String(message),
      context,
    });
  }
}
