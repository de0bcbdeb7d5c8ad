import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { CacheModule, CacheService, type CacheModuleOptions } from '../../lib';
import { RatesModule } from '../../sample-app/rates/rates.module';
import { RatesUpstream } from '../../sample-app/rates/rates.upstream';
import { eventually } from '../support/eventually';
import { createHttpApp, PLATFORMS } from '../support/http-platforms';
import { CapturingLogger } from '../support/logs';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

const backends: Array<[string, () => CacheModuleOptions]> = [
  ['memory', () => ({ provider: 'memory' })],
  [
    'redis',
    () => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('sample-rates'),
    }),
  ],
];

const combos = PLATFORMS.flatMap((platform) =>
  backends.map(([backend, options]) => [platform, backend, options] as const),
);

describe.each(combos)(
  "sample app's rates: a slow, failing upstream served from grace (%s, %s)",
  (platform, _backend, optionsFor) => {
    let app: INestApplication;
    let upstream: RatesUpstream;
    let cache: CacheService;
    let logger: CapturingLogger;
    const http = () => request(app.getHttpServer());

    beforeEach(async () => {
      logger = new CapturingLogger();
      app = await createHttpApp(
        platform,
        { imports: [CacheModule.forRoot({ isGlobal: true, ...optionsFor() }), RatesModule] },
        logger,
      );
      upstream = app.get(RatesUpstream);
      cache = app.get(CacheService);
    });

    afterEach(async () => {
      await cache.clear();
      await app.close();
    });

    it('answers with the last rate, X-Cache: STALE, while the upstream fails', async () => {
      const first = await http().get('/rates/eur').expect(200);
      expect(first.headers['x-cache']).toBe('MISS');
      expect(first.body).toMatchObject({ currency: 'EUR', upstreamCalls: 1 });
      const hit = await http().get('/rates/EUR').expect(200);
      expect(hit.headers['x-cache']).toBe('HIT');
      expect(hit.body.fetchedAt).toBe(first.body.fetchedAt);

      await http().post('/rates/upstream').send({ failing: true }).expect(200, {
        failing: true,
        delayMs: 50,
      });
      // As if the 5 s TTL had passed: the entry is expired, and kept for its grace.
      expect(await cache.expire('rate:EUR')).toBe(true);

      const stale = await http().get('/rates/EUR').expect(200);
      expect(stale.headers['x-cache']).toBe('STALE');
      expect(stale.body).toMatchObject({ rate: first.body.rate, fetchedAt: first.body.fetchedAt });
      expect(upstream.calls).toBe(2); // it was tried, and failed
      expect(logger.warnings().join('\n')).toContain('serving its stale value');

      // Within the back-off, the failing upstream is not called again.
      const again = await http().get('/rates/EUR').expect(200);
      expect(again.headers['x-cache']).toBe('STALE');
      expect(upstream.calls).toBe(2);
    });

    it('answers with the last rate while a slow upstream call refreshes it in the background', async () => {
      const first = await http().get('/rates/USD').expect(200);
      expect(first.headers['x-cache']).toBe('MISS');
      await http().post('/rates/upstream').send({ delayMs: 1000 }).expect(200);
      expect(await cache.expire('rate:USD')).toBe(true);

      // The upstream takes 1 s; timeouts.soft (0.2 s) answers with the stale rate first.
      const stale = await http().get('/rates/USD').expect(200);
      expect(stale.headers['x-cache']).toBe('STALE');
      expect(stale.body.fetchedAt).toBe(first.body.fetchedAt);

      // The slow call finishes and is stored: a later request hits the new rate.
      let fresh: request.Response | undefined;
      await eventually(async () => {
        fresh = await http().get('/rates/USD').expect(200);
        return fresh.headers['x-cache'] === 'HIT';
      });
      expect(fresh?.body.fetchedAt).not.toBe(first.body.fetchedAt);
      expect(upstream.calls).toBe(2);
    });

    it('fails as before when there is no stale rate to fall back on', async () => {
      await http().post('/rates/upstream').send({ failing: true }).expect(200);
      await http().get('/rates/GBP').expect(503);
      expect(await cache.get('rate:GBP')).toBeUndefined();
    });

    it('rejects a malformed upstream mode', async () => {
      await http().post('/rates/upstream').send({ failing: 'yes' }).expect(400);
      await http().post('/rates/upstream').send({ delayMs: -1 }).expect(400);
      expect(upstream.current).toEqual({ failing: false, delayMs: 50 });
    });
  },
);
