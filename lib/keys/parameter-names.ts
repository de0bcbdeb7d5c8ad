/**
 * Reads a function's parameter list from its source text (`Function.prototype.toString`), the
 * only way JavaScript offers: there is no `inspect.signature`. Handles methods, functions and
 * arrows, `async`/generators, computed names, comments, destructuring (unnamed), rest
 * parameters and default values, including TypeScript's ES5 output (`if (p === void 0) p = 1`)
 * and istanbul's coverage counters around defaults.
 */

/** A default value read from the source. */
export type ParameterDefault =
  | { readonly resolvable: true; readonly value: unknown }
  /** Not a literal (`= PAGE_SIZE`, `= new Date()`): it cannot be evaluated from outside. */
  | { readonly resolvable: false; readonly source: string };

/** One parameter of a function, as written in its source. */
export interface ParameterInfo {
  /** The parameter's name; `undefined` for a destructured parameter (`{ id }`, `[a, b]`). */
  readonly name: string | undefined;
  /** `true` for a rest parameter (`...args`). */
  readonly rest: boolean;
  /** The default value, when the parameter has one. */
  readonly default?: ParameterDefault;
}

const IDENT_START = /[A-Za-z_$\u00a0-\uffff]/;
const IDENT_PART = /[\w$\u00a0-\uffff]/;

/**
 * The parameters of `fn`, or `undefined` when its source is not available (native or bound
 * functions) or cannot be read.
 *
 * @example
 * ```ts
 * readParameters(function search(query, page = 1) {});
 * // [{ name: 'query', rest: false }, { name: 'page', rest: false, default: { resolvable: true, value: 1 } }]
 * ```
 */
export function readParameters(fn: (...args: never[]) => unknown): ParameterInfo[] | undefined {
  let source: string;
  try {
    source = Function.prototype.toString.call(fn);
  } catch {
    return undefined;
  }
  if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) return undefined;
  try {
    const list = findParameterList(source);
    if (!list) return undefined;
    const params = list.single
      ? [{ name: list.single, rest: false }]
      : splitTopLevel(stripComments(source.slice(list.start, list.end)), ',')
          .map((text) => text.trim())
          .filter((text) => text.length > 0)
          .map(parseParameter);
    return applyBodyDefaults(params, source.slice(list.end));
  } catch {
    return undefined;
  }
}

interface ParameterList {
  /** Index just after `(`. */
  start: number;
  /** Index of the matching `)` (or the end of a single unparenthesised arrow parameter). */
  end: number;
  /** Set for `x => ...`. */
  single?: string;
}

function findParameterList(src: string): ParameterList | undefined {
  let i = skipTrivia(src, 0);
  if (isWordAt(src, i, 'async')) {
    // `async(...)` may also be a method named async: either way the list follows.
    i = skipTrivia(src, i + 5);
  }
  if (isWordAt(src, i, 'function')) {
    i = skipTrivia(src, i + 8);
    if (src[i] === '*') i = skipTrivia(src, i + 1);
    if (IDENT_START.test(src[i] ?? '')) i = skipTrivia(src, readIdentifierEnd(src, i));
  } else {
    if (src[i] === '*') i = skipTrivia(src, i + 1);
    if (src[i] === '[') {
      i = skipTrivia(src, findClose(src, i) + 1);
    } else if (src[i] === '"' || src[i] === "'") {
      i = skipTrivia(src, skipString(src, i));
    } else if (src[i] === '#' || IDENT_START.test(src[i] ?? '') || /\d/.test(src[i] ?? '')) {
      const start = i;
      i = readIdentifierEnd(src, i + 1);
      const name = src.slice(start, i);
      i = skipTrivia(src, i);
      if (src.startsWith('=>', i)) return { start, end: start + name.length, single: name };
    }
  }
  if (src[i] !== '(') return undefined;
  return { start: i + 1, end: findClose(src, i) };
}

function isWordAt(src: string, i: number, word: string): boolean {
  return src.startsWith(word, i) && !IDENT_PART.test(src[i + word.length] ?? '');
}

function readIdentifierEnd(src: string, i: number): number {
  while (i < src.length && IDENT_PART.test(src[i])) i++;
  return i;
}

/** Skips whitespace and comments. */
function skipTrivia(src: string, i: number): number {
  for (;;) {
    while (i < src.length && /\s/.test(src[i])) i++;
    if (src.startsWith('//', i)) {
      const end = src.indexOf('\n', i);
      i = end === -1 ? src.length : end + 1;
    } else if (src.startsWith('/*', i)) {
      const end = src.indexOf('*/', i + 2);
      i = end === -1 ? src.length : end + 2;
    } else {
      return i;
    }
  }
}

