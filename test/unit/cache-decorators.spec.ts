import { Reflector } from '@nestjs/core';
import {
  CacheArgumentError,
  CacheEvict,
  CacheKey,
  CacheKeyError,
  CachePerUser,
  CachePut,
  CacheTTL,
  Cacheable,
} from '../../lib';
import { CacheMetadataAccessor } from '../../lib/discovery/cache-metadata.accessor';
import { cachedMethodOf } from '../../lib/decorators/cached-method';

/** Applies method decorators the way TypeScript does, so definition-time errors surface here. */
function decorate(decorators: MethodDecorator[], method: (...args: never[]) => unknown): object {
  class Target {}
  Object.defineProperty(Target.prototype, 'method', {
    value: method,
    writable: true,
    configurable: true,
  });
  const descriptor = Object.getOwnPropertyDescriptor(Target.prototype, 'method');
  const result = Reflect.decorate(decorators, Target.prototype, 'method', descriptor);
  Object.defineProperty(Target.prototype, 'method', result);
  return Target.prototype;
}

describe('cache decorators at class definition', () => {
  it('rejects a placeholder that names no parameter', () => {
    expect(() =>
      decorate([Cacheable('product:{id}')], function method(productId: string) {
        return productId;
      }),
    ).toThrow(CacheKeyError);

    // The same check happens with TypeScript's own decorator call.
    expect(() => {
      class Broken {
        @CacheEvict({ key: 'user:{userId}' })
        remove(id: string) {
          return id;
        }
      }
      return Broken;
    }).toThrow(/no parameter "userId"/);
  });

  it('rejects static methods, getters and invalid combinations', () => {
    expect(() => {
      class Static {
        @Cacheable('x')
        static load() {
          return 1;
        }
      }
      return Static;
    }).toThrow(CacheArgumentError);

    expect(() => {
      class Getter {
        @Cacheable('x')
        get value() {
          return 1;
        }
      }
      return Getter;
    }).toThrow(/only methods/);

    expect(() => decorate([Cacheable('a'), Cacheable('b')], () => 1)).toThrow(
      /only one @Cacheable/,
    );
    expect(() => decorate([Cacheable('a'), CachePut('b')], () => 1)).toThrow(/contradict/);
  });

  it('rejects invalid options', () => {
    expect(() => Cacheable('k', { ttl: -1 })).toThrow(/invalid ttl/);
    expect(() => Cacheable({ key: 'k', tll: 5 } as never)).toThrow(/unknown option "tll"/);
    expect(() => Cacheable('k', { condition: 'yes' as never })).toThrow(
      /condition must be a function/,
    );
    expect(() => CacheEvict({ key: 'k', allEntries: true })).toThrow(/only one of/);
    expect(() => CacheEvict({ key: 'k', prefix: 'p:' })).toThrow(/only one of/);
    expect(() => CacheTTL(Number.NaN)).toThrow(/invalid ttl/);
    expect(() => CacheKey('')).toThrow(CacheArgumentError);
    expect(() => CachePerUser('user' as never)).toThrow(CacheArgumentError);
  });

  it('wraps a method once, however many cache decorators it carries', () => {
    const original = function method(id: string) {
      return id;
    };
    const proto = decorate(
      [Cacheable('k:{id}'), CacheEvict({ key: 'a:{id}' }), CacheEvict({ prefix: 'b:' })],
      original,
    ) as { method: (id: string) => string };
    const record = cachedMethodOf(proto.method);
    expect(record?.original).toBe(original);
    expect(record?.operations.map((op) => op.kind)).toEqual(['evict', 'evict', 'cacheable']);
    expect(proto.method.name).toBe('method');
    expect(proto.method.length).toBe(1);
  });

  it('records what was declared, readable through the metadata accessor', () => {
    const proto = decorate(
      [CacheEvict({ allEntries: true }), CachePut('k:{id}', { ttl: 5 })],
      function method(id: string) {
        return id;
      },
    ) as { method: object };
    const accessor = new CacheMetadataAccessor(new Reflector());
    expect(accessor.getCacheOperations(proto.method)).toEqual([
      { decorator: 'CachePut', options: { key: 'k:{id}', ttl: 5 } },
      { decorator: 'CacheEvict', options: { allEntries: true } },
    ]);
    expect(accessor.hasCacheOperations(Object.create(proto) as object)).toBe(true);
  });

  it('leaves an undecorated instance alone', () => {
    const accessor = new CacheMetadataAccessor(new Reflector());
    class Plain {
      method() {
        return 1;
      }
    }
    expect(accessor.hasCacheOperations(new Plain())).toBe(false);
  });
});
