import { CacheKeyError } from '../utils/cache.errors';
import { encodeKeyValue, escapeKeyText } from './key-constructor.encoding';
import type { ParameterInfo } from './parameter-names';

/** The method a key belongs to, as seen when the decorator is applied. */
export interface MethodSignature {
  readonly className: string;
  readonly methodName: string;
  /**
   * The class that declares the method (`className` is its name). Default keys are qualified
   * per provider through it (see `bindDefaultKeyOwners`).
   */
  readonly declaringClass?: object;
  /** Read from the method's source; `undefined` when it is unavailable. */
  readonly parameters: readonly ParameterInfo[] | undefined;
}

/** Stands for an omitted argument whose default value is not a literal (rendered `~default`). */
export const UNRESOLVED_DEFAULT: unique symbol = Symbol('cachekit:unresolved-default');

/**
 * Writes one value as a key segment with the key encoding shared with `KeyConstructor`
 * (`encodeKeyValue`: text escaped, `~` tags for non-text), then percent-encodes the
 * template's own separator characters (`extra`) so they cannot appear raw in a value.
 */
export function renderTemplateValue(
  value: unknown,
  label: string,
  extra: ReadonlySet<string> = NO_EXTRA,
): string {
  // Numbers and plain strings, the usual key parts, skip the general encoder (same output).
  const text =
    typeof value === 'number'
      ? String(value)
      : typeof value === 'string'
        ? escapeKeyText(value)
        : value === UNRESOLVED_DEFAULT
          ? '~default'
          : encodeKeyValue(value, label);
  if (extra.size === 0) return text;
  let out = '';
  for (const char of text) out += extra.has(char) ? percentEncode(char) : char;
  return out;
}

const NO_EXTRA: ReadonlySet<string> = new Set();