/** `src[i]` opens a string (' or "); returns the index after its closing quote. */
function skipString(src: string, i: number): number {
  const quote = src[i];
  for (let j = i + 1; j < src.length; j++) {
    if (src[j] === '\\') j++;
    else if (src[j] === quote) return j + 1;
  }
  throw new Error('unterminated string');
}

/** `src[i]` opens a template literal; returns the index after its closing backtick. */
function skipTemplate(src: string, i: number): number {
  for (let j = i + 1; j < src.length; j++) {
    if (src[j] === '\\') j++;
    else if (src[j] === '`') return j + 1;
    else if (src[j] === '$' && src[j + 1] === '{') j = findClose(src, j + 1);
  }
  throw new Error('unterminated template');
}

/** Skips a string, template or comment starting at `i`; returns `i` if there is none. */
function skipOpaque(src: string, i: number): number {
  const c = src[i];
  if (c === '"' || c === "'") return skipString(src, i);
  if (c === '`') return skipTemplate(src, i);
  if (src.startsWith('//', i) || src.startsWith('/*', i)) return skipTrivia(src, i);
  return i;
}

/**
 * Walks `src` from `from`, skipping strings and templates, and calls `visit` with each other
 * character, its index and the bracket depth before it; stops at the first character for which
 * `visit` returns `true` and returns its index, or -1. The one scanner the parsers below share.
 */
function scanTopLevel(
  src: string,
  from: number,
  visit: (c: string, i: number, depth: number) => boolean,
): number {
  let depth = 0;
  let i = from;
  while (i < src.length) {
    const skipped = skipOpaque(src, i);
    if (skipped !== i) {
      i = skipped;
      continue;
    }
    const c = src[i];
    if (visit(c, i, depth)) return i;
    if (c === '(' || c === '[' || c === '{') depth++;
    else if (c === ')' || c === ']' || c === '}') depth--;
    i++;
  }
  return -1;
}

/** `src[i]` is `(`, `[` or `{`; returns the index of the bracket that closes it. */
function findClose(src: string, i: number): number {
  const close = scanTopLevel(src, i, (c, _, depth) => depth === 1 && ')]}'.includes(c));
  if (close === -1) throw new Error('unbalanced brackets');
  return close;
}

function stripComments(src: string): string {
  let out = '';
  let i = 0;
  while (i < src.length) {
    if (src.startsWith('//', i) || src.startsWith('/*', i)) {
      i = skipTrivia(src, i);
      out += ' ';
      continue;
    }
    const skipped = skipOpaque(src, i);
    if (skipped !== i) {
      out += src.slice(i, skipped);
      i = skipped;
      continue;
    }
    out += src[i++];
  }
  return out;
}

/** Splits at `separator` outside brackets, strings and templates. */
function splitTopLevel(src: string, separator: string): string[] {
  const parts: string[] = [];
  let from = 0;
  scanTopLevel(src, 0, (c, i, depth) => {
    if (c === separator && depth === 0) {
      parts.push(src.slice(from, i));
      from = i + 1;
    }
    return false;
  });
  parts.push(src.slice(from));
  return parts;
}

/** Index of the `=` that starts a default value (not `==`, `=>`, `<=`, ...), or -1. */
function findDefaultAssignment(src: string): number {
  return scanTopLevel(
    src,
    0,
    (c, i, depth) =>
      c === '=' &&
      depth === 0 &&
      src[i + 1] !== '=' &&
      src[i + 1] !== '>' &&
      !'=!<>'.includes(src[i - 1] ?? ''),
  );
}

function parseParameter(text: string): ParameterInfo {
  let rest = false;
  let body = text;
  if (body.startsWith('...')) {
    rest = true;
    body = body.slice(3).trim();
  }
  const eq = findDefaultAssignment(body);
  const target = (eq === -1 ? body : body.slice(0, eq)).trim();
  const name = /^[A-Za-z_$\u00a0-\uffff][\w$\u00a0-\uffff]*$/.test(target) ? target : undefined;
  if (eq === -1) return { name, rest };
  return { name, rest, default: parseDefault(body.slice(eq + 1)) };
}

// istanbul wraps defaults as `(cov_xyz().b[1][0]++, 1)` when collecting coverage.
const ISTANBUL_WRAPPER = /^\(\s*cov_[\w$]+\(\)\.b\[\d+\]\[\d+\]\+\+\s*,\s*([\s\S]*)\)$/;

