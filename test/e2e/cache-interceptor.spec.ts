import {
  Controller,
  Get,
  Injectable,
  Module,
  Param,
  Post,
  Res,
  Sse,
  StreamableFile,
  UseGuards,
  UseInterceptors,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
} from '@nestjs/common';
import { APP_INTERCEPTOR } from '@nestjs/core';
import { of, type Observable } from 'rxjs';
import request from 'supertest';
import {
  CacheInterceptor,
  CacheKey,
  CacheModule,
  CachePerUser,
  CacheService,
  CacheTTL,
  Cacheable,
  MemoryCacheAdapter,
  type CacheModuleOptions,
} from '../../lib';
import { createHttpApp, PLATFORMS, type Platform } from '../support/http-platforms';

const calls: Record<string, number> = {};

/** The default key of a path: supertest sends `Host: 127.0.0.1:<port>`; the port is not kept. */
const urlKey = (path: string) => `http:127.0.0.1${path}`;
const count = (name: string) => (calls[name] = (calls[name] ?? 0) + 1);

/** A memory adapter that remembers the TTL of every write. */
class RecordingAdapter extends MemoryCacheAdapter {
  readonly ttls = new Map<string, number>();
  override async set(key: string, value: unknown, ttl: number): Promise<void> {
    this.ttls.set(key, ttl);
    await super.set(key, value, ttl);
  }
}

/** Opens the burst gate once every request has passed the guards. */
let gate: { arrived: number; release: () => void; opened: Promise<void> };
function resetGate(): void {
  let release!: () => void;
  const opened = new Promise<void>((resolve) => (release = resolve));
  gate = { arrived: 0, release, opened };
}

@Injectable()
class ArrivalGuard implements CanActivate {
  canActivate(): boolean {
    gate.arrived++;
    return true;
  }
}

/** Plays the part of an auth guard: `x-user` becomes `req.user`. */
/** A thenable that is not a Promise, as query builders are: resolves to the user id later. */
class LazyQuery implements PromiseLike<string | undefined> {
  constructor(private readonly id: string | undefined) {}
  then<R1 = string | undefined, R2 = never>(
    onfulfilled?: ((value: string | undefined) => R1 | PromiseLike<R1>) | null,
    onrejected?: ((reason: unknown) => R2 | PromiseLike<R2>) | null,
  ): PromiseLike<R1 | R2> {
    return new Promise<string | undefined>((resolve) => setTimeout(() => resolve(this.id), 1)).then(
      onfulfilled,
      onrejected,
    );
  }
}

@Injectable()
class FakeAuthGuard implements CanActivate {
  canActivate(context: ExecutionContext): boolean {
    const req = context.switchToHttp().getRequest<{
      headers: Record<string, string | undefined>;
      user?: { id: string };
    }>();
    const id = req.headers['x-user'];
    if (id) req.user = { id };
    return true;
  }
}

@Injectable()
class LookupService {
  @Cacheable('lookup:{id}')
  async find(id: string): Promise<{ id: string }> {
    count('lookup');
    return { id };
  }
}

@Controller()
@UseInterceptors(CacheInterceptor)
class ArticlesController {
  constructor(private readonly lookup: LookupService) {}

  @Get('articles')
  list(): { articles: string[]; n: number } {
    count('list');
    return { articles: ['a', 'b'], n: calls.list };
  }

  @Get('custom')
  @CacheKey('articles:custom')
  @CacheTTL(30)
  custom(): { n: number } {
    count('custom');
    return { n: calls.custom };
  }

  @Get('keyed/:id')
  @CacheKey((ctx) => {
    const id = ctx.switchToHttp().getRequest<{ params: { id: string } }>().params.id;
    return id === 'skip' ? undefined : `keyed:${id}`;
  })
  keyed(@Param('id') id: string): { id: string; n: number } {
    count('keyed');
    return { id, n: calls.keyed };
  }

