import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import {
  Injectable,
  Module,
  type INestApplication,
  type INestApplicationContext,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import request from 'supertest';
import { CacheModule, CacheService, Cacheable, type CacheModuleOptions } from '../../lib';
import {
  AdminUsersController,
  AdminUsersService,
  EXPECTED_KEYS,
  EXPECTED_VALUES,
  ShopUsersController,
  appModule,
  callEverything,
} from '../support/default-keys-app';
import { CapturingLogger } from '../support/logs';
import { inspector, sharedRedisUrl, uniqueNamespace } from '../support/redis';
import { PLATFORMS, type Platform } from '../support/http-platforms';

/**
 * Issue 10, item 3: default `@Cacheable()` keys identify the method's owner, so two providers
 * (or controllers) whose classes share a name never share entries, and the keys are the same
 * in every process of the application (no random ids).
 */

const backends: Array<[string, () => CacheModuleOptions]> = [
  ['memory', () => ({})],
  [
    'redis',
    () => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('dk'),
    }),
  ],
];

async function context(options: CacheModuleOptions): Promise<INestApplicationContext> {
  const app = await NestFactory.createApplicationContext(appModule(options), { logger: false });
  await app.init();
  return app;
}

async function http(platform: Platform, options: CacheModuleOptions): Promise<INestApplication> {
  if (platform === 'express') {
    const app = await NestFactory.create(appModule(options), { logger: false });
    await app.init();
    return app;
  }
  const app = await NestFactory.create<NestFastifyApplication>(
    appModule(options),
    new FastifyAdapter(),
    { logger: false },
  );
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  return app;
}

describe.each(backends)('default keys (%s)', (_backend, optionsFor) => {
  it('give every owner its own entries, under the documented keys', async () => {
    const app = await context(optionsFor());
    const cache = app.get(CacheService);
    try {
      const first = await callEverything(app);
      expect(first.values).toEqual(EXPECTED_VALUES);
      expect(first.calls).toBe(Object.keys(EXPECTED_VALUES).length);
      for (const key of Object.values(EXPECTED_KEYS)) expect(await cache.has(key)).toBe(true);
      // A unique class keeps the readable key; a shared name is never used bare.
      expect(await cache.has('UsersService:find:1')).toBe(false);
      expect(await cache.has('Repo:find:1')).toBe(false);
      expect(await cache.has('BaseFeed:latest:3')).toBe(false);

      const second = await callEverything(app);
      expect(second.values).toEqual(EXPECTED_VALUES);
      expect(second.calls).toBe(first.calls); // every one a hit, from its own entry
    } finally {
      await cache.clear();
      await app.close();
    }
  });

  it('are the same in a second application of the same code (a restart, another instance)', async () => {
    const options = optionsFor();
    const one = await context(options);
    const two = await context(options);
    try {
      await callEverything(one);
      for (const key of Object.values(EXPECTED_KEYS)) {
        expect(await two.get(CacheService).has(key)).toBe(options.provider === 'redis');
      }
      if (options.provider === 'redis') {
        // Sharing one Redis: the second instance is served entirely from the first one's entries.
        const { values, calls } = await callEverything(two);
        expect(values).toEqual(EXPECTED_VALUES);
        expect(calls).toBe(0);
      }
    } finally {
      await one.get(CacheService).clear();
      await one.close();
      await two.close();
    }
  });
});

describe.each(PLATFORMS)('default keys of controllers (%s)', (platform) => {
  it.each(backends)(
    'two UsersController never answer for each other (%s)',
    async (_b, optionsFor) => {
      const app = await http(platform, optionsFor());
      const cache = app.get(CacheService);
      try {
        const server = app.getHttpServer();
        const admin = await request(server).get('/admin/7').expect(200);
        const shop = await request(server).get('/shop/7').expect(200);
        expect(admin.body).toEqual({ from: 'admin controller', id: '7' });
        expect(shop.body).toEqual({ from: 'shop controller', id: '7' });
        expect([admin.headers['x-cache'], shop.headers['x-cache']]).toEqual(['MISS', 'MISS']);
        const again = await request(server).get('/shop/7').expect(200);
        expect(again.body).toEqual(shop.body);
        expect(again.headers['x-cache']).toBe('HIT');
        expect(app.get(AdminUsersController).calls).toBe(1);
        expect(app.get(ShopUsersController).calls).toBe(1);
        expect(await cache.has('AppModule/FeaturesModule/AdminModule/UsersController:get:7')).toBe(
          true,
        );
      } finally {
        await cache.clear();
        await app.close();
      }
    },
  );
});

