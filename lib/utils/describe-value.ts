/**
 * The one short description of a value for error messages: strings are {@link quote}d,
 * numbers, booleans and `undefined` written out, objects, arrays and functions named, never
 * printed (they may be large or hold secrets).
 */
export function describeValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return quote(value);
    case 'number':
    case 'boolean':
    case 'undefined':
      return String(value);
    case 'bigint':
      return `${value}n`;
    case 'function':
      return 'a function';
    case 'symbol':
      return 'a symbol';
    default:
      if (value === null) return 'null';
      return Array.isArray(value) ? 'an array' : 'an object';
  }
}

/** Longest text {@link quote} writes out in full; a longer one is cut, saying by how much. */
export const MAX_QUOTED_LENGTH = 1000;

/**
 * Writes user-controlled text — a key, prefix, pattern, tag, event name, or a message from
 * user code — into a log line or error message as a double-quoted JSON string, so it can
 * neither end the line nor pass for our own words: quotes, backslashes, control characters
 * (newlines, carriage returns, ANSI escapes) and unpaired surrogates are escaped by JSON, and
 * the characters a terminal or log viewer may still treat as a line break or a direction
 * change (DEL and C1 controls such as NEL, U+2028/U+2029, bidirectional overrides) are
 * escaped as `\uXXXX` too. Text longer than {@link MAX_QUOTED_LENGTH} is cut.
 *
 * @example
 * ```ts
 * quote('user:1\nWARN forged'); // '"user:1\\nWARN forged"'
 * ```
 */
export function quote(text: string): string {
  const cut =
    text.length > MAX_QUOTED_LENGTH
      ? JSON.stringify(text.slice(0, MAX_QUOTED_LENGTH)) +
        `...(${text.length - MAX_QUOTED_LENGTH} more characters)`
      : JSON.stringify(text);
  return LINE_UNSAFE.test(cut) ? cut.replace(LINE_UNSAFE_ALL, unicodeEscape) : cut;
}

/**
 * Makes a finished log line safe to write: every character that {@link quote} escapes is
 * escaped here too (`\n` as `\n`, others as `\uXXXX`), so text that reached the line unquoted
 * (an error message from a driver, say) cannot start a new line either. Lines without such
 * characters are returned as they are.
 */
export function escapeLogLine(line: string): string {
  if (!CONTROL.test(line) && !LINE_UNSAFE.test(line) && !LONE_SURROGATE.test(line)) return line;
  return line
    .replace(CONTROL_ALL, (char) => SHORT_ESCAPES[char] ?? unicodeEscape(char))
    .replace(LINE_UNSAFE_ALL, unicodeEscape)
    .replace(LONE_SURROGATE_ALL, unicodeEscape);
}

// Characters JSON.stringify leaves raw that still break or disguise a line: DEL and the C1
// controls (U+0085 is NEL), the Unicode line and paragraph separators, and the bidirectional
// marks and overrides (U+061C, U+200E-F, U+202A-E, U+2066-9) that reorder what is displayed.
const LINE_UNSAFE_SOURCE = '[\\u007f-\\u009f\\u061c\\u200e\\u200f\\u2028-\\u202e\\u2066-\\u2069]';
const LINE_UNSAFE = new RegExp(LINE_UNSAFE_SOURCE);
const LINE_UNSAFE_ALL = new RegExp(LINE_UNSAFE_SOURCE, 'g');
// eslint-disable-next-line no-control-regex -- control characters are what is being escaped
const CONTROL = /[\u0000-\u001f]/;
// eslint-disable-next-line no-control-regex -- control characters are what is being escaped
const CONTROL_ALL = /[\u0000-\u001f]/g;
const LONE_SURROGATE_SOURCE =
  '[\\ud800-\\udbff](?![\\udc00-\\udfff])|(?<![\\ud800-\\udbff])[\\udc00-\\udfff]';
const LONE_SURROGATE = new RegExp(LONE_SURROGATE_SOURCE);
const LONE_SURROGATE_ALL = new RegExp(LONE_SURROGATE_SOURCE, 'g');
const SHORT_ESCAPES: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function unicodeEscape(char: string): string {
  return `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`;
}

/**
 * The message of an error for a log line: as it is for errors of this module (their messages
 * already quote what they show), {@link quote}d for anything else — an error thrown by user
 * code (a key function, `condition`, `unless`, a `fieldMapping`) is user-controlled text.
 * Never throws, whatever was thrown.
 */
export function describeError(error: unknown): string {
  try {
    if (error instanceof Error && OWN_ERROR_NAMES.has(error.name)) return error.message;
    return quote(error instanceof Error ? String(error.message) : String(error));
  } catch {
    return 'an error that cannot be printed';
  }
}

// By name, not class: utils sit below cache.errors in the dependency order.
const OWN_ERROR_NAMES = new Set([
  'CacheError',
  'CacheConfigError',
  'CacheSerializationError',
  'CacheArgumentError',
  'CacheKeyError',
  'CacheConnectionError',
  'CacheLoaderTimeoutError',
]);
