import { escapeKeyText } from '../keys/key-constructor.encoding';

/** The request headers of an HTTP request, as Node parsed them (lower-case names). */
export type RequestHeaders = Record<string, string | string[] | undefined>;

/** What {@link storedEntry} needs of Nest's HTTP adapter. */
export interface HeaderReader {
  getHeader(response: unknown, name: string): unknown;
}

/**
 * A response as `CacheInterceptor` stores it. Every entry is wrapped, so no body can pass for
 * the metadata of another.
 */
export interface ResponseEntry {
  /** What the handler returned. */
  readonly body: unknown;
  /** The request headers its `Vary` names: lower case, sorted, unique. Absent: no `Vary`. */
  readonly vary?: readonly string[];
  /** Their values in the request that produced it, in `vary` order; `null`: absent. */
  readonly values?: readonly (string | null)[];
}

/** `true` for a well-formed {@link ResponseEntry} (anything else under a key is not served). */
export function isEntry(value: unknown): value is ResponseEntry {
  if (typeof value !== 'object' || value === null || !('body' in value)) return false;
  const { vary, values } = value as { vary?: unknown; values?: unknown };
  if (vary === undefined) return true;
  return (
    Array.isArray(vary) &&
    Array.isArray(values) &&
    vary.length === values.length &&
    vary.every((name) => typeof name === 'string') &&
    values.every((v) => typeof v === 'string' || v === null)
  );
}

/** `true` if `request` sends the same values as the request that produced `entry`. */
export function varyMatches(entry: ResponseEntry, headers: RequestHeaders): boolean {
  const { vary, values } = entry;
  if (vary === undefined || values === undefined) return true;
  for (let i = 0; i < vary.length; i++) {
    if (requestHeader(headers, vary[i]) !== values[i]) return false;
  }
  return true;
}

/**
 * The key of the variant of `entry`'s response that `request` would get: `base` and the
 * request's values of the headers `entry` varies on, encoded injectively
 * (`http:vary:<count>:<name>=<value>:...:<base>`; `~` for an absent header; names and values
 * escaped, so neither can contain `:`, `=` or `~`).
 */
export function variantKey(base: string, entry: ResponseEntry, headers: RequestHeaders): string {
  const vary = entry.vary ?? [];
  let key = `http:vary:${vary.length}:`;
  for (const name of vary) {
    const value = requestHeader(headers, name);
    key += `${escapeKeyText(name)}=${value === null ? '~' : escapeKeyText(value)}:`;
  }
  return key + base;
}

/**
 * The entry to store for a response that has been sent, or `undefined` if HTTP forbids a
 * shared cache to keep it: its status is not 200, its `Cache-Control` says `private`,
 * `no-store` or `no-cache`, it sets a cookie, or it varies on `*`. {@link storageVerdict} with
 * every rule on.
 */
export function storedEntry(
  response: unknown,
  adapter: HeaderReader | undefined,
  headers: RequestHeaders,
  body: unknown,
): ResponseEntry | undefined {
  const verdict = storageVerdict(response, adapter, headers, body, ALL_RULES, 200);
  return typeof verdict === 'string' ? undefined : verdict;
}

/** Why {@link storageVerdict} refused a response. */
export type StorageRefusal = 'status' | 'cacheControl' | 'setCookie' | 'vary';

/** The storage rules that can be turned off (the status rule cannot). */
export interface StorageRules {
  readonly cacheControl: boolean;
  readonly setCookie: boolean;
  readonly vary: boolean;
}

const ALL_RULES: StorageRules = Object.freeze({ cacheControl: true, setCookie: true, vary: true });

/**
 * The entry to store for a response that has been sent, or the rule that forbids a shared
 * cache to keep it: its status is not `status` (the one a replay gets), its `Cache-Control`
 * says `private`, `no-store` or `no-cache` (`cacheControl`), it sets a cookie (`setCookie`), or
 * it varies on `*` (`vary`). A rule turned off in `rules` is not checked; with `vary` off, the
 * response's `Vary` is ignored and one entry answers every request.
 *
 * Read through Nest's HTTP adapter (Express: the response; Fastify: the reply and its raw
 * response), once the response is on the wire, so whatever set the status or a header (the
 * handler, an interceptor on either side, a middleware, Nest's router) has had its say.
 */
export function storageVerdict(
  response: unknown,
  adapter: HeaderReader | undefined,
  headers: RequestHeaders,
  body: unknown,
  rules: StorageRules,
  status: number,
): ResponseEntry | StorageRefusal {
  if ((response as { statusCode?: unknown }).statusCode !== status) return 'status';
  const read = (name: string) => readHeader(response, adapter, name);
  if (rules.cacheControl && UNSTORABLE.test(headerText(read('cache-control')))) {
    return 'cacheControl';
  }
  if (rules.setCookie && headerText(read('set-cookie')) !== '') return 'setCookie';
  if (!rules.vary) return { body };
  const vary = varyNames(headerText(read('vary')));
  if (vary === undefined) return 'vary';
  if (vary.length === 0) return { body };
  return { body, vary, values: vary.map((name) => requestHeader(headers, name)) };
}

