import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  CacheConfigError,
  CacheInvalidator,
  CacheModule,
  CacheService,
  Cacheable,
  InjectCache,
  InvalidationRule,
  KeyConstructor,
  argField,
} from '../../lib';

// Defect: the invalidator finds the cache a job applies to by its namespace, but two caches may
// share one namespace when one is in memory (accepted at startup): the rule's cache is missed.
const Key = KeyConstructor.define({ namespace: 'item', fields: [argField('id')] });
let loads = 0;

@Injectable()
class Items {
  constructor(@InjectCache('local') readonly local: CacheService) {}
  @Cacheable({
    key: Key,
    cache: 'local',
    invalidateOn: [InvalidationRule({ event: 'item.changed', fieldMapping: { id: 'id' } })],
  })
  async item(id: number): Promise<{ id: number; load: number }> {
    return { id, load: ++loads };
  }
}

describe('invalidation rules of a named cache sharing a namespace in memory', () => {
  it('drops the entry in the named cache the rule belongs to (or refuses the setup)', async () => {
    const compiled = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'memory',
          namespace: 'app',
          caches: { local: { namespace: 'app' } },
        }),
      ],
      providers: [Items],
    })
      .compile()
      .catch((error: unknown) => error as Error);
    if (compiled instanceof Error) {
      // Refusing two caches of one application on one namespace is a fix too.
      expect(compiled).toBeInstanceOf(CacheConfigError);
      return;
    }
    const app = compiled.createNestApplication({ logger: false });
    await app.init();
    try {
      const items = app.get(Items);
      const first = await items.item(1);
      expect(await items.item(1)).toEqual(first);
      expect(await items.local.has(Key.render({ id: 1 }))).toBe(true);
      await app.get(CacheInvalidator).publish('item.changed', { id: 1 });
      expect(await items.local.has(Key.render({ id: 1 }))).toBe(false);
      expect(await items.item(1)).not.toEqual(first);
    } finally {
      await app.close();
    }
  });
});
