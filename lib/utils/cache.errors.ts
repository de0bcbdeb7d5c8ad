import { escapeLogLine } from './describe-value';
import { redact } from './redact';

/**
 * Base class of every error this module throws, so callers can catch them as one family.
 * Its message never shows a password (see `redact`) and is one line (see `escapeLogLine`),
 * whatever text was put in it: Nest prints it as a log line when startup fails.
 */
export class CacheError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(escapeLogLine(redact(message)), options);
    this.name = new.target.name;
  }
}

/**
 * Thrown at startup when an option (or its environment variable) holds an invalid value.
 * The message names the option and the rejected value; URLs are shown without passwords.
 */
export class CacheConfigError extends CacheError {}

/**
 * Thrown by `set` (and the decorators' stores) when a value cannot be stored as JSON:
 * circular references, `BigInt`, functions, symbols, `Map`/`Set`, non-finite numbers.
 * The previous entry under the key is left untouched.
 */
export class CacheSerializationError extends CacheError {}

/** Thrown when a call argument is invalid (a TTL that is negative or not a number, ...). */
export class CacheArgumentError extends CacheError {}

/** Thrown when a cache key (or prefix) is not a non-empty string. */
export class CacheKeyError extends CacheArgumentError {}

/** Thrown at startup in `strict` mode when the Redis backend cannot be reached. */
export class CacheConnectionError extends CacheError {}
