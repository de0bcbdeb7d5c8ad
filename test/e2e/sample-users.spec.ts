import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { CacheModule } from '../../lib';
import { UsersModule } from '../../sample-app/users/users.module';

describe('sample app: users (KeyConstructor + invalidation on save)', () => {
  let app: INestApplication;

  beforeEach(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot({ isGlobal: true, namespace: 'sample-users' }), UsersModule],
    }).compile();
    app = moduleRef.createNestApplication({ logger: false });
    await app.init();
  });

  afterEach(() => app.close());

  it('serves the payload from the cache until the user is saved', async () => {
    const server = app.getHttpServer();
    const first = await request(server).get('/users/1').expect(200);
    const second = await request(server).get('/users/1').expect(200);
    expect(second.body).toEqual(first.body);
    expect(second.body.databaseReads).toBe(1);
    const full = await request(server).get('/users/1?view=full').expect(200);
    expect(full.body.email).toBe('ada@example.com');
    const stats = await request(server).get('/users/1/stats').expect(200);

    await request(server).patch('/users/1').send({ name: 'Ada King' }).expect(200);

    const summary = await request(server).get('/users/1').expect(200);
    expect(summary.body.name).toBe('Ada King');
    expect(summary.body.renderedAt).not.toBe(first.body.renderedAt);
    const fullAgain = await request(server).get('/users/1?view=full').expect(200);
    expect(fullAgain.body.name).toBe('Ada King');
    const statsAgain = await request(server).get('/users/1/stats').expect(200);
    expect(statsAgain.body.computedAt).not.toBe(stats.body.computedAt);

    // Another user's payload was never touched.
    await request(server).get('/users/2').expect(200);
    const reads = (await request(server).get('/users/2').expect(200)).body.databaseReads;
    await request(server).patch('/users/1').send({ name: 'Ada' }).expect(200);
    expect((await request(server).get('/users/2').expect(200)).body.databaseReads).toBe(reads + 1);
  });

  it('wipes one user partition on demand', async () => {
    const server = app.getHttpServer();
    await request(server).get('/users/1').expect(200);
    await request(server).get('/users/1?view=full').expect(200);
    await request(server).get('/users/2').expect(200);
    expect((await request(server).delete('/users/1/cache').expect(200)).body).toEqual({
      deleted: 2,
    });
  });

  it('starts with three users, and GET /users/:id reports X-Cache', async () => {
    const server = app.getHttpServer();
    for (const [id, name] of [
      [1, 'Ada Lovelace'],
      [2, 'Alan Turing'],
      [3, 'Grace Hopper'],
    ] as const) {
      const first = await request(server).get(`/users/${id}`).expect(200);
      const second = await request(server).get(`/users/${id}`).expect(200);
      expect(first.body.name).toBe(name);
      expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
      expect(second.body.renderedAt).toBe(first.body.renderedAt);
    }
    await request(server).get('/users/4').expect(404);
  });

  it("replays the README's walk-through (Try it in the sample app)", async () => {
    const server = app.getHttpServer();
    const first = await request(server).get('/users/1').expect(200);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(first.body).toMatchObject({ id: 1, name: 'Ada Lovelace', databaseReads: 1 });

    const second = await request(server).get('/users/1').expect(200);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body.renderedAt).toBe(first.body.renderedAt);
    expect(second.body.databaseReads).toBe(1);

    await request(server)
      .patch('/users/1')
      .set('content-type', 'application/json')
      .send('{"name":"Ada King"}')
      .expect(200);
    const fresh = await request(server).get('/users/1').expect(200);
    expect(fresh.headers['x-cache']).toBe('MISS');
    expect(fresh.body.name).toBe('Ada King');

    const stats = await request(server).get('/users/1/stats').expect(200);
    expect(stats.headers['x-cache']).toBe('MISS');
    expect((await request(server).get('/users/1/stats').expect(200)).headers['x-cache']).toBe(
      'HIT',
    );
    expect(stats.body).toMatchObject({ userId: 1, logins: 41 });

    expect((await request(server).delete('/users/1/cache').expect(200)).body).toEqual({
      deleted: 1,
    });
    expect((await request(server).get('/users/1').expect(200)).headers['x-cache']).toBe('MISS');
  });
});
