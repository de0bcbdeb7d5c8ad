import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Cacheable, CacheEvict, CacheModule } from '../../lib';

/** Methods written sync that throw before returning, the way a guard clause does. */
@Injectable()
class Lookup {
  calls = 0;
  failNext = true;

  @Cacheable('lookup:{id}')
  find(id: string): string {
    this.calls++;
    if (this.failNext) {
      this.failNext = false;
      throw new Error(`not ready for ${id}`);
    }
    return `value ${id}`;
  }

  @Cacheable({ key: 'skipped:{id}', condition: () => false })
  uncached(id: string): string {
    throw new Error(`always fails for ${id}`);
  }

  @Cacheable('stacked:{id}')
  @CacheEvict({ key: 'other:{id}' })
  stacked(id: string): string {
    throw new Error(`stacked fails for ${id}`);
  }
}

describe('@Cacheable on a method that throws synchronously', () => {
  let app: INestApplication;
  let lookup: Lookup;

  beforeEach(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot()],
      providers: [Lookup],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    lookup = app.get(Lookup);
  });

  afterEach(() => app.close());

  it('rejects, caches nothing, and runs the method again on the next call', async () => {
    await expect(lookup.find('1')).rejects.toThrow('not ready for 1');
    await expect(lookup.find('1')).resolves.toBe('value 1');
    await expect(lookup.find('1')).resolves.toBe('value 1');
    expect(lookup.calls).toBe(2);
  });

  it('rejects (never throws) whether or not the call is cached, alone or stacked', () => {
    let promise: unknown;
    expect(() => (promise = lookup.uncached('2'))).not.toThrow();
    expect(promise).toBeInstanceOf(Promise);
    const stacked: unknown = lookup.stacked('3');
    return Promise.all([
      expect(promise).rejects.toThrow('always fails for 2'),
      expect(stacked).rejects.toThrow('stacked fails for 3'),
    ]);
  });
});