function percentEncode(char: string): string {
  // A lone surrogate has no UTF-8 form (Buffer writes U+FFFD for both halves): its code unit's
  // own 3 bytes (CESU-8), which UTF-8 never produces, keep '\uD800' and '\uDC00' apart.
  const unit = char.charCodeAt(0);
  const bytes =
    char.length === 1 && unit >= 0xd800 && unit <= 0xdfff
      ? [0xe0 | (unit >> 12), 0x80 | ((unit >> 6) & 0x3f), 0x80 | (unit & 0x3f)]
      : Buffer.from(char, 'utf8');
  let out = '';
  for (const byte of bytes) {
    out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** A literal run of a template. */
interface LiteralPart {
  readonly literal: string;
}

/** A `{...}` placeholder of a template. */
interface PlaceholderPart {
  /** The placeholder as written, without braces. */
  readonly source: string;
  /** A parameter name or a position. */
  readonly root: string | number;
  /** Property names (or indexes) walked from the root. */
  readonly path: readonly string[];
}

type TemplatePart = LiteralPart | PlaceholderPart;

const PLACEHOLDER = /^\s*([A-Za-z_$][\w$]*|\d+)((?:\.(?:[A-Za-z_$][\w$]*|\d+))*)\s*$/;

/** What a rendered template may read: the call's arguments and, after the call, its result. */
export interface TemplateCall {
  readonly args: readonly unknown[];
  readonly hasResult: boolean;
  readonly result?: unknown;
}

/** A template checked against a method, ready to render keys. */
export interface CompiledKeyTemplate {
  /** The template as written. */
  readonly template: string;
  /** `true` if it reads `{result}`, so it can only be rendered after the call. */
  readonly usesResult: boolean;
  /** Renders the key of one call; throws {@link CacheKeyError} if a value has no key text. */
  render(this: void, call: TemplateCall): string;
}

/**
 * Splits a template into literal runs and placeholders. Throws {@link CacheKeyError} on
 * unbalanced braces, empty or malformed placeholders, and adjacent placeholders (`{a}{b}`
 * could not be told apart).
 */
export function parseKeyTemplate(template: string): TemplatePart[] {
  if (typeof template !== 'string' || template.length === 0) {
    throw new CacheKeyError('A key template must be a non-empty string.');
  }
  const parts: TemplatePart[] = [];
  let literal = '';
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if (c === '}') {
      throw new CacheKeyError(
        `Key template "${template}" has a "}" without "{" at position ${i}; braces only delimit placeholders.`,
      );
    }
    if (c !== '{') {
      literal += c;
      continue;
    }
    const end = template.indexOf('}', i + 1);
    const inner = end === -1 ? undefined : template.slice(i + 1, end);
    if (inner === undefined || inner.includes('{')) {
      throw new CacheKeyError(`Key template "${template}" has an unclosed "{" at position ${i}.`);
    }
    const match = PLACEHOLDER.exec(inner);
    if (!match) {
      throw new CacheKeyError(
        `Key template "${template}" has an invalid placeholder "{${inner}}": use {name}, {name.path} or {0}.`,
      );
    }
    if (literal) parts.push({ literal });
    else if (parts.length > 0) {
      const previous = parts[parts.length - 1] as PlaceholderPart;
      throw new CacheKeyError(
        `Key template "${template}" puts {${previous.source}} and {${inner.trim()}} side by side, so ` +
          `different arguments could render the same key; separate them (e.g. with ":").`,
      );
    }
    literal = '';
    const root = /^\d+$/.test(match[1]) ? Number(match[1]) : match[1];
    const path = match[2] ? match[2].slice(1).split('.') : [];
    parts.push({ source: inner.trim(), root, path });
    i = end;
  }
  if (literal) parts.push({ literal });
  return parts;
}

/**
 * Checks `template` against the method's parameters and returns its renderer. A placeholder
 * that names no parameter throws {@link CacheKeyError} here, when the decorator is applied,
 * not at the first call.
 *
 * `{name}` reads the parameter of that name (its literal default when the argument is
 * omitted), `{name.a.b}` a path into it, `{0}` a positional argument; with `allowResult`,
 * `{result}` / `{result.path}` read the method's result (unless a parameter is named
 * `result`). Values are written with {@link renderTemplateValue}; a separator between two
 * placeholders without a `:` (or another always-escaped character) has its characters
 * encoded in values too, so rendering stays injective.
 * An omitted argument whose default is not a literal renders as `~default`.
 */
export function compileKeyTemplate(
  template: string,
  signature: MethodSignature,
  options: { allowResult: boolean },
): CompiledKeyTemplate {
  const parts = parseKeyTemplate(template);
  const where = `Key template "${template}" of ${signature.className}.${signature.methodName}`;
  const params = signature.parameters;
  const restIndex = params?.findIndex((p) => p.rest) ?? -1;
  const names = params?.map((p) => p.name).filter((n): n is string => n !== undefined) ?? [];
  const describeParams = params
    ? `(${params.map((p, i) => (p.rest ? '...' : '') + (p.name ?? `<destructured #${i}>`)).join(', ')})`
    : '(unknown: the method source could not be read)';

  // Two placeholders must be told apart where they meet. A separator holding a character that
  // values never contain raw (':' and the rest of the shared encoding's escaped set, except '~'
  // which starts tagged values) already is unambiguous; otherwise (`{a}-{b}`) its characters
  // are escaped in this template's values too.
  const separators = new Set<string>();
  parts.forEach((part, i) => {
    if (!('literal' in part) || i === 0 || i === parts.length - 1) return;
    if (part.literal.includes('%')) {
      throw new CacheKeyError(
        `Key template "${template}" separates placeholders with "%", which starts an escape in values; use ":" instead.`,
      );
    }
    const chars = [...part.literal];
    if (chars.some((char) => char !== '~' && escapeKeyText(char) !== char)) return;
    for (const char of chars) if (char !== '~') separators.add(char);
  });

  type Reader = (call: TemplateCall) => unknown;
  let usesResult = false;
  const renderers: Array<(call: TemplateCall) => string> = parts.map((part) => {
    if ('literal' in part) {
      const literal = part.literal;
      return () => literal;
    }
    let read: Reader;
    if (typeof part.root === 'number') {
      const index = part.root;
      if (params && restIndex === -1 && index >= params.length) {
        throw new CacheKeyError(
          `${where} uses {${part.source}}, but the method takes ${params.length} parameter(s) ${describeParams}.`,
        );
      }
      read = argumentReader(index, params?.[index], restIndex);
    } else {
      const name = part.root;
      const index = params?.findIndex((p) => p.name === name) ?? -1;
      if (index !== -1) {
        read = argumentReader(index, params?.[index], restIndex);
      } else if (name === 'result' && options.allowResult) {
        usesResult = true;
        read = (call) => {
          if (!call.hasResult) {
            throw new CacheKeyError(`${where} reads {result} before the method returned.`);
          }
          return call.result;
        };
      } else {
        const hint = options.allowResult ? ', {result}' : '';
        throw new CacheKeyError(
          `${where} names {${part.source}}, but the method has no parameter "${name}": its ` +
            `parameters are ${describeParams}. Use one of ${names.length ? names.map((n) => `{${n}}`).join(', ') + ', ' : ''}` +
            `a position like {0}${hint}, or a key function.`,
        );
      }
    }
    const path = part.path;
    const label = `{${part.source}}`;
    if (path.length === 0) return (call) => renderTemplateValue(read(call), label, separators);
    return (call) => {
      let value = read(call);
      for (const segment of path) {
        if (value === UNRESOLVED_DEFAULT) break;
        value =
          value === null || value === undefined
            ? undefined
            : (value as Record<string, unknown>)[segment];
      }
      return renderTemplateValue(value, label, separators);
    };
  });

  // Runs on every cached call: literals are folded in (`item:` + one call per placeholder),
  // a plain loop, no intermediate array.
  const lead = 'literal' in parts[0] ? parts[0].literal : '';
  const rest = lead === '' ? renderers : renderers.slice(1);
  const count = rest.length;
  const render =
    count === 1
      ? (call: TemplateCall) => lead + rest[0](call)
      : (call: TemplateCall) => {
          let key = lead;
          for (let i = 0; i < count; i++) key += rest[i](call);
          return key;
        };
  return { template, usesResult, render };
}

function argumentReader(
  index: number,
  param: ParameterInfo | undefined,
  restIndex: number,
): (call: TemplateCall) => unknown {
  if (param?.rest) return (call) => call.args.slice(index);
  if (restIndex !== -1 && index > restIndex) {
    // A position past a rest parameter is simply that argument.
    return (call) => call.args[index];
  }
  const fallback = param?.default;
  if (!fallback) return (call) => call.args[index];
  const value: unknown = fallback.resolvable ? fallback.value : UNRESOLVED_DEFAULT;
  return (call) => (call.args[index] === undefined ? value : call.args[index]);
}
