import { createRequire } from 'node:module';
import { Controller, Get, type INestApplication } from '@nestjs/common';
import { HealthCheck, HealthCheckService, TerminusModule } from '@nestjs/terminus';
import { Redis } from 'ioredis';
import request from 'supertest';
import {
  CacheAdapter,
  CacheHealthIndicator,
  CacheModule,
  CacheService,
  FailoverCacheAdapter,
  type CacheHealthDetails,
  type CacheModuleOptions,
} from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { eventually } from '../support/eventually';
import { createHttpApp, PLATFORMS, type Platform } from '../support/http-platforms';
import { CapturingLogger } from '../support/logs';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/**
 * Issue 15, item 4: `CacheHealthIndicator` under the real `@nestjs/terminus` (11 on the root
 * devDependencies, 12 under `npm run test:nest12`) and a real redis-server that is killed,
 * restarted and made deaf. A degraded cache is "degraded but up" (`up` with `degraded: true`)
 * on every terminus; terminus 12's own `degraded` status is there on request (terminus 11
 * drops a status it does not know, without a word).
 */

// The version this run resolves (the Nest 12 run resolves @nestjs/* in compat/nest12).
const TERMINUS_MAJOR = Number(
  (createRequire(__filename)('@nestjs/terminus/package.json') as { version: string }).version.split(
    '.',
  )[0],
);
const KNOWS_DEGRADED = TERMINUS_MAJOR >= 12;

const PING_TIMEOUT_MS = 500;

@Controller('health')
class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly cache: CacheHealthIndicator,
  ) {}

  /** The default shape: degraded but up (typed `up | down`: no cast on any terminus). */
  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.cache.isHealthy('cache', { timeout: PING_TIMEOUT_MS })]);
  }

  /** Terminus 12's own `degraded` status, asked for. */
  @Get('native')
  @HealthCheck()
  native() {
    return this.health.check([
      // Typed with `degraded` among its statuses, which terminus 11's types do not know.
      () =>
        this.cache.isHealthy('cache', {
          timeout: PING_TIMEOUT_MS,
          degraded: 'degraded',
        }) as Promise<Record<'cache', { status: 'up' | 'down' }>>,
    ]);
  }
}

/** Terminus's response body. */
interface HealthBody {
  status: string;
  info?: Record<string, CacheHealthDetails>;
  error?: Record<string, CacheHealthDetails>;
  details: Record<string, CacheHealthDetails | undefined>;
}

describe.each(PLATFORMS)(
  'CacheHealthIndicator under @nestjs/terminus (%s)',
  (platform: Platform) => {
    let server: RedisServer;
    let app: INestApplication | undefined;
    const logger = new CapturingLogger();

    beforeAll(async () => {
      server = await RedisServer.start();
    });
    afterAll(async () => {
      await server.stop();
    });
    afterEach(async () => {
      await app?.close();
      app = undefined;
      if (!server.running) await server.restart();
    });

    const start = async (options: CacheModuleOptions) => {
      app = await createHttpApp(
        platform,
        {
          imports: [
            TerminusModule.forRoot({ logger: false }),
            CacheModule.forRoot({ namespace: uniqueNamespace('health'), ...options }),
          ],
          controllers: [HealthController],
        },
        logger,
      );
      return app;
    };
    const get = async (path = '/health') => {
      const response = await request((app as INestApplication).getHttpServer()).get(path);
      return { code: response.status, body: response.body as HealthBody };
    };
    /**
     * GET /health until it answers `code` with the cache's status `status` (`up` meaning fully
     * up: on terminus 11 a degraded cache is `up` too, with `degraded: true`). Returns that answer.
     */
    const until = async (code: number, status: 'up' | 'down') => {
      let last: Awaited<ReturnType<typeof get>> | undefined;
      await eventually(async () => {
        last = await get();
        const cache = last.body.details?.cache;
        return last.code === code && cache?.status === status && cache.degraded === undefined;
      }, 20_000).catch((error: Error) => {
        throw new Error(`${error.message}; last answer: ${JSON.stringify(last)}`);
      });
      return last as Awaited<ReturnType<typeof get>>;
    };

    it('memory: 200, status ok, the cache up and serving from the L1', async () => {
      const started = await start({ provider: 'memory' });
      await started.get(CacheService).set('k', 'v');
      const { code, body } = await get();
      expect(code).toBe(200);
      expect(body.status).toBe('ok');
      expect(body.details.cache).toEqual({
        status: 'up',
        l1: { entries: 1, bytes: expect.any(Number) },
        serving: 'l1',
      });
      expect(body.info).toEqual(body.details);
    });

    it('redis without failover: up, 503 down while Redis is dead, up again after a restart', async () => {
      await start({ provider: 'redis', redis: { url: server.url } });
      const up = await get();
      expect(up.code).toBe(200);
      expect(up.body.status).toBe('ok');
      expect(up.body.details.cache).toEqual({
        status: 'up',
        l2: { status: 'up', latencyMs: expect.any(Number) },
        serving: 'l2',
      });

      await server.kill();
      const down = await until(503, 'down');
      expect(down.body.status).toBe('error');
      expect(down.body.error?.cache).toEqual(down.body.details.cache);
      expect(down.body.details.cache).toMatchObject({
        status: 'down',
        reason: expect.any(String),
        l2: { status: 'down', error: expect.any(String) },
      });
      expect(down.body.details.cache).not.toHaveProperty('degraded');

      await server.restart();
      const back = await until(200, 'up');
      expect(back.body.status).toBe('ok');
      expect(back.body.details.cache).not.toHaveProperty('reason');
    });

    it('failover: 200 and degraded (serving the L1, circuit open) while Redis is dead; up after a restart', async () => {
      const started = await start({
        provider: 'redis',
        redis: { url: server.url },
        failover: { failureThreshold: 1, cooldown: 0.3, timeout: 0.5 },
      });
      const adapter = started.get<CacheAdapter, FailoverCacheAdapter>(CacheAdapter);
      const cache = started.get(CacheService);
      await cache.set('k', 'v');
      expect((await get()).body.details.cache).toMatchObject({
        status: 'up',
        circuit: 'closed',
        serving: 'l2',
      });

      await server.kill();
      await eventually(async () => {
        await cache.get('k');
        return adapter.state === 'open';
      });
      const degraded = await get();
      expect(degraded.code).toBe(200);
      const shape = {
        degraded: true,
        reason: expect.any(String),
        l2: { status: 'down', error: expect.any(String) },
        circuit: 'open',
        serving: 'l1',
      };
      // Degraded but up, on every terminus.
      expect(degraded.body.status).toBe('ok');
      expect(degraded.body.details.cache).toMatchObject({ status: 'up', ...shape });
      expect(degraded.body.info?.cache).toEqual(degraded.body.details.cache);
      // Terminus 12's own status, asked for; terminus 11 drops a status it does not know.
      const native = await get('/health/native');
      expect(native.code).toBe(200);
      if (KNOWS_DEGRADED) {
        expect(native.body.status).toBe('degraded');
        expect(native.body.details.cache).toMatchObject({ status: 'degraded', ...shape });
      } else {
        expect(native.body.status).toBe('ok');
        expect(native.body.details.cache).toBeUndefined();
      }

      await server.restart();
      const back = await until(200, 'up');
      expect(back.body.status).toBe('ok');
      expect(back.body.details.cache).toMatchObject({ circuit: 'closed', serving: 'l2' });
      expect(back.body.details.cache).not.toHaveProperty('degraded');
    });

    it('l1 + bus: degraded while the bus is deaf (Redis answering), up when it hears again', async () => {
      // The subscriber reconnects slowly, so the bus stays deaf long enough to be seen.
      const started = await start({
        provider: 'redis',
        redis: { url: server.url, retryStrategy: () => 3000 },
        l1: true,
      });
      const stack = started.get(CacheStack);
      await eventually(async () => stack.busState === 'live', 5000, 10);
      expect((await get()).body.details.cache).toMatchObject({
        status: 'up',
        bus: 'live',
        l2: { status: 'up' },
      });

      const raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
      try {
        await raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
      } finally {
        raw.disconnect();
      }
      await eventually(async () => stack.busState === 'deaf', 2000, 5);
      const deaf = await get();
      expect(deaf.code).toBe(200);
      expect(deaf.body.status).toBe('ok');
      expect(deaf.body.details.cache).toMatchObject({
        status: 'up',
        degraded: true,
        reason: expect.any(String),
        bus: 'deaf',
        l2: { status: 'up' },
      });

      await eventually(async () => stack.busState === 'live', 10_000, 10);
      const back = await until(200, 'up');
      expect(back.body.details.cache).toMatchObject({ bus: 'live' });
    });
  },
);

