import { quote } from './describe-value';

/**
 * Keeps passwords out of log lines and error messages. Two layers, because a password can
 * reach a message in more forms than one pattern can recognise:
 *
 * 1. the passwords found in the configuration (Redis URLs and options, BullMQ connections)
 *    are registered with {@link registerRedisSecrets}, and {@link redact} masks every
 *    occurrence of each — as written, decoded, percent-encoded (any mix, either hex case),
 *    and JSON-escaped;
 * 2. whatever sits in the userinfo of a URL (`redis://user:<here>@host`) or in a
 *    `password=` query parameter is masked, registered or not.
 *
 * Every log line of the module goes through {@link redact} (see `CacheLogger`), and so does
 * the message of every error it throws (`CacheError`).
 */

const MASK = '***';

/**
 * Registered passwords shorter than this are masked inside URLs only: masking every `ab` of
 * every line would make the logs unreadable, and the module never writes a password outside
 * a URL on its own.
 */
export const MIN_SCRUBBED_SECRET_LENGTH = 4;

const secrets = new Set<string>();
let scrubber: RegExp | undefined;

/**
 * Registers a password so that {@link redact} masks it everywhere. Registered once per
 * process (a Set): registering the same password again costs nothing.
 */
export function registerSecret(secret: unknown): void {
  if (typeof secret !== 'string' || secret.length < MIN_SCRUBBED_SECRET_LENGTH) return;
  for (const form of new Set([secret, safeDecode(secret)])) {
    if (form.length < MIN_SCRUBBED_SECRET_LENGTH || secrets.has(form)) continue;
    secrets.add(form);
    scrubber = undefined;
  }
}

/**
 * Registers every password a Redis configuration carries: the password of a URL (raw, as the
 * URL parser reads it, and as a `?password=` parameter), `password` and `sentinelPassword`
 * options, the options of cluster nodes and sentinels, and the options of an ioredis client
 * (`client.options`). Accepts anything; what it does not recognise it ignores.
 */
export function registerRedisSecrets(config: unknown, depth = 0): void {
  if (depth > 4 || config === null || config === undefined) return;
  if (typeof config === 'string') {
    for (const secret of urlSecrets(config)) registerSecret(secret);
    return;
  }
  if (Array.isArray(config)) {
    for (const item of config as unknown[]) registerRedisSecrets(item, depth + 1);
    return;
  }
  if (typeof config !== 'object') return;
  const options = config as Record<string, unknown>;
  registerSecret(options.password);
  registerSecret(options.sentinelPassword);
  for (const nested of NESTED_OPTIONS) {
    // A client's `options` (ioredis keeps the parsed configuration there), nested option
    // objects, node lists. Getters of foreign objects may throw: ignore them.
    let value: unknown;
    try {
      value = options[nested];
    } catch {
      continue;
    }
    if (value !== config) registerRedisSecrets(value, depth + 1);
  }
}

/**
 * Masks passwords in `text`: every registered password (in any of its written forms), the
 * password in the userinfo of every URL (`redis://user:***@host`; a userinfo without a `:` is
 * masked whole) and `password=` / `sentinelPassword=` query parameters. A text that is itself
 * a URL the parser rejects (a password with `/`, `?` or `#`) is masked up to its last `@`.
 */
export function redact(text: string): string {
  if (typeof text !== 'string' || text.length === 0) return text;
  let out = text;
  if (secrets.size > 0) {
    scrubber ??= buildScrubber();
    out = out.replace(scrubber, MASK);
  }
  if (out.includes('//')) out = maskUserinfo(out);
  if (QUERY_SECRET.test(out)) {
    // A URL alone may hold raw spaces in a value; in free text a value ends at whitespace.
    out = out.replace(SCHEME_START.test(out) ? QUERY_SECRET_IN_URL : QUERY_SECRET_ALL, `$1${MASK}`);
  }
  return out;
}

/** @deprecated The former name of {@link redact}, which masks more than URLs. */
export const redactUrl = redact;

/** Passwords a Redis URL carries, in the forms a message could show them. */
function urlSecrets(url: string): string[] {
  const found: string[] = [];
  const start = url.indexOf('//');
  if (start !== -1) {
    const at = userinfoEnd(url, start + 2);
    if (at !== -1) {
      const userinfo = url.slice(start + 2, at);
      const colon = userinfo.indexOf(':');
      // Without a ':' there is no password; a lone name is still masked in messages.
      if (colon !== -1) found.push(userinfo.slice(colon + 1));
    }
  }
  try {
    const parsed = new URL(url);
    if (parsed.password) found.push(parsed.password, safeDecode(parsed.password));
    for (const name of ['password', 'sentinelPassword']) {
      const value = parsed.searchParams.get(name);
      if (value) found.push(value);
    }
  } catch {
    // Not a URL the parser accepts: the raw userinfo above is all there is.
  }
  return found;
}

