import { CacheArgumentError, CacheKeyError } from '../utils/cache.errors';
import { MAX_TAGS, tagsProblem } from '../config/validators';
import { describeValue } from '../utils/describe-value';
import { createKeyResolver, type KeyResolver, type MethodCall } from './key-resolver';
import { compileKeyTemplate, parseKeyTemplate, type MethodSignature } from './key-template';

/** The tags of one decorator (or `cacheResult`), checked against its method. */
export interface TagsResolver {
  /** `true` if a tag can only be rendered once the method has returned (`{result}`). */
  readonly usesResult: boolean;
  /** Renders the tags of one call (duplicates dropped); throws {@link CacheKeyError} if it cannot. */
  render(call: MethodCall): string[];
}

/**
 * Prepares the `tags` of a decorator: an array of key templates (`'product:{id}'`, rendered
 * from the arguments with the key encoding, so injectively) and functions of the arguments,
 * or one function of the arguments returning the tags. Templates are checked against the
 * method's parameters now (class definition time). `undefined` or `[]` means no tags
 * (`undefined` is returned).
 */
export function createTagsResolver(
  tags: unknown,
  signature: MethodSignature,
  options: { allowResult: boolean; what: string },
): TagsResolver | undefined {
  if (tags === undefined) return undefined;
  const where = `${options.what} on ${signature.className}.${signature.methodName}`;
  if (typeof tags === 'function') {
    const fn = tags as (...args: unknown[]) => unknown;
    return {
      usesResult: false,
      render: (call) => checkedTags(fn.apply(call.instance, call.args as unknown[]), where),
    };
  }
  if (!Array.isArray(tags) || tags.length > MAX_TAGS) {
    throw new CacheArgumentError(
      `The tags of ${where} must be an array of at most ${MAX_TAGS} tag templates or functions, ` +
        `or a function of the arguments returning the tags; got ${describeValue(tags)}.`,
    );
  }
  if (tags.length === 0) return undefined;
  const resolvers: KeyResolver[] = (tags as unknown[]).map((tag, index) => {
    if (!(typeof tag === 'string' && tag.length > 0) && typeof tag !== 'function') {
      throw new CacheArgumentError(
        `Tag ${index} of ${where} must be a non-empty template string or a function of the ` +
          `arguments; got ${describeValue(tag)}.`,
      );
    }
    return createKeyResolver(tag as string, signature, {
      allowResult: options.allowResult,
      what: `${options.what} (tag ${index})`,
    });
  });
  return {
    usesResult: resolvers.some((resolver) => resolver.usesResult),
    render: (call) => {
      const rendered = new Set<string>();
      resolvers.forEach((resolver, index) => {
        const tag = resolver.render(call);
        // A template of a lone placeholder renders an empty string as nothing.
        if (tag === '') throw new CacheKeyError(`Tag ${index} of ${where} came out empty.`);
        rendered.add(tag);
      });
      return [...rendered];
    },
  };
}

function checkedTags(tags: unknown, where: string): string[] {
  if (tagsProblem(tags) !== undefined) {
    throw new CacheKeyError(
      `The tags function of ${where} returned ${describeValue(tags)}; it must return an array ` +
        `of at most ${MAX_TAGS} non-empty strings.`,
    );
  }
  return [...new Set(tags as string[])];
}

/** A tag of an invalidation rule, ready to render from an event payload. */
export interface PayloadTagRenderer {
  /** The template as written, or `'<function>'`: for logs. */
  readonly source: string;
  /** Renders the tag; throws {@link CacheKeyError} if the payload lacks a value it reads. */
  render(payload: unknown): string;
}

/**
 * Compiles a tag template whose placeholders name paths into an event payload (`{id}`,
 * `{owner.id}`): rendered with the key encoding of {@link compileKeyTemplate}, so
 * `'product:{id}'` gives the tag a method's `'product:{id}'` gives for the same value. A value
 * missing from the payload (`undefined`) makes the render throw, rather than produce a tag that
 * names nothing. Throws {@link CacheKeyError} here for a malformed template or a positional
 * placeholder (`{0}`: a payload has no positions).
 */
export function compilePayloadTag(template: string, owner: string): PayloadTagRenderer {
  const parts = parseKeyTemplate(template);
  const roots: string[] = [];
  const paths: string[][] = [];
  for (const part of parts) {
    if ('literal' in part) continue;
    if (typeof part.root === 'number') {
      throw new CacheKeyError(
        `${owner}: tag template "${template}" uses {${part.source}}; placeholders of a rule's ` +
          `tags name payload paths such as {id} or {owner.id}.`,
      );
    }
    if (!roots.includes(part.root)) roots.push(part.root);
    paths.push([part.root, ...part.path]);
  }
  const compiled = compileKeyTemplate(
    template,
    {
      className: owner,
      methodName: 'tags',
      parameters: roots.map((name) => ({ name, rest: false })),
    },
    { allowResult: false },
  );
  return {
    source: template,
    render: (payload) => {
      for (const path of paths) {
        if (readPath(payload, path) === undefined) {
          throw new CacheKeyError(
            `tag template "${template}": the payload has no value at "${path.join('.')}"`,
          );
        }
      }
      const args = roots.map((root) => readPath(payload, [root]));
      const tag = compiled.render({ args, hasResult: false });
      if (tag === '') throw new CacheKeyError(`tag template "${template}" came out empty`);
      return tag;
    },
  };
}

function readPath(payload: unknown, path: readonly string[]): unknown {
  let current = payload;
  for (const part of path) {
    if (current === null || current === undefined) return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}
