import { Injectable, Module, type INestApplication } from '@nestjs/common';
import { ConfigModule, ConfigService } from '@nestjs/config';
import { Test } from '@nestjs/testing';
import {
  CacheAdapter,
  CacheConfigError,
  CacheModule,
  CacheService,
  MemoryCacheAdapter,
  RedisCacheAdapter,
  CACHE_MODULE_OPTIONS,
  type CacheModuleOptions,
  type CacheOptionsFactory,
} from '../../lib';
import { type ResolvedCacheOptions } from '../../lib/config/cache-options.resolver';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

/** A user-written backend: a plain Map that records every call it receives. */
class RecordingAdapter implements CacheAdapter {
  readonly calls: string[] = [];
  private readonly map = new Map<string, unknown>();
  get<T>(key: string): Promise<T | undefined> {
    this.calls.push(`get ${key}`);
    return Promise.resolve(this.map.get(key) as T | undefined);
  }
  set(key: string, value: unknown, ttl: number): Promise<void> {
    this.calls.push(`set ${key} ${ttl}`);
    this.map.set(key, value);
    return Promise.resolve();
  }
  delete(key: string): Promise<boolean> {
    return Promise.resolve(this.map.delete(key));
  }
  has(key: string): Promise<boolean> {
    return Promise.resolve(this.map.has(key));
  }
  clear(): Promise<void> {
    this.map.clear();
    return Promise.resolve();
  }
  deleteByPrefix(prefix: string): Promise<number> {
    const keys = [...this.map.keys()].filter((k) => k.startsWith(prefix));
    keys.forEach((k) => this.map.delete(k));
    return Promise.resolve(keys.length);
  }
}

async function boot(imports: unknown[]): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule({ imports: imports as never[] }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  await app.init();
  return app;
}

