import { Cacheable } from '../../lib';

/**
 * Review finding 2: README says "A `batch` naming a parameter the method does not have fails when
 * the class is defined"; a position past the last parameter (`batch: 1` on `findByIds(ids)`,
 * read as "true") was accepted and every call then ran uncached, silently.
 */
describe('@Cacheable batch: a position the method does not have is refused when defined', () => {
  it('batch: 1 on a method with one parameter (README: fails when the class is defined)', () => {
    expect(() => {
      class Bad {
        @Cacheable('k:{ids}', { batch: 1 })
        find(ids: string[]) {
          return ids;
        }
      }
      return Bad;
    }).toThrow(/batch.param 1 names no parameter \(the method takes 1\)/);
  });

  it('a rest parameter may take any position', () => {
    expect(() => {
      class Ok {
        @Cacheable('k:{2}', { batch: 2 })
        find(...args: unknown[]) {
          return args;
        }
      }
      return Ok;
    }).not.toThrow();
  });
});
