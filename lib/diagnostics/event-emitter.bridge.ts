import type { ModuleRef } from '@nestjs/core';

/** The part of `EventEmitter2` (from `@nestjs/event-emitter`) the bridges use. */
export interface EventEmitterLike {
  on(event: string | symbol, listener: (...args: unknown[]) => unknown): unknown;
  off(event: string | symbol, listener: (...args: unknown[]) => unknown): unknown;
  emit?(event: string | symbol, ...values: unknown[]): unknown;
  emitAsync?(event: string | symbol, ...values: unknown[]): Promise<unknown[]>;
  hasListeners?(event?: string): boolean;
}

/**
 * The application's `EventEmitter2`, when `@nestjs/event-emitter` is installed and its
 * `EventEmitterModule.forRoot()` is imported; otherwise `undefined` (nothing else changes).
 */
export function findEventEmitter(moduleRef: ModuleRef): EventEmitterLike | undefined {
  let token: unknown;
  try {
    // Optional peer dependency, loaded lazily so the library works without it.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    token = (require('@nestjs/event-emitter') as { EventEmitter2?: unknown }).EventEmitter2;
  } catch {
    return undefined;
  }
  if (typeof token !== 'function') return undefined;
  try {
    const emitter = moduleRef.get<unknown, unknown>(token, { strict: false });
    return isEmitter(emitter) ? emitter : undefined;
  } catch {
    return undefined; // EventEmitterModule is not imported by this application
  }
}

function isEmitter(value: unknown): value is EventEmitterLike {
  return (
    typeof value === 'object' &&
    value !== null &&
    typeof (value as EventEmitterLike).on === 'function' &&
    typeof (value as EventEmitterLike).off === 'function'
  );
}
