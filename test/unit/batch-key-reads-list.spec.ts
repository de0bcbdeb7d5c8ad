import { CacheArgumentError, Cacheable } from '../../lib';

/**
 * Review finding 1: a `@Cacheable({ batch })` key template that does not read the list parameter
 * renders the same key for every id, so every id is answered with the first id's value (a wrong
 * value, silently, on every backend). Such a template must be refused when the class is defined,
 * as a `batch` naming a missing parameter is.
 */
describe('@Cacheable batch: the key template must read the list parameter', () => {
  const define =
    (key: string, batch: unknown = true) =>
    () => {
      class Catalog {
        @Cacheable({ key, batch: batch as never })
        async find(locale: string, ids: string[]): Promise<string[]> {
          return ids.map((id) => `${locale}-${id}`);
        }
      }
      return Catalog;
    };

  it('refuses a template without the list (it would give every id one entry)', () => {
    expect(define('products', 1)).toThrow(CacheArgumentError);
    expect(define('products', 1)).toThrow(/does not read the list parameter \(\{ids\}\)/);
    expect(define('{locale}:products', 'ids')).toThrow(/does not read the list parameter/);
    expect(define('all-products')).toThrow(/does not read the list parameter \(\{locale\}\)/);
  });

  it('accepts the list by name, by position, or a path into it', () => {
    expect(define('p:{ids}', 1)).not.toThrow();
    expect(define('{locale}:p:{1}', 'ids')).not.toThrow();
    expect(define('p:{ids.sku}', { param: 'ids' })).not.toThrow();
  });
});