function parseDefault(text: string): ParameterDefault {
  let source = text.trim();
  for (let m = ISTANBUL_WRAPPER.exec(source); m; m = ISTANBUL_WRAPPER.exec(source)) {
    source = m[1].trim();
  }
  const literal = parseLiteral(source);
  return literal.ok ? { resolvable: true, value: literal.value } : { resolvable: false, source };
}

type Parsed = { ok: true; value: unknown } | { ok: false };

/**
 * Parses the literals a default value is usually written as: numbers, strings, template
 * strings without substitutions, booleans, `null`, `undefined`, `void 0`, `{}` and `[]`.
 */
export function parseLiteral(text: string): Parsed {
  const src = text.trim();
  switch (src) {
    case 'true':
      return { ok: true, value: true };
    case 'false':
      return { ok: true, value: false };
    case 'null':
      return { ok: true, value: null };
    case 'undefined':
    case 'void 0':
      return { ok: true, value: undefined };
    default:
      break;
  }
  if (/^\{\s*\}$/.test(src)) return { ok: true, value: {} };
  if (/^\[\s*\]$/.test(src)) return { ok: true, value: [] };
  if (/^[+-]?(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d+)?$/.test(src)) {
    return { ok: true, value: Number(src.replace(/_/g, '')) };
  }
  const radix = /^([+-]?)(0[xXoObB][\da-fA-F_]+)$/.exec(src);
  if (radix) {
    const magnitude = Number(radix[2].replace(/_/g, ''));
    return { ok: true, value: radix[1] === '-' ? -magnitude : magnitude };
  }
  if (/^-?\d[\d_]*n$/.test(src))
    return { ok: true, value: BigInt(src.slice(0, -1).replace(/_/g, '')) };
  const quote = src[0];
  if ((quote === '"' || quote === "'" || quote === '`') && src.length >= 2 && src.endsWith(quote)) {
    try {
      if (skipOpaque(src, 0) !== src.length) return { ok: false };
    } catch {
      return { ok: false };
    }
    if (quote === '`' && src.includes('${')) return { ok: false };
    const value = unescape(src.slice(1, -1));
    return value === undefined ? { ok: false } : { ok: true, value };
  }
  return { ok: false };
}

const SIMPLE_ESCAPES: Record<string, string> = {
  n: '\n',
  r: '\r',
  t: '\t',
  b: '\b',
  f: '\f',
  v: '\v',
  '0': '\0',
};

function unescape(body: string): string | undefined {
  let out = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    const next = body[++i];
    if (next === undefined) return undefined;
    if (next in SIMPLE_ESCAPES && !(next === '0' && /\d/.test(body[i + 1] ?? ''))) {
      out += SIMPLE_ESCAPES[next];
    } else if (next === 'x') {
      const hex = body.slice(i + 1, i + 3);
      if (!/^[\da-fA-F]{2}$/.test(hex)) return undefined;
      out += String.fromCharCode(parseInt(hex, 16));
      i += 2;
    } else if (next === 'u') {
      const braced = /^\{([\da-fA-F]{1,6})\}/.exec(body.slice(i + 1));
      if (braced) {
        out += String.fromCodePoint(parseInt(braced[1], 16));
        i += braced[0].length;
      } else {
        const hex = body.slice(i + 1, i + 5);
        if (!/^[\da-fA-F]{4}$/.test(hex)) return undefined;
        out += String.fromCharCode(parseInt(hex, 16));
        i += 4;
      }
    } else if (next === '\n') {
      // line continuation
    } else if (/\d/.test(next)) {
      return undefined; // legacy octal escapes: not worth guessing
    } else {
      out += next;
    }
  }
  return out;
}

/** TypeScript's ES5 output moves defaults into the body: `if (page === void 0) { page = 1; }`. */
function applyBodyDefaults(params: ParameterInfo[], body: string): ParameterInfo[] {
  return params.map((param) => {
    if (param.default || !param.name || param.rest) return param;
    const name = param.name.replace(/\$/g, '\\$');
    const pattern = new RegExp(
      `if\\s*\\(\\s*${name}\\s*===\\s*void 0\\s*\\)\\s*\\{?\\s*${name}\\s*=\\s*([^;]+?)\\s*;`,
    );
    const match = pattern.exec(body);
    return match ? { ...param, default: parseDefault(match[1]) } : param;
  });
}