describe('default keys across processes', () => {
  it('a separate Node process computes the very same keys', async () => {
    const namespace = uniqueNamespace('dk-proc');
    const child = join(__dirname, '..', 'support', 'default-keys-child.ts');
    const { stdout } = await promisify(execFile)(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', child, sharedRedisUrl(), namespace],
      { cwd: join(__dirname, '..', '..'), timeout: 60_000 },
    );
    expect(JSON.parse(stdout)).toEqual({ calls: Object.keys(EXPECTED_VALUES).length });

    const raw = inspector();
    try {
      const written = (await raw.keys(`${namespace}:*`)).map((k) => k.slice(namespace.length + 1));
      expect(written.sort()).toEqual(Object.values(EXPECTED_KEYS).sort());
    } finally {
      await raw.quit();
    }
    const app = await context({ provider: 'redis', redis: { url: sharedRedisUrl() }, namespace });
    try {
      const { values, calls } = await callEverything(app);
      expect(values).toEqual(EXPECTED_VALUES);
      expect(calls).toBe(0); // every call a hit on what the other process wrote
    } finally {
      await app.get(CacheService).clear();
      await app.close();
    }
  }, 90_000);
});

describe('default keys elsewhere', () => {
  it('a decorated class that is not a Nest provider runs uncached, with one warning', async () => {
    const logger = new CapturingLogger();
    const app = await NestFactory.createApplicationContext(appModule({}), { logger });
    await app.init();
    try {
      const loose = new AdminUsersService();
      await loose.find(1);
      await loose.find(1);
      expect(loose.calls).toBe(2);
      expect(logger.warnings().join('\n')).toMatch(/UsersService\.find ran uncached/);
    } finally {
      await app.close();
    }
  });

  it('one class provided under two tokens (useClass) gets two owners', async () => {
    @Injectable()
    class Counter {
      calls = 0;

      @Cacheable()
      async next(step: number) {
        return (this.calls += step);
      }
    }
    @Module({
      imports: [CacheModule.forRoot()],
      providers: [
        { provide: 'LEFT', useClass: Counter },
        { provide: 'RIGHT', useClass: Counter },
      ],
    })
    class CountersModule {}
    const app = await NestFactory.createApplicationContext(CountersModule, { logger: false });
    await app.init();
    try {
      const left = app.get<Counter>('LEFT');
      const right = app.get<Counter>('RIGHT');
      expect(await left.next(1)).toBe(1);
      expect(await right.next(1)).toBe(1); // its own call, not the left one's entry
      expect(await left.next(1)).toBe(1); // a hit
      const cache = app.get(CacheService);
      expect(await cache.has('CountersModule/LEFT.Counter:next:1')).toBe(true);
      expect(await cache.has('CountersModule/RIGHT.Counter:next:1')).toBe(true);
      expect([left.calls, right.calls]).toEqual([1, 1]);
    } finally {
      await app.close();
    }
  });

  it('a class name unique in its application keeps the plain ClassName:method:args key', async () => {
    @Injectable()
    class Solo {
      @Cacheable()
      async get(a: string, b: number) {
        return `${a}${b}`;
      }
    }
    @Module({ imports: [CacheModule.forRoot()], providers: [Solo] })
    class SoloModule {}
    const app = await NestFactory.createApplicationContext(SoloModule, { logger: false });
    await app.init();
    try {
      await app.get(Solo).get('x:y', 2);
      expect(await app.get(CacheService).has('Solo:get:x%3Ay:2')).toBe(true);
    } finally {
      await app.close();
    }
  });
});
