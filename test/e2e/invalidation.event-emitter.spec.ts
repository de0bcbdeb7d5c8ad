import { Injectable, type INestApplication } from '@nestjs/common';
import { EventEmitter2, EventEmitterModule } from '@nestjs/event-emitter';
import { Test } from '@nestjs/testing';
import {
  CacheInvalidator,
  CacheModule,
  CacheService,
  InvalidationRule,
  KeyConstructor,
  argField,
} from '../../lib';
import { registerInvalidation } from '../../lib/invalidation/invalidation.registry';

const ProfileKey = KeyConstructor.define({
  namespace: 'profiles',
  fields: [argField('userId', { partition: true }), argField('view')],
});

@Injectable()
class Profiles {
  get(userId: number, view: string) {
    return `${userId}:${view}`;
  }
}
registerInvalidation(Profiles, 'get', ProfileKey, [
  InvalidationRule({ event: 'user.updated', fieldMapping: { userId: 'id' } }),
  InvalidationRule({
    event: 'user.deleted',
    fieldMapping: { userId: 'id' },
    dispatcher: 'deferred',
  }),
]);

async function seed(cache: CacheService): Promise<void> {
  for (const userId of [42, 7]) {
    for (const view of ['a', 'b']) await cache.set(ProfileKey.render({ userId, view }), 'x');
  }
}

async function eventually(check: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error('condition not met within 2 s');
}

describe('@nestjs/event-emitter events', () => {
  let app: INestApplication;
  let cache: CacheService;
  let emitter: EventEmitter2;

  beforeEach(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [EventEmitterModule.forRoot(), CacheModule.forRoot({ namespace: 'ee' })],
      providers: [Profiles],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    cache = app.get(CacheService);
    emitter = app.get(EventEmitter2);
    await seed(cache);
  });

  afterEach(() => app.close());

  it('emitAsync resolves after an inline rule has dropped the entries', async () => {
    await emitter.emitAsync('user.updated', { id: 42, name: 'Alicia' });
    expect(await cache.has(ProfileKey.render({ userId: 42, view: 'a' }))).toBe(false);
    expect(await cache.has(ProfileKey.render({ userId: 42, view: 'b' }))).toBe(false);
    expect(await cache.has(ProfileKey.render({ userId: 7, view: 'a' }))).toBe(true);
  });

  it('a plain emit invalidates too (without waiting for it)', async () => {
    expect(emitter.emit('user.updated', { id: 7 })).toBe(true);
    await eventually(async () => !(await cache.has(ProfileKey.render({ userId: 7, view: 'a' }))));
    expect(await cache.has(ProfileKey.render({ userId: 42, view: 'a' }))).toBe(true);
  });

  it('deferred rules run after emitAsync has resolved', async () => {
    await emitter.emitAsync('user.deleted', { id: 42 });
    await eventually(async () => !(await cache.has(ProfileKey.render({ userId: 42, view: 'a' }))));
  });

  it('stops listening when the application shuts down', async () => {
    expect(emitter.listenerCount('user.updated')).toBe(1);
    await app.close();
    expect(emitter.listenerCount('user.updated')).toBe(0);
  });
});

describe('without @nestjs/event-emitter', () => {
  it('works in an application that does not import EventEmitterModule', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot({ namespace: 'no-ee' })],
      providers: [Profiles],
    }).compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    try {
      const cache = app.get(CacheService);
      await seed(cache);
      await app.get(CacheInvalidator).publish('user.updated', { id: 42 });
      expect(await cache.has(ProfileKey.render({ userId: 42, view: 'a' }))).toBe(false);
    } finally {
      await app.close();
    }
  });

  it('loads and runs when the optional packages are not installed', async () => {
    const missing = (name: string) => () => {
      throw new Error(`Cannot find module '${name}'`);
    };
    await jest.isolateModulesAsync(async () => {
      jest.doMock('@nestjs/event-emitter', missing('@nestjs/event-emitter'));
      jest.doMock('bullmq', missing('bullmq'));
      jest.doMock('typeorm', missing('typeorm'));
      /* eslint-disable @typescript-eslint/no-require-imports */
      const lib = require('../../lib') as typeof import('../../lib');
      const { registerInvalidation } =
        require('../../lib/invalidation/invalidation.registry') as typeof import('../../lib/invalidation/invalidation.registry');
      const { Test: IsolatedTest } = require('@nestjs/testing') as typeof import('@nestjs/testing');
      const common = require('@nestjs/common') as typeof import('@nestjs/common');
      expect(() => require('@nestjs/event-emitter')).toThrow(/Cannot find module/);
      /* eslint-enable @typescript-eslint/no-require-imports */

      const Key = lib.KeyConstructor.define({
        namespace: 'iso',
        fields: [lib.argField('id', { partition: true })],
      });
      class Isolated {
        get(id: number) {
          return id;
        }
      }
      common.Injectable()(Isolated);
      registerInvalidation(Isolated, 'get', Key, [
        lib.InvalidationRule({ event: 'iso.changed', fieldMapping: { id: 'id' } }),
      ]);
      const moduleRef = await IsolatedTest.createTestingModule({
        imports: [lib.CacheModule.forRoot({ namespace: 'iso' })],
        providers: [Isolated],
      }).compile();
      const app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      try {
        const cache = app.get(lib.CacheService);
        await cache.set(Key.render({ id: 1 }), 'x');
        await app.get(lib.CacheInvalidator).publish('iso.changed', { id: 1 });
        expect(await cache.has(Key.render({ id: 1 }))).toBe(false);

        const bull = new lib.BullMqDispatcher({ connection: { url: 'redis://127.0.0.1:1' } });
        expect(() => bull.start(() => Promise.resolve())).toThrow(/npm install bullmq/);
        expect(() => lib.typeOrmInvalidationProvider()).toThrow(/npm install typeorm/);
      } finally {
        await app.close();
      }
    });
  });
});