  @Sse('events')
  events(): Observable<{ data: string }> {
    count('events');
    return of({ data: 'one' }, { data: 'two' });
  }

  @Get('dynamic-ttl')
  @CacheTTL(() => 12)
  dynamicTtl(): string {
    count('dynamicTtl');
    return 'dynamic';
  }

  @Post('articles')
  create(): { created: number } {
    count('create');
    return { created: calls.create };
  }

  @Get('file')
  file(): StreamableFile {
    count('file');
    return new StreamableFile(Buffer.from('file-body'));
  }

  // No declared return type: only the value tells the interceptor it is a file.
  @Get('untyped-file')
  untypedFile() {
    count('untypedFile');
    return new StreamableFile(Buffer.from(`untyped-${calls.untypedFile}`));
  }

  @Get('raw')
  raw(@Res() res: { send?: (body: string) => void; status?: (code: number) => unknown }): void {
    count('raw');
    res.send?.(`raw-${calls.raw}`);
  }

  @Get('me')
  me(@Param() _p: unknown, @Res({ passthrough: true }) _res: unknown): string {
    count('me-passthrough');
    return 'never cached: writes the response object';
  }

  @Get('profile')
  profile(): { seenBy: number } {
    count('profile');
    return { seenBy: calls.profile };
  }

  @Get('orders')
  @UseGuards(FakeAuthGuard)
  @CachePerUser()
  orders(): { n: number } {
    count('orders');
    return { n: calls.orders };
  }

  @Get('mine')
  @UseGuards(FakeAuthGuard)
  @CachePerUser((ctx) => ctx.switchToHttp().getRequest<{ user?: { id: string } }>().user?.id)
  mine(): { n: number } {
    count('mine');
    return { n: calls.mine };
  }

  // identify answers with a thenable that is not a native Promise (a lazy query, say).
  @Get('lazy')
  @UseGuards(FakeAuthGuard)
  @CachePerUser(
    (ctx) => new LazyQuery(ctx.switchToHttp().getRequest<{ user?: { id: string } }>().user?.id),
  )
  lazy(): { n: number } {
    count('lazy');
    return { n: calls.lazy };
  }

  // identify answers with an object: it names nobody, so nothing is shared.
  @Get('object-identity')
  @UseGuards(FakeAuthGuard)
  @CachePerUser(() => ({ id: 'x' }) as unknown as string)
  objectIdentity(): { n: number } {
    count('objectIdentity');
    return { n: calls.objectIdentity };
  }

  @Get('burst')
  @UseGuards(ArrivalGuard)
  async burst(): Promise<{ ok: boolean }> {
    count('burst');
    await gate.opened;
    return { ok: true };
  }

  @Get('decorated/:id')
  @Cacheable('decorated:{id}')
  decorated(@Param('id') id: string): { id: string } {
    count('decorated');
    return { id };
  }

  @Post('lookup/:id')
  postLookup(@Param('id') id: string): Promise<{ id: string }> {
    return this.lookup.find(id);
  }
}

/** A controller cached only through a global interceptor. */
@Controller('global')
class GlobalController {
  @Get('plain')
  plain(): { n: number } {
    count('global-plain');
    return { n: calls['global-plain'] };
  }

  @Get('decorated/:id')
  @Cacheable('global-decorated:{id}')
  decorated(@Param('id') id: string): { id: string } {
    count('global-decorated');
    return { id };
  }
}

@Module({
  controllers: [GlobalController],
  providers: [{ provide: APP_INTERCEPTOR, useClass: CacheInterceptor }],
})
class GlobalInterceptorModule {}

async function start(
  platform: Platform,
  options: CacheModuleOptions = {},
  { globalInterceptor = false } = {},
) {
  const adapter = new RecordingAdapter({ maxEntries: 1000, sweepInterval: 0 });
  const app = await createHttpApp(platform, {
    imports: [
      CacheModule.forRoot({ isGlobal: true, adapter, ttl: 300, ...options }),
      ...(globalInterceptor ? [GlobalInterceptorModule] : []),
    ],
    controllers: [ArticlesController],
    providers: [LookupService, ArrivalGuard, FakeAuthGuard],
  });
  return { app, adapter, cache: app.get(CacheService) };
}

