import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  Cacheable,
  CacheModule,
  CacheService,
  InjectCache,
  CACHE_MANAGER,
  type CacheModuleOptions,
} from '../../lib';
import { CacheHealthIndicator, CacheConfigError } from '../../lib';
import { CapturingLogger } from '../support/logs';
import { eventually } from '../support/eventually';
import { freePort, RedisServer } from '../support/redis-server';
import { redisInstances } from '../support/redis-instances';

let calls = 0;
@Injectable()
class Svc {
  constructor(
    readonly own: CacheService,
    @InjectCache('sessions') readonly sessions: CacheService,
  ) {}
  @Cacheable({ key: 'k:{id}', cache: 'sessions' })
  async load(id: string): Promise<string> {
    calls++;
    return `v${id}-${calls}`;
  }
}

describe('named caches', () => {
  const redis = redisInstances('rv');
  async function boot(options: CacheModuleOptions, logger?: CapturingLogger) {
    const { app } = await redis.app(options, logger, [Svc]);
    return { app, svc: app.get(Svc) };
  }

  it('never logs the password of an unreachable named-cache URL', async () => {
    const port = await freePort();
    const logger = new CapturingLogger();
    const url = `redis://user:s3cretPW@127.0.0.1:${port}`;
    const { svc } = await boot(
      {
        provider: 'redis',
        redis: { url },
        namespace: redis.namespace,
        caches: { sessions: { ttl: 5, l1: true } },
      },
      logger,
    );
    await svc.sessions.set('a', 1);
    await svc.sessions.get('a');
    await svc.load('1');
    await new Promise((r) => setTimeout(r, 1500));
    const error = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url },
          namespace: redis.namespace,
          caches: { sessions: { strict: true } },
        }),
      ],
    })
      .compile()
      .then((ref) => ref.createNestApplication({ logger: false }).init())
      .then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    expect(error).toBeDefined();
    expect(`${error?.message} ${String((error as { cause?: unknown })?.cause)}`).not.toContain(
      's3cretPW',
    );
    expect(logger.text).not.toContain('s3cretPW');
  });

  it('never logs the password when AUTH fails on a named cache', async () => {
    const locked = await RedisServer.start({ args: ['--requirepass', 'rightPW'] });
    try {
      const logger = new CapturingLogger();
      const url = `redis://user:s3cretPW@127.0.0.1:${locked.port}`;
      const { svc, app } = await boot(
        {
          provider: 'memory',
          namespace: redis.namespace,
          caches: { sessions: { provider: 'redis', redis: { url }, l1: true } },
        },
        logger,
      );
      await svc.sessions.set('a', 1);
      await svc.sessions.get('a');
      await new Promise((r) => setTimeout(r, 1500));
      await app.close();
      expect(logger.text).not.toContain('s3cretPW');
    } finally {
      await locked.stop();
    }
  });

  it('never puts a password in the error of a bad named-cache redis option', async () => {
    const bad: CacheModuleOptions = {
      provider: 'redis',
      redis: { url: `redis://user:s3cretPW@127.0.0.1:1` },
      caches: { sessions: { redis: { url: 'rediss://user:s3cretPW@host:99999999' } } },
    };
    const error = await Test.createTestingModule({ imports: [CacheModule.forRoot(bad)] })
      .compile()
      .then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    expect(error?.message ?? '').not.toContain('s3cretPW');
  });

  it('keeps two apps with the same cache names apart (memory), decorated class in both', async () => {
    const a = await boot({ provider: 'memory', caches: { sessions: {} } });
    const b = await boot({ provider: 'memory', caches: { sessions: {} } });
    calls = 0;
    expect(await a.svc.load('1')).toBe('v1-1');
    expect(await b.svc.load('1')).toBe('v1-2');
    expect(await a.svc.sessions.get('k:1')).toBe('v1-1');
    expect(await b.svc.sessions.get('k:1')).toBe('v1-2');
    expect(await a.svc.own.get('k:1')).toBeUndefined();
  });

  it('survives app.close() twice', async () => {
    const { app, svc } = await boot({
      provider: 'redis',
      redis: { url: redis.server.url },
      namespace: redis.namespace,
      caches: { sessions: { l1: true } },
    });
    await svc.sessions.set('a', 1);
    await app.close();
    await app.close();
  });

  it('a memory named cache while root is redis keeps working when Redis is unreachable', async () => {
    const port = await freePort();
    const { svc } = await boot({
      provider: 'redis',
      redis: { url: `redis://127.0.0.1:${port}` },
      namespace: redis.namespace,
      caches: { sessions: { provider: 'memory' } },
    });
    await svc.sessions.set('a', 1);
    expect(await svc.sessions.get('a')).toBe(1);
  });

  it('enabled:false at the root, enabled on a named cache', async () => {
    const { svc } = await boot({
      provider: 'memory',
      enabled: false,
      caches: { sessions: { enabled: true } },
    });
    await svc.sessions.set('a', 1);
    expect(await svc.sessions.get('a')).toBe(1);
    await svc.own.set('a', 1);
    expect(await svc.own.get('a')).toBeUndefined();
  });

  it('l1 on one named cache: the bus invalidates the other instance, per namespace', async () => {
    const opts: CacheModuleOptions = {
      provider: 'redis',
      redis: { url: redis.server.url },
      namespace: redis.namespace,
      l1: true,
      caches: { sessions: { l1: true } },
    };
    const a = await boot(opts);
    const b = await boot(opts);
    await a.svc.sessions.set('x', 1);
    await a.svc.own.set('x', 'root');
    expect(await b.svc.sessions.get('x')).toBe(1);
    expect(await b.svc.own.get('x')).toBe('root');
    await a.svc.sessions.set('x', 2);
    await eventually(async () => (await b.svc.sessions.get('x')) === 2, 5000, 20);
    expect(await b.svc.own.get('x')).toBe('root');
    expect(await redis.raw.get(`${redis.namespace}.sessions:x`)).toBe('2');
  });

  it('CACHE_MANAGER stays on the default cache', async () => {
    const { app, svc } = await boot({ provider: 'memory', caches: { sessions: {} } });
    const cm = app.get<{ set(k: string, v: unknown): Promise<unknown> }>(CACHE_MANAGER);
    await cm.set('m', 1);
    expect(await svc.own.get('m')).toBe(1);
    expect(await svc.sessions.get('m')).toBeUndefined();
  });

  it('health of a named cache on a password URL that is down never shows the password', async () => {
    const port = await freePort();
    const { app } = await boot({
      provider: 'memory',
      caches: {
        sessions: { provider: 'redis', redis: { url: `redis://u:s3cretPW@127.0.0.1:${port}` } },
      },
    });
    const health = app.get(CacheHealthIndicator);
    const out = await Promise.resolve(
      (health as unknown as { isHealthy(k?: string): Promise<unknown> }).isHealthy('cache'),
    ).catch((e: unknown) => e);
    const text = JSON.stringify(out, Object.getOwnPropertyNames(out ?? {})) + String(out);
    expect(text).not.toContain('s3cretPW');
  });

  it('closes every connection at shutdown, pending writes flushed without errors', async () => {
    const logger = new CapturingLogger();
    const { app, svc } = await boot(
      {
        provider: 'redis',
        redis: { url: redis.server.url },
        namespace: redis.namespace,
        l1: true,
        caches: {
          sessions: { l1: true },
          other: { redis: { url: `${redis.server.url}/3` }, l1: true },
        },
      },
      logger,
    );
    void svc.sessions.set('a', 1);
    void svc.own.set('a', 1);
    void svc.load('z');
    await app.close();
    expect(logger.text).not.toMatch(/Connection is closed|error/i);
    expect(await redis.raw.get(`${redis.namespace}.sessions:a`)).toBe('1');
    await eventually(
      async () =>
        String(await redis.raw.client('LIST'))
          .trim()
          .split('\n').length === 1,
      5000,
      20,
    );
  });

  it('refuses one namespace on the same Redis reached through an equivalent URL', async () => {
    const error = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: redis.server.url },
          namespace: redis.namespace,
          caches: {
            sessions: { namespace: redis.namespace, redis: { url: `${redis.server.url}/0` } },
          },
        }),
      ],
    })
      .compile()
      .then(
        (ref) => ref.close(),
        (e: unknown) => e as Error,
      );
    expect(error).toBeInstanceOf(CacheConfigError);
  });
});