/** What {@link restoreVary} needs of Nest's HTTP adapter. */
export interface HeaderWriter extends HeaderReader {
  setHeader(response: unknown, name: string, value: string): unknown;
}

/**
 * Puts back on a cached answer the `Vary` names its entry was stored with, where the response
 * does not already name them: a `Vary` set by the handler or an interceptor inside
 * `CacheInterceptor` did not run on a hit, and a browser or CDN must still see it.
 */
export function restoreVary(
  response: unknown,
  adapter: HeaderWriter | undefined,
  names: readonly string[],
): void {
  const current = headerText(readHeader(response, adapter, 'vary'));
  const present = current === '' ? [] : current.split(',').map((n) => n.trim().toLowerCase());
  const missing = names.filter((name) => !present.includes(name));
  if (missing.length === 0) return;
  const value = current === '' ? missing.join(', ') : `${current}, ${missing.join(', ')}`;
  if (adapter) adapter.setHeader(response, 'Vary', value);
  else (response as { setHeader?: (n: string, v: string) => unknown }).setHeader?.('Vary', value);
}

/**
 * `private` (also `private="Set-Cookie"`), `no-store`, and `no-cache` (a cached copy would have
 * to be revalidated with the server on every use, which an application cache cannot do), in
 * any case, anywhere in the list.
 */
const UNSTORABLE = /(?:^|,)\s*(?:private|no-store|no-cache)\s*(?:[=,]|$)/i;

/** Lower-case names of a `Vary` value, sorted and unique; `undefined` for `*`. */
function varyNames(text: string): string[] | undefined {
  if (text === '') return [];
  const names = new Set<string>();
  for (const part of text.split(',')) {
    const name = part.trim().toLowerCase();
    if (name === '*') return undefined;
    if (name !== '') names.add(name);
  }
  return [...names].sort();
}

/** A response header through the adapter, or Node's `getHeader` without one. */
function readHeader(response: unknown, adapter: HeaderReader | undefined, name: string): unknown {
  return adapter
    ? adapter.getHeader(response, name)
    : (response as { getHeader?: (name: string) => unknown }).getHeader?.(name);
}

/** A response header as one string (lines joined with `,`); `''` when absent. */
function headerText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.join(',');
  return typeof value === 'number' ? String(value) : '';
}

/** A request header as one string, `null` when absent; never read from the prototype. */
function requestHeader(headers: RequestHeaders, name: string): string | null {
  if (!Object.prototype.hasOwnProperty.call(headers, name)) return null;
  const value = headers[name];
  if (value === undefined) return null;
  return Array.isArray(value) ? value.join(', ') : value;
}

/**
 * The host part of a default key: the host name as the platform reports it, case kept,
 * escaped so that it contains neither `:` nor `/`.
 */
export function hostKey(host: string): string {
  const escaped = escapeKeyText(host);
  return escaped.includes('/') ? escaped.replace(/\//g, '%2F') : escaped;
}

/**
 * Resolves `true` once the headers of `response` have been written — its status and headers
 * are then final, whoever set them — or `false` if the response was closed first (the client
 * went away) or its headers were already out. A response object without events (not Node's)
 * resolves `true` at once.
 *
 * The decision point is the header write, not `'finish'`: waiting for the body to be flushed
 * would make every request that joined this one wait for the slowest client's download (one
 * that never reads would stall the URL for everyone). `writeHead` is wrapped and the decision
 * taken after the original returns, so listeners that others hooked on it (compression's
 * `Vary`, `on-headers` users) have run; Node calls `writeHead` for implicit headers too.
 */
export function whenSent(response: unknown): Promise<boolean> {
  const raw = rawResponse(response);
  if (!raw) return Promise.resolve(true);
  if (raw.headersSent || raw.writableEnded || raw.destroyed) return Promise.resolve(false);
  return new Promise<boolean>((resolve) => {
    const original = raw.writeHead;
    const closed = () => done(false);
    const done = (written: boolean) => {
      raw.off('close', closed);
      if (raw.writeHead === writeHead) raw.writeHead = original;
      resolve(written);
    };
    const writeHead = function (this: unknown, ...args: unknown[]): unknown {
      const result = original.apply(this, args);
      done(true);
      return result;
    };
    raw.writeHead = writeHead;
    raw.once('close', closed);
  });
}

/** `true` if the headers of `response` are already on the wire. */
export function headersSent(response: unknown): boolean {
  return rawResponse(response)?.headersSent === true;
}

interface RawResponse {
  headersSent?: boolean;
  writeHead: (...args: unknown[]) => unknown;
  writableEnded?: boolean;
  writableFinished?: boolean;
  destroyed?: boolean;
  once(event: string, listener: () => void): unknown;
  off(event: string, listener: () => void): unknown;
}

/** Node's response: an Express response itself, a Fastify reply's `raw`. */
function rawResponse(response: unknown): RawResponse | undefined {
  if (typeof response !== 'object' || response === null) return undefined;
  const raw = (response as { raw?: unknown }).raw ?? response;
  return typeof raw === 'object' &&
    raw !== null &&
    typeof (raw as RawResponse).once === 'function' &&
    typeof (raw as RawResponse).writeHead === 'function' &&
    typeof (raw as RawResponse).off === 'function'
    ? (raw as RawResponse)
    : undefined;
}