/**
 * Index of the `@` that ends the userinfo of the URL whose authority starts at `from`, or -1.
 * When the whole text is a URL the parser accepts, the authority ends at the first `/`, `?` or
 * `#` (what the parser does); otherwise a password may hold those characters, so the last `@`
 * of the text counts. In free text (a log line), the URL ends at the first whitespace.
 */
function userinfoEnd(text: string, from: number): number {
  if (SCHEME_START.test(text)) {
    let parses = false;
    try {
      new URL(text);
      parses = true;
    } catch {
      // masked up to the last '@' below
    }
    if (!parses) return text.lastIndexOf('@');
    const end = text.slice(from).search(/[/?#]/);
    return text.lastIndexOf('@', end === -1 ? text.length : from + end - 1);
  }
  const rest = text.slice(from);
  const run = rest.search(/\s/);
  const word = run === -1 ? rest : rest.slice(0, run);
  const at = word.lastIndexOf('@');
  return at === -1 ? -1 : from + at;
}

function maskUserinfo(text: string): string {
  if (SCHEME_START.test(text)) return maskOne(text, text.indexOf('//') + 2);
  let out = '';
  let index = 0;
  for (const match of text.matchAll(URL_START)) {
    const from = (match.index ?? 0) + match[0].length;
    if (from < index) continue;
    const at = userinfoEnd(text, from);
    if (at === -1) continue;
    out += text.slice(index, from) + maskedUserinfo(text.slice(from, at));
    index = at;
  }
  return out + text.slice(index);
}

function maskOne(text: string, from: number): string {
  const at = userinfoEnd(text, from);
  if (at === -1 || at < from) return text;
  return text.slice(0, from) + maskedUserinfo(text.slice(from, at)) + text.slice(at);
}

function maskedUserinfo(userinfo: string): string {
  if (userinfo === MASK || userinfo.endsWith(`:${MASK}`)) return userinfo;
  const colon = userinfo.indexOf(':');
  return colon === -1 ? MASK : `${userinfo.slice(0, colon)}:${MASK}`;
}

const NESTED_OPTIONS = [
  'url',
  'client',
  'options',
  'redisOptions',
  'clusterOptions',
  'cluster',
  'sentinels',
] as const;
const SCHEME_START = /^[a-z][a-z0-9+.-]*:\/\//i;
const URL_START = /[a-z][a-z0-9+.-]*:\/\//gi;
const QUERY_SECRET_NAME = '([?&](?:password|sentinelPassword|pass|pwd)=)';
const QUERY_SECRET = new RegExp(QUERY_SECRET_NAME, 'i');
const QUERY_SECRET_ALL = new RegExp(`${QUERY_SECRET_NAME}[^&#\\s"']*`, 'gi');
const QUERY_SECRET_IN_URL = new RegExp(`${QUERY_SECRET_NAME}[^&#]*`, 'gi');

/**
 * One pattern for every registered password: each character may appear as itself or
 * percent-encoded (UTF-8, either hex case), and the JSON-escaped and quoted forms of the
 * whole password are alternatives. Longest first, so a password containing another is masked whole.
 */
function buildScrubber(): RegExp {
  const alternatives = new Set<string>();
  for (const secret of [...secrets].sort((a, b) => b.length - a.length)) {
    alternatives.add([...secret].map(charPattern).join(''));
    for (const escaped of [JSON.stringify(secret).slice(1, -1), quote(secret).slice(1, -1)]) {
      if (escaped !== secret) alternatives.add(escapeRegExp(escaped));
    }
  }
  return new RegExp([...alternatives].join('|'), 'g');
}

function charPattern(char: string): string {
  const encoded = [...Buffer.from(char, 'utf8')]
    .map((byte) => `%${hexPattern(byte >> 4)}${hexPattern(byte & 15)}`)
    .join('');
  return `(?:${escapeRegExp(char)}|${encoded})`;
}

function hexPattern(nibble: number): string {
  const digit = nibble.toString(16);
  return /[a-f]/.test(digit) ? `[${digit}${digit.toUpperCase()}]` : digit;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&');
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}