describe('CacheModule', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const key of Object.keys(process.env))
      if (key.startsWith('CACHE_')) delete process.env[key];
    Object.assign(process.env, saved);
  });

  it('forRoot() with no options runs on the in-memory adapter with a 300 s TTL', async () => {
    const app = await boot([CacheModule.forRoot()]);
    expect(app.get(CacheAdapter)).toBeInstanceOf(MemoryCacheAdapter);
    expect(app.get(CacheService).defaultTtl).toBe(300);
    await app.close();
  });

  it('forRootAsync takes its options from @nestjs/config ConfigService', async () => {
    const namespace = uniqueNamespace('async');
    const app = await boot([
      CacheModule.forRootAsync({
        imports: [
          ConfigModule.forRoot({
            ignoreEnvFile: true,
            load: [
              () => ({ cache: { provider: 'redis', ttl: 42, url: sharedRedisUrl(), namespace } }),
            ],
          }),
        ],
        inject: [ConfigService],
        useFactory: (config: ConfigService) => ({
          provider: config.getOrThrow<'redis'>('cache.provider'),
          ttl: config.getOrThrow<number>('cache.ttl'),
          namespace: config.getOrThrow<string>('cache.namespace'),
          redis: { url: config.getOrThrow<string>('cache.url') },
        }),
      }),
    ]);
    const cache = app.get(CacheService);
    expect(app.get(CacheAdapter)).toBeInstanceOf(RedisCacheAdapter);
    expect(cache.defaultTtl).toBe(42);
    await cache.set('from-config', 'yes');
    expect(await cache.get('from-config')).toBe('yes');
    await cache.clear();
    await app.close();
  });

  it('forRootAsync accepts useClass and useExisting', async () => {
    @Injectable()
    class Options implements CacheOptionsFactory {
      createCacheOptions(): CacheModuleOptions {
        return { ttl: 7, namespace: 'by-class' };
      }
    }
    @Module({ providers: [Options], exports: [Options] })
    class OptionsModule {}

    const byClass = await boot([CacheModule.forRootAsync({ useClass: Options })]);
    expect(byClass.get<ResolvedCacheOptions>(CACHE_MODULE_OPTIONS)).toMatchObject({
      ttl: 7,
      namespace: 'by-class',
    });
    await byClass.close();

    const existing = await boot([
      CacheModule.forRootAsync({ imports: [OptionsModule], useExisting: Options }),
    ]);
    expect(existing.get(CacheService).defaultTtl).toBe(7);
    await existing.close();
  });

  it('isGlobal makes CacheService injectable in a module that does not import it', async () => {
    @Injectable()
    class Consumer {
      constructor(readonly cache: CacheService) {}
    }
    @Module({ providers: [Consumer] })
    class FeatureModule {}

    const app = await boot([CacheModule.forRoot({ isGlobal: true }), FeatureModule]);
    expect(app.get(Consumer).cache).toBe(app.get(CacheService));
    await app.close();
    await expect(boot([CacheModule.forRoot(), FeatureModule])).rejects.toThrow(/CacheService/);
  });

  it('takes options from the environment, explicit options winning', async () => {
    process.env.CACHE_TTL = '11';
    process.env.CACHE_NAMESPACE = 'from-env';
    process.env.CACHE_ENABLED = 'true';
    const app = await boot([CacheModule.forRoot({ namespace: 'explicit' })]);
    const options = app.get<ResolvedCacheOptions>(CACHE_MODULE_OPTIONS);
    expect(options.ttl).toBe(11);
    expect(options.namespace).toBe('explicit');
    await app.close();
  });

  it('CACHE_PROVIDER and CACHE_REDIS_URL switch the backend to Redis', async () => {
    process.env.CACHE_PROVIDER = 'redis';
    process.env.CACHE_REDIS_URL = sharedRedisUrl();
    const app = await boot([CacheModule.forRoot({ namespace: uniqueNamespace('env') })]);
    expect(app.get(CacheAdapter)).toBeInstanceOf(RedisCacheAdapter);
    await app.close();
  });

  it('fails at startup on invalid configuration, naming the option', async () => {
    await expect(boot([CacheModule.forRoot({ ttl: -5 })])).rejects.toThrow(CacheConfigError);
    await expect(boot([CacheModule.forRoot({ ttl: -5 })])).rejects.toThrow(/"ttl": -5/);
    process.env.CACHE_PROVIDER = 'mongo';
    await expect(boot([CacheModule.forRoot()])).rejects.toThrow(
      /provider \(from CACHE_PROVIDER\).*"mongo"/,
    );
  });

  it('enabled: false makes reads miss and writes no-ops', async () => {
    const adapter = new RecordingAdapter();
    const app = await boot([CacheModule.forRoot({ enabled: false, adapter })]);
    const cache = app.get(CacheService);
    await cache.set('k', 'v');
    expect(await cache.get('k')).toBeUndefined();
    expect(await cache.has('k')).toBe(false);
    let loads = 0;
    expect(await cache.wrap('w', () => ++loads)).toBe(1);
    expect(await cache.wrap('w', () => ++loads)).toBe(2);
    expect(adapter.calls).toEqual([]);
    await app.close();
  });

  it('CACHE_ENABLED=false disables caching', async () => {
    process.env.CACHE_ENABLED = 'false';
    const app = await boot([CacheModule.forRoot()]);
    const cache = app.get(CacheService);
    await cache.set('k', 'v');
    expect(await cache.get('k')).toBeUndefined();
    await app.close();
  });

  it('uses a custom adapter given as the `adapter` option', async () => {
    const adapter = new RecordingAdapter();
    const app = await boot([CacheModule.forRoot({ adapter, ttl: 30 })]);
    const cache = app.get(CacheService);
    await cache.set('custom', { ok: true });
    expect(await cache.get('custom')).toEqual({ ok: true });
    expect(adapter.calls).toEqual(['set custom 30', 'get custom']);
    await app.close();
  });

  it('uses a custom adapter given as a provider override', async () => {
    const adapter = new RecordingAdapter();
    const moduleRef = await Test.createTestingModule({ imports: [CacheModule.forRoot()] })
      .overrideProvider(CacheAdapter)
      .useValue(adapter)
      .compile();
    const app = moduleRef.createNestApplication({ logger: false });
    await app.init();
    await app.get(CacheService).set('overridden', 1, 5);
    expect(adapter.calls).toEqual(['set overridden 5']);
    await app.close();
  });
});
