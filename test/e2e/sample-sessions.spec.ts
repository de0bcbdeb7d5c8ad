import type { INestApplication } from '@nestjs/common';
import { Redis } from 'ioredis';
import request from 'supertest';
import { CacheModule, CacheService, getCacheToken, type CacheModuleOptions } from '../../lib';
import { SessionsModule } from '../../sample-app/sessions/sessions.module';
import { SESSIONS_CACHE } from '../../sample-app/sessions/sessions.service';
import { createHttpApp } from '../support/http-platforms';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

/** The sample app's sessions: a named cache with the rich serializer (issue 17, item 6). */
describe.each<[string, () => CacheModuleOptions]>([
  ['memory', () => ({ provider: 'memory' })],
  [
    'redis',
    () => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('sample-sessions'),
    }),
  ],
])("sample app's sessions (%s)", (backend, optionsFor) => {
  let app: INestApplication;
  let cache: CacheService;
  let sessions: CacheService;
  let options: CacheModuleOptions;
  const http = () => request(app.getHttpServer());

  beforeEach(async () => {
    options = optionsFor();
    app = await createHttpApp('express', {
      imports: [
        CacheModule.forRoot({
          isGlobal: true,
          ...options,
          caches: { [SESSIONS_CACHE]: { ttl: 1800, serializer: 'rich' } },
        }),
        SessionsModule,
      ],
    });
    cache = app.get(CacheService);
    sessions = app.get<CacheService>(getCacheToken(SESSIONS_CACHE));
  });

  afterEach(async () => {
    await sessions.clear();
    await cache.clear();
    await app.close();
  });

  it('keeps Dates and Sets through the cache, in the sessions namespace only', async () => {
    const created = await http()
      .post('/sessions')
      .send({ user: 'ada', roles: ['admin', 'dev'] })
      .expect(201);
    expect(created.body).toMatchObject({ user: 'ada', roles: ['admin', 'dev'], isAdmin: true });
    const id = created.body.id as string;
    // Read back from the cache: computed from a Date and a Set (a JSON round trip would throw).
    const read = await http().get(`/sessions/${id}`).expect(200);
    expect(read.body).toMatchObject({ id, isAdmin: true, createdAt: created.body.createdAt });
    expect(read.body.ageSeconds).toBeGreaterThanOrEqual(0);
    const stored = await sessions.get<{ roles: Set<string>; createdAt: Date }>(`session:${id}`);
    expect(stored?.roles).toBeInstanceOf(Set);
    expect(stored?.createdAt).toBeInstanceOf(Date);
    // Not in the default cache, and clearing it signs nobody out.
    await expect(cache.get(`session:${id}`)).resolves.toBeUndefined();
    await cache.clear();
    await http().get(`/sessions/${id}`).expect(200);
    if (backend === 'redis') {
      const raw = new Redis(sharedRedisUrl());
      try {
        const keys = await raw.keys(`*:session:${id}`);
        expect(keys).toEqual([`${options.namespace}.${SESSIONS_CACHE}:session:${id}`]);
        // devalue's text: readable with redis-cli GET, the Set and Date spelled out.
        const text = await raw.get(keys[0]);
        expect(text).toContain('"Set"');
        expect(text).toContain('"Date"');
      } finally {
        raw.disconnect();
      }
    }
    await http().delete(`/sessions/${id}`).expect(204);
    await http().get(`/sessions/${id}`).expect(404);
    await http().delete(`/sessions/${id}`).expect(404);
  });

  it('refuses a session without a user', async () => {
    await http()
      .post('/sessions')
      .send({ roles: ['admin'] })
      .expect(400);
  });
});