describe('CacheHealthIndicator: no password in a health response', () => {
  const PASSWORD = 'health-s3cret-Zq81';
  let server: RedisServer;
  let app: INestApplication | undefined;
  const logger = new CapturingLogger();

  beforeAll(async () => {
    server = await RedisServer.start({ args: ['--requirepass', PASSWORD] });
  });
  afterAll(async () => {
    await server.stop();
  });
  afterEach(async () => {
    await app?.close();
    app = undefined;
    if (!server.running) await server.restart();
  });

  const start = async (password: string, options: CacheModuleOptions = {}) => {
    app = await createHttpApp(
      'express',
      {
        imports: [
          TerminusModule.forRoot({ logger: false }),
          CacheModule.forRoot({
            namespace: uniqueNamespace('health'),
            provider: 'redis',
            redis: { url: `redis://:${encodeURIComponent(password)}@127.0.0.1:${server.port}` },
            ...options,
          }),
        ],
        controllers: [HealthController],
      },
      logger,
    );
  };
  const get = async () => {
    const response = await request((app as INestApplication).getHttpServer()).get('/health');
    return { code: response.status, text: response.text, body: response.body as HealthBody };
  };

  it('the right password, Redis killed: down, and the response never shows the password', async () => {
    await start(PASSWORD);
    const up = await get();
    expect(up.body.details.cache).toMatchObject({ status: 'up', l2: { status: 'up' } });
    await server.kill();
    let down = await get();
    await eventually(async () => (down = await get()).code === 503);
    expect(down.body.details.cache).toMatchObject({ status: 'down', l2: { status: 'down' } });
    expect(down.text).not.toContain(PASSWORD);
    expect(down.text).not.toContain(encodeURIComponent(PASSWORD));
    expect(logger.text).not.toContain(PASSWORD);
  });

  it('a wrong password: down with the server refusing it, never showing it', async () => {
    const wrong = 'wrong-pa55word-Qx7';
    await start(wrong, { failover: { failureThreshold: 1, cooldown: 0.3, timeout: 0.5 } });
    let answer = await get();
    await eventually(async () => (answer = await get()).body.details.cache?.l2?.status === 'down');
    expect(answer.code).toBe(200);
    expect(answer.body.details.cache).toMatchObject({ degraded: true, serving: 'l1' });
    expect(answer.text).not.toContain(wrong);
    expect(answer.text).not.toContain(PASSWORD);
    expect(logger.text).not.toContain(wrong);
  });
});