describe.each(PLATFORMS)('CacheInterceptor (%s)', (platform) => {
  let app: INestApplication;
  let adapter: RecordingAdapter;
  let cache: CacheService;
  const get = (path: string) => request(app.getHttpServer()).get(path);

  beforeEach(async () => {
    for (const name of Object.keys(calls)) delete calls[name];
    ({ app, adapter, cache } = await start(platform));
  });

  afterEach(async () => {
    await app.close();
  });

  it('caches GET responses by URL, with X-Cache MISS then HIT', async () => {
    const first = await get('/articles').expect(200);
    const second = await get('/articles').expect(200);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(second.headers['x-cache']).toBe('HIT');
    expect(second.body).toEqual(first.body);
    expect(calls.list).toBe(1);
    expect(await cache.get(urlKey('/articles'))).toEqual({ body: { articles: ['a', 'b'], n: 1 } });
    expect(adapter.ttls.get(urlKey('/articles'))).toBe(300);

    await get('/articles?page=2').expect(200);
    expect(calls.list).toBe(2);
  });

  it('uses @CacheKey and @CacheTTL (seconds)', async () => {
    await get('/custom').expect(200);
    const second = await get('/custom').expect(200);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(calls.custom).toBe(1);
    expect(await cache.get('articles:custom')).toEqual({ body: { n: 1 } });
    expect(adapter.ttls.get('articles:custom')).toBe(30);

    await get('/dynamic-ttl').expect(200);
    expect(adapter.ttls.get(urlKey('/dynamic-ttl'))).toBe(12);
  });

  it('uses a @CacheKey function, which may skip a request', async () => {
    await get('/keyed/a').expect(200);
    const hit = await get('/keyed/a').expect(200);
    expect(hit.headers['x-cache']).toBe('HIT');
    expect(await cache.get('keyed:a')).toEqual({ body: { id: 'a', n: 1 } });
    await get('/keyed/skip').expect(200);
    const skipped = await get('/keyed/skip').expect(200);
    expect(skipped.headers['x-cache']).toBeUndefined();
    expect(calls.keyed).toBe(3);
  });

  it('leaves server-sent event streams alone', async () => {
    const first = await get('/events').expect(200);
    const second = await get('/events').expect(200);
    expect(first.text).toContain('data: one');
    expect(first.text).toContain('data: two');
    expect(second.text).toContain('data: two');
    expect(calls.events).toBe(2);
    expect(adapter.ttls.size).toBe(0);
  });

  it('never caches other HTTP methods', async () => {
    const first = await request(app.getHttpServer()).post('/articles').expect(201);
    const second = await request(app.getHttpServer()).post('/articles').expect(201);
    expect(first.body).toEqual({ created: 1 });
    expect(second.body).toEqual({ created: 2 });
    expect(first.headers['x-cache']).toBeUndefined();
    expect(adapter.ttls.size).toBe(0);
  });

  it('leaves StreamableFile handlers alone', async () => {
    const first = await get('/file').expect(200);
    const second = await get('/file').expect(200);
    expect(Buffer.from(first.body as Buffer).toString()).toBe('file-body');
    expect(Buffer.from(second.body as Buffer).toString()).toBe('file-body');
    expect(calls.file).toBe(2);
    expect(first.headers['x-cache']).toBeUndefined();
    expect(adapter.ttls.size).toBe(0);
  });

  it('never caches a file returned by a handler without a declared return type', async () => {
    const bodies: string[] = [];
    for (let i = 0; i < 3; i++) {
      const response = await get('/untyped-file').expect(200);
      bodies.push(Buffer.from(response.body as Buffer).toString());
      expect(response.headers['x-cache']).toBeUndefined();
    }
    expect(bodies).toEqual(['untyped-1', 'untyped-2', 'untyped-3']);
    expect(calls.untypedFile).toBe(3);
    expect(adapter.ttls.size).toBe(0);
  });

  it('leaves @Res() handlers alone', async () => {
    const first = await get('/raw').expect(200);
    const second = await get('/raw').expect(200);
    expect(first.text).toBe('raw-1');
    expect(second.text).toBe('raw-2');
    await get('/me').expect(200);
    await get('/me').expect(200);
    expect(calls['me-passthrough']).toBe(2);
    expect(adapter.ttls.size).toBe(0);
  });

  it('never answers a request with credentials from another request’s entry', async () => {
    // An anonymous request warms the URL entry.
    const anonymous = await get('/profile').expect(200);
    expect(anonymous.body).toEqual({ seenBy: 1 });

    const alice = await get('/profile').set('Authorization', 'Bearer alice').expect(200);
    const bob = await get('/profile').set('Cookie', 'session=bob').expect(200);
    const aliceAgain = await get('/profile').set('Authorization', 'Bearer alice').expect(200);
    expect(alice.body).toEqual({ seenBy: 2 });
    expect(bob.body).toEqual({ seenBy: 3 });
    expect(aliceAgain.body).toEqual({ seenBy: 4 });
    expect(alice.headers['x-cache']).toBeUndefined();
    // ... and a credentialed response is never stored for others.
    expect(await cache.get(urlKey('/profile'))).toEqual({ body: { seenBy: 1 } });
    const anonymousAgain = await get('/profile').expect(200);
    expect(anonymousAgain.body).toEqual({ seenBy: 1 });
  });

  it('@CachePerUser gives each user their own entry (credential hash by default)', async () => {
    const alice1 = await get('/orders').set('Authorization', 'Bearer alice').expect(200);
    const bob1 = await get('/orders').set('Authorization', 'Bearer bob').expect(200);
    const alice2 = await get('/orders').set('Authorization', 'Bearer alice').expect(200);
    const bob2 = await get('/orders').set('Authorization', 'Bearer bob').expect(200);
    expect(alice1.body).toEqual({ n: 1 });
    expect(bob1.body).toEqual({ n: 2 });
    expect(alice2.body).toEqual({ n: 1 });
    expect(bob2.body).toEqual({ n: 2 });
    expect([alice1, bob1, alice2, bob2].map((r) => r.headers['x-cache'])).toEqual([
      'MISS',
      'MISS',
      'HIT',
      'HIT',
    ]);
    expect(calls.orders).toBe(2);
    // Anonymous requests share their own entry, apart from both users.
    expect((await get('/orders').expect(200)).body).toEqual({ n: 3 });
    expect((await get('/orders').expect(200)).body).toEqual({ n: 3 });
  });

  it('@CachePerUser(identify) keys by the identified user', async () => {
    const a1 = await get('/mine').set('Cookie', 's=1').set('x-user', 'alice').expect(200);
    const a2 = await get('/mine').set('Cookie', 's=2').set('x-user', 'alice').expect(200);
    const b1 = await get('/mine').set('Cookie', 's=3').set('x-user', 'bob').expect(200);
    expect(a1.body).toEqual({ n: 1 });
    expect(a2.body).toEqual({ n: 1 }); // another session of the same user
    expect(b1.body).toEqual({ n: 2 });
    expect(await cache.has(`http:user:alice:${urlKey('/mine')}`)).toBe(true);
    // Credentials without an identity are not cached at all.
    await get('/mine').set('Cookie', 's=4').expect(200);
    await get('/mine').set('Cookie', 's=4').expect(200);
    expect(calls.mine).toBe(4);
  });

  it('@CachePerUser(identify) awaits any thenable, never sharing one entry between users', async () => {
    const a1 = await get('/lazy').set('Cookie', 's=1').set('x-user', 'alice').expect(200);
    const b1 = await get('/lazy').set('Cookie', 's=2').set('x-user', 'bob').expect(200);
    const a2 = await get('/lazy').set('Cookie', 's=3').set('x-user', 'alice').expect(200);
    expect([a1.body, b1.body, a2.body]).toEqual([{ n: 1 }, { n: 2 }, { n: 1 }]);
    expect(b1.headers['x-cache']).toBe('MISS');
    expect(await cache.has(`http:user:bob:${urlKey('/lazy')}`)).toBe(true);

    await get('/object-identity').set('Cookie', 's=1').expect(200);
    const other = await get('/object-identity').set('Cookie', 's=2').expect(200);
    expect(other.body).toEqual({ n: 2 });
  });

  it('runs the handler once for a burst of requests to a cold URL', async () => {
    resetGate();
    const server = app.getHttpServer() as import('node:http').Server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as import('node:net').AddressInfo;
    const responses = Promise.all(
      Array.from({ length: 20 }, () =>
        request(`http://127.0.0.1:${port}`)
          .get('/burst')
          .then((res) => res),
      ),
    );
    try {
      for (let i = 0; i < 400 && gate.arrived < 20; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(gate.arrived).toBe(20);
      // Every request has passed its guard; give the interceptors a moment to join the load.
      await new Promise((resolve) => setTimeout(resolve, 50));
    } finally {
      gate.release();
    }
    const results = await responses;
    expect(results.every((r) => r.status === 200 && r.body.ok === true)).toBe(true);
    expect(calls.burst).toBe(1);
    expect(results.filter((r) => r.headers['x-cache'] === 'MISS')).toHaveLength(20);
  });

  it('defers to @Cacheable on the handler and reports its status', async () => {
    const first = await get('/decorated/1').expect(200);
    const second = await get('/decorated/1').expect(200);
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    expect(calls.decorated).toBe(1);
    expect(await cache.has('decorated:1')).toBe(true);
    expect(await cache.has(urlKey('/decorated/1'))).toBe(false);
  });

  it('reports the status of @Cacheable services a route calls', async () => {
    const first = await request(app.getHttpServer()).post('/lookup/9').expect(201);
    const second = await request(app.getHttpServer()).post('/lookup/9').expect(201);
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    expect(calls.lookup).toBe(1);
  });

  it('works as a global interceptor (APP_INTERCEPTOR)', async () => {
    await app.close();
    ({ app, adapter, cache } = await start(platform, {}, { globalInterceptor: true }));
    await get('/global/plain').expect(200);
    const second = await get('/global/plain').expect(200);
    expect(second.headers['x-cache']).toBe('HIT');
    expect(calls['global-plain']).toBe(1);

    const d1 = await get('/global/decorated/1').expect(200);
    const d2 = await get('/global/decorated/1').expect(200);
    expect([d1.headers['x-cache'], d2.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    expect(calls['global-decorated']).toBe(1);
    expect(await cache.has(urlKey('/global/decorated/1'))).toBe(false);
  });

  it('does not deadlock when applied twice (globally and on the controller)', async () => {
    await app.close();
    ({ app, adapter, cache } = await start(platform, {}, { globalInterceptor: true }));
    // ArticlesController also has @UseInterceptors(CacheInterceptor): both cache /articles.
    const first = await get('/articles').expect(200);
    const second = await get('/articles').expect(200);
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    expect(calls.list).toBe(1);
  });

  it('caches nothing with enabled: false', async () => {
    await app.close();
    ({ app, adapter, cache } = await start(platform, { enabled: false }));
    await get('/articles').expect(200);
    const second = await get('/articles').expect(200);
    expect(second.body).toEqual({ articles: ['a', 'b'], n: 2 });
    expect(second.headers['x-cache']).toBeUndefined();
  });
});
