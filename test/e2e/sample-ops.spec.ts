import type { INestApplication } from '@nestjs/common';
import request from 'supertest';
import { AppModule } from '../../sample-app/app.module';
import { createHttpApp, PLATFORMS } from '../support/http-platforms';

/**
 * Issue 15, item 5: the sample app (as `npm start` runs it: in-memory cache, OpenTelemetry
 * metrics on its own meter provider) serves `/health` (Terminus), `/metrics` (Prometheus text)
 * and `/cache/stats`, and they tell what the cache did.
 */
describe.each(PLATFORMS)("sample app's operator routes (%s)", (platform) => {
  let app: INestApplication;
  const http = () => request(app.getHttpServer() as Parameters<typeof request>[0]);

  beforeEach(async () => {
    app = await createHttpApp(platform, { imports: [AppModule] });
  });
  afterEach(() => app.close());

  /** The value of the Prometheus sample named `name` whose labels include all of `labels`. */
  function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
    for (const line of text.split('\n')) {
      const match = /^([a-z0-9_]+)\{(.*)\} (\S+)$/.exec(line);
      if (!match || match[1] !== name) continue;
      const found = Object.fromEntries(
        [...match[2].matchAll(/([a-z_]+)="([^"]*)"/g)].map(([, key, value]) => [key, value]),
      );
      if (Object.entries(labels).every(([key, value]) => found[key] === value)) {
        return Number(match[3]);
      }
    }
    return undefined;
  }

  it('GET /health: 200, both caches up, serving their in-process tier', async () => {
    const response = await http().get('/health').expect(200);
    // The default cache, and the named cache of the sample's sessions.
    const memory = { status: 'up', l1: { entries: 0, bytes: 0 }, serving: 'l1' };
    const cache = { ...memory, caches: { sessions: memory } };
    expect(response.body).toEqual({
      status: 'ok',
      info: { cache },
      error: {},
      details: { cache },
    });
  });

  it('GET /metrics: the requests, loader runs and L1 size of what the app just did', async () => {
    // The loader histogram is the meter provider's, which lives as long as the process (as in
    // production): it counts the loads of every app this process started before too.
    const loads = { cache_loader_result: 'success' };
    const before = (await http().get('/metrics').expect(200)).text;
    const loadedBefore = sample(before, 'cache_loader_duration_count', loads) ?? 0;
    await http().get('/products').expect(200);
    await http().get('/products').expect(200);
    await http().get('/products/p2').expect(200);
    const response = await http().get('/metrics').expect(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain/);
    const text = response.text;
    const wrap = { cache_name: 'default', cache_operation: 'wrap' };
    expect(sample(text, 'cache_requests_total', { ...wrap, cache_result: 'miss' })).toBe(2);
    expect(
      sample(text, 'cache_requests_total', { ...wrap, cache_result: 'hit', cache_tier: 'l1' }),
    ).toBe(1);
    expect(sample(text, 'cache_loader_duration_count', loads)).toBe(loadedBefore + 2);
    expect(sample(text, 'cache_l1_entries', { cache_name: 'default' })).toBe(2);
    expect(sample(text, 'cache_l1_size', { cache_name: 'default' })).toBeGreaterThan(0);
    expect(text).toMatch(/^# TYPE cache_requests_total counter$/m);
    expect(text).toMatch(/^# TYPE cache_loader_duration histogram$/m);
  });

  it('GET /cache/stats: the counters and the in-process tier', async () => {
    await http().get('/rates/EUR').expect(200);
    await http().get('/rates/EUR').expect(200);
    const { body } = await http().get('/cache/stats').expect(200);
    expect(body).toMatchObject({
      name: 'default',
      namespace: 'cache',
      hits: 1,
      misses: 1,
      sets: 1,
      loader: { runs: 1, errors: 0 },
      tiers: { l1: { hits: 1, entries: 1 } },
      bus: { state: 'off', connected: false },
    });
    expect(body.tiers.l2).toBeUndefined();
  });
});
