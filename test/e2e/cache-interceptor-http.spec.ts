import {
  Controller,
  Get,
  Header,
  Headers,
  HttpCode,
  Injectable,
  Module,
  Redirect,
  Req,
  Res,
  SetMetadata,
  UseGuards,
  UseInterceptors,
  type CallHandler,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
  type MiddlewareConsumer,
  type ModuleMetadata,
  type NestInterceptor,
  type NestModule,
} from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { map, type Observable } from 'rxjs';
import request from 'supertest';
import {
  CacheInterceptor,
  CacheModule,
  CacheService,
  MemoryCacheAdapter,
  type CacheModuleOptions,
} from '../../lib';
import { PLATFORMS, type Platform } from '../support/http-platforms';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

/** How many times each handler ran. */
const runs: Record<string, number> = {};
const run = (name: string) => (runs[name] = (runs[name] ?? 0) + 1);

/** A memory adapter that remembers every key written. */
class RecordingAdapter extends MemoryCacheAdapter {
  readonly written: string[] = [];
  override async set(key: string, value: unknown, ttl: number): Promise<void> {
    this.written.push(key);
    await super.set(key, value, ttl);
  }
}

/** Express response or Fastify reply: both have `status()` and `header()`. */
interface AnyResponse {
  status(code: number): unknown;
  header(name: string, value: string): unknown;
  cookie?: (name: string, value: string) => unknown;
}

/** Sets a cookie the platform's own way: `res.cookie` on Express, the header on Fastify. */
function setCookie(res: AnyResponse): void {
  if (typeof res.cookie === 'function') res.cookie('session', 'abc');
  else res.header('Set-Cookie', 'session=abc; Path=/');
}

/** What the test interceptors do to a route's response. */
const Act = (...acts: string[]) => SetMetadata('test:acts', acts);
const actsOf = (context: ExecutionContext) =>
  (Reflect.getMetadata('test:acts', context.getHandler()) ?? []) as string[];

/** Runs outside CacheInterceptor: acts on the response after the cached value comes back. */
@Injectable()
class OuterInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const acts = actsOf(context);
    const res = context.switchToHttp().getResponse<AnyResponse>();
    return next.handle().pipe(
      map((body: unknown) => {
        if (acts.includes('outer-status')) res.status(202);
        if (acts.includes('outer-private')) res.header('Cache-Control', 'Private');
        if (acts.includes('outer-cookie')) setCookie(res);
        if (acts.includes('outer-vary')) res.header('Vary', 'X-Flavour');
        return body;
      }),
    );
  }
}

/** Runs inside CacheInterceptor, between it and the handler. */
@Injectable()
class InnerInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const acts = actsOf(context);
    const res = context.switchToHttp().getResponse<AnyResponse>();
    return next.handle().pipe(
      map((body: unknown) => {
        if (acts.includes('inner-status')) res.status(201);
        if (acts.includes('inner-no-store')) res.header('Cache-Control', 'max-age=60, no-store');
        if (acts.includes('inner-cookie')) setCookie(res);
        if (acts.includes('inner-vary')) res.header('Vary', 'X-Flavour');
        return body;
      }),
    );
  }
}

@Controller('h')
@UseInterceptors(OuterInterceptor, CacheInterceptor, InnerInterceptor)
class RulesController {
  @Get('plain')
  plain() {
    return { n: run('plain') };
  }

  @Get('public')
  @Header('Cache-Control', 'public, max-age=60')
  publicRoute() {
    return { n: run('public') };
  }

  @Get('private')
  @Header('Cache-Control', 'max-age=60, private')
  privateRoute() {
    return { n: run('private') };
  }

  @Get('private-field')
  @Header('Cache-Control', 'private="Set-Cookie", max-age=60')
  privateField() {
    return { n: run('private-field') };
  }

  @Get('no-store')
  @Header('Cache-Control', 'No-Store')
  noStore() {
    return { n: run('no-store') };
  }

  @Get('no-cache')
  @Header('Cache-Control', 'max-age=0,NO-CACHE')
  noCache() {
    return { n: run('no-cache') };
  }

  @Get('cookie')
  @Header('Set-Cookie', 'seen=1; Path=/')
  cookie() {
    return { n: run('cookie') };
  }

  @Get('http-code')
  @HttpCode(203)
  httpCode() {
    return { n: run('http-code') };
  }

  @Get('redirect')
  @Redirect('/h/plain', 302)
  redirect() {
    run('redirect');
    return { url: '/h/plain' };
  }

  @Get('inner-status')
  @Act('inner-status')
  innerStatus() {
    return { n: run('inner-status') };
  }

  @Get('outer-status')
  @Act('outer-status')
  outerStatus() {
    return { n: run('outer-status') };
  }

  @Get('inner-no-store')
  @Act('inner-no-store')
  innerNoStore() {
    return { n: run('inner-no-store') };
  }

  @Get('outer-private')
  @Act('outer-private')
  outerPrivate() {
    return { n: run('outer-private') };
  }

  @Get('inner-cookie')
  @Act('inner-cookie')
  innerCookie() {
    return { n: run('inner-cookie') };
  }

  @Get('outer-cookie')
  @Act('outer-cookie')
  outerCookie() {
    return { n: run('outer-cookie') };
  }

  @Get('passthrough')
  passthrough(@Res({ passthrough: true }) res: AnyResponse) {
    res.status(200);
    res.header('Cache-Control', 'private');
    setCookie(res);
    return { n: run('passthrough') };
  }

  @Get('vary-star')
  @Header('Vary', 'Accept-Language, *')
  varyStar() {
    return { n: run('vary-star') };
  }

  @Get('lang')
  @Header('Vary', 'accept-language,  X-FLAVOUR')
  lang(@Headers('accept-language') lang?: string, @Headers('x-flavour') flavour?: string) {
    return { lang: lang ?? null, flavour: flavour ?? null, n: run('lang') };
  }

  @Get('outer-vary')
  @Act('outer-vary')
  outerVary(@Headers('x-flavour') flavour?: string) {
    return { flavour: flavour ?? null, n: run('outer-vary') };
  }

  @Get('inner-vary')
  @Act('inner-vary')
  innerVary(@Headers('x-flavour') flavour?: string) {
    return { flavour: flavour ?? null, n: run('inner-vary') };
  }

  @Get('host')
  host(@Req() req: { hostname?: string }) {
    return { host: req.hostname ?? null, n: run('host') };
  }
}

/** Two routes whose paths differ by a prefix that a crafted Host could try to supply. */
@Controller()
@UseInterceptors(CacheInterceptor)
class PathsController {
  @Get('q')
  q(@Req() req: { hostname?: string }) {
    return { host: req.hostname ?? null, path: '/q', n: run('q') };
  }

  @Get('p/q')
  pq(@Req() req: { hostname?: string }) {
    return { host: req.hostname ?? null, path: '/p/q', n: run('p/q') };
  }
}

/** What the test middleware does, by path. */
function testMiddleware(req: IncomingMessage, res: ServerResponse, next: () => void): void {
  // Fastify's middie strips the mount path from `req.url` and keeps it in `originalUrl`.
  const url = (req as IncomingMessage & { originalUrl?: string }).originalUrl ?? req.url ?? '';
  if (url.includes('/mw/private')) res.setHeader('Cache-Control', 'private');
  if (url.includes('/mw/cookie')) {
    const express = res as ServerResponse & { cookie?: (name: string, value: string) => unknown };
    if (typeof express.cookie === 'function') express.cookie('session', 'abc');
    else res.setHeader('Set-Cookie', 'session=abc');
  }
  if (url.includes('/mw/compressed')) {
    // What `compression` does (through `on-headers`): add `Vary: Accept-Encoding` at the last
    // moment, when the headers are written.
    const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
    res.writeHead = (...args: unknown[]) => {
      const vary = res.getHeader('Vary');
      res.setHeader('Vary', vary ? `${String(vary)}, Accept-Encoding` : 'Accept-Encoding');
      return writeHead(...args);
    };
  }
  next();
}

@Controller('mw')
@UseInterceptors(CacheInterceptor)
class MiddlewareController {
  @Get('private')
  privateRoute() {
    return { n: run('mw-private') };
  }

  @Get('cookie')
  cookie() {
    return { n: run('mw-cookie') };
  }

  @Get('compressed')
  compressed() {
    return { n: run('mw-compressed') };
  }
}

@Controller('cors')
@UseInterceptors(CacheInterceptor)
class CorsController {
  @Get()
  origin(@Headers('origin') origin?: string) {
    return { origin: origin ?? null, n: run('cors') };
  }
}

/** Holds every request of a burst until all of them have passed their guards. */
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

@Controller('burst')
@UseGuards(ArrivalGuard)
@UseInterceptors(CacheInterceptor)
class BurstController {
  @Get('cookie')
  @Header('Set-Cookie', 'session=abc')
  async cookie() {
    const n = run('burst-cookie');
    await gate.opened;
    return { n };
  }

  @Get('vary')
  @Header('Vary', 'X-Flavour')
  async vary(@Headers('x-flavour') flavour?: string) {
    const n = run('burst-vary');
    await gate.opened;
    return { flavour: flavour ?? null, n };
  }
}

@Module({
  controllers: [
    RulesController,
    PathsController,
    MiddlewareController,
    CorsController,
    BurstController,
  ],
  providers: [OuterInterceptor, InnerInterceptor, ArrivalGuard],
})
class RulesModule implements NestModule {
  configure(consumer: MiddlewareConsumer): void {
    consumer.apply(testMiddleware).forRoutes(MiddlewareController);
  }
}

async function createApp(
  platform: Platform,
  metadata: ModuleMetadata,
  cors: boolean,
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule(metadata).compile();
  const app =
    platform === 'express'
      ? moduleRef.createNestApplication({ logger: false })
      : moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), {
          logger: false,
        });
  // Reflects allowed origins, so CORS sets `Vary: Origin` (before the handler runs).
  if (cors) app.enableCors({ origin: ['http://a.test', 'http://b.test'] });
  await app.init();
  if (platform === 'fastify') {
    await (app as NestFastifyApplication).getHttpAdapter().getInstance().ready();
  }
  return app;
}

const backends: Array<[string, () => CacheModuleOptions]> = [
  ['memory', () => ({})],
  [
    'redis',
    () => ({ provider: 'redis', redis: { url: sharedRedisUrl() }, namespace: uniqueNamespace() }),
  ],
];

describe.each(PLATFORMS)('CacheInterceptor follows HTTP (%s)', (platform) => {
  let app: INestApplication;
  let adapter: RecordingAdapter;
  const get = (path: string) => request(app.getHttpServer()).get(path);
  /** Keys written for a path (default keys end with the URL). */
  const writesFor = (path: string) => adapter.written.filter((key) => key.endsWith(path));

  async function start(cors = false): Promise<void> {
    adapter = new RecordingAdapter({ maxEntries: 1000, sweepInterval: 0 });
    app = await createApp(
      platform,
      { imports: [CacheModule.forRoot({ isGlobal: true, adapter, ttl: 300 }), RulesModule] },
      cors,
    );
  }

  beforeEach(async () => {
    for (const name of Object.keys(runs)) delete runs[name];
    await start();
  });

  afterEach(async () => {
    await app.close();
  });

  /** Requests `path` twice: the handler runs both times, and nothing is stored. */
  async function expectNotStored(path: string, name: string, status = 200): Promise<void> {
    const first = await get(path).expect(status);
    const second = await get(path).expect(status);
    expect(runs[name]).toBe(2);
    expect(writesFor(path)).toEqual([]);
    if (status === 200) {
      expect(first.headers['x-cache']).toBe('MISS');
      expect(second.headers['x-cache']).toBe('MISS');
      expect(second.body).toEqual({ n: 2 });
    }
  }

  it('control: a plain response, and one that is Cache-Control: public, are stored', async () => {
    for (const [path, name] of [
      ['/h/plain', 'plain'],
      ['/h/public', 'public'],
    ]) {
      await get(path).expect(200);
      const second = await get(path).expect(200);
      expect(second.headers['x-cache']).toBe('HIT');
      expect(runs[name]).toBe(1);
      expect(writesFor(path)).toHaveLength(1);
    }
  });

  describe('Cache-Control', () => {
    it.each([
      ['/h/private', 'private'],
      ['/h/private-field', 'private-field'],
      ['/h/no-store', 'no-store'],
      ['/h/no-cache', 'no-cache'],
    ])('a response that is %s (set with @Header) is not stored', async (path, name) => {
      await expectNotStored(path, name);
    });

    it('not when an interceptor inside sets no-store on the way out', async () => {
      await expectNotStored('/h/inner-no-store', 'inner-no-store');
    });

    it('not when an interceptor outside sets private after the value came back', async () => {
      await expectNotStored('/h/outer-private', 'outer-private');
    });

    it('not when a middleware set private before the handler ran', async () => {
      await expectNotStored('/mw/private', 'mw-private');
    });
  });

  describe('cookies', () => {
    it('a response with a Set-Cookie header (@Header) is not stored', async () => {
      await expectNotStored('/h/cookie', 'cookie');
    });

    it('not when an interceptor sets a cookie (res.cookie / reply.header), inside or outside', async () => {
      await expectNotStored('/h/inner-cookie', 'inner-cookie');
      await expectNotStored('/h/outer-cookie', 'outer-cookie');
    });

    it('not when a middleware sets a cookie', async () => {
      await expectNotStored('/mw/cookie', 'mw-cookie');
    });

    it('a passthrough handler that sets headers is never URL-cached', async () => {
      await get('/h/passthrough').expect(200);
      const second = await get('/h/passthrough').expect(200);
      expect(second.body).toEqual({ n: 2 });
      expect(writesFor('/h/passthrough')).toEqual([]);
    });
  });

  describe('status', () => {
    it('a @HttpCode(203) response is not stored', async () => {
      await expectNotStored('/h/http-code', 'http-code', 203);
    });

    it('a @Redirect response is not stored', async () => {
      const first = await get('/h/redirect').expect(302);
      await get('/h/redirect').expect(302);
      expect(first.headers.location).toBe('/h/plain');
      expect(runs.redirect).toBe(2);
      expect(writesFor('/h/redirect')).toEqual([]);
    });

    it('not when an interceptor inside sets the status', async () => {
      await expectNotStored('/h/inner-status', 'inner-status', 201);
    });

    it('not when an interceptor outside sets the status while mapping the response', async () => {
      await expectNotStored('/h/outer-status', 'outer-status', 202);
    });
  });

  describe('Vary', () => {
    it('Vary: * is never stored', async () => {
      await expectNotStored('/h/vary-star', 'vary-star');
    });

    it('each value of the varying request headers gets its own entry', async () => {
      const ask = (lang?: string, flavour?: string) => {
        let req = get('/h/lang');
        if (lang !== undefined) req = req.set('Accept-Language', lang);
        if (flavour !== undefined) req = req.set('X-Flavour', flavour);
        return req.expect(200);
      };
      const en = await ask('en');
      const fr = await ask('fr');
      const enSweet = await ask('en', 'sweet');
      const none = await ask();
      expect([en.body, fr.body, enSweet.body, none.body]).toEqual([
        { lang: 'en', flavour: null, n: 1 },
        { lang: 'fr', flavour: null, n: 2 },
        { lang: 'en', flavour: 'sweet', n: 3 },
        { lang: null, flavour: null, n: 4 },
      ]);
      expect(en.headers.vary).toMatch(/accept-language/i);

      const again = [await ask('fr'), await ask('en', 'sweet'), await ask(), await ask('en')];
      expect(again.map((r) => r.body)).toEqual([fr.body, enSweet.body, none.body, en.body]);
      expect(again.map((r) => r.headers['x-cache'])).toEqual(['HIT', 'HIT', 'HIT', 'HIT']);
      // An empty header is a value of its own, not an absent one.
      const empty = await ask('');
      expect(empty.body).toEqual({ lang: '', flavour: null, n: 5 });
      expect(runs.lang).toBe(5);
    });

    it('a Vary set on the way out by an interceptor outside is honoured', async () => {
      const a = await get('/h/outer-vary').set('X-Flavour', 'a').expect(200);
      const b = await get('/h/outer-vary').set('X-Flavour', 'b').expect(200);
      const a2 = await get('/h/outer-vary').set('X-Flavour', 'a').expect(200);
      expect([a.body, b.body, a2.body]).toEqual([
        { flavour: 'a', n: 1 },
        { flavour: 'b', n: 2 },
        { flavour: 'a', n: 1 },
      ]);
    });

    it('a cached answer still says Vary, though what set it did not run', async () => {
      const a = await get('/h/inner-vary').set('X-Flavour', 'a').expect(200);
      const b = await get('/h/inner-vary').set('X-Flavour', 'b').expect(200);
      const a2 = await get('/h/inner-vary').set('X-Flavour', 'a').expect(200);
      const b2 = await get('/h/inner-vary').set('X-Flavour', 'b').expect(200);
      expect([a.body, b.body, a2.body, b2.body]).toEqual([
        { flavour: 'a', n: 1 },
        { flavour: 'b', n: 2 },
        { flavour: 'a', n: 1 },
        { flavour: 'b', n: 2 },
      ]);
      expect([a2.headers['x-cache'], b2.headers['x-cache']]).toEqual(['HIT', 'HIT']);
      for (const response of [a, b, a2, b2]) expect(response.headers.vary).toMatch(/x-flavour/i);
      // Names already there are not repeated.
      const lang = await get('/h/lang').expect(200);
      const langHit = await get('/h/lang').expect(200);
      expect(langHit.headers['x-cache']).toBe('HIT');
      expect(langHit.headers.vary).toBe(lang.headers.vary);
    });

    it('CORS (Vary: Origin) keeps caching, one entry per origin', async () => {
      await app.close();
      await start(true);
      const fromA = () => get('/cors').set('Origin', 'http://a.test').expect(200);
      const fromB = () => get('/cors').set('Origin', 'http://b.test').expect(200);
      const a1 = await fromA();
      const b1 = await fromB();
      const a2 = await fromA();
      const b2 = await fromB();
      expect(a1.headers.vary).toMatch(/origin/i);
      expect(a1.headers['access-control-allow-origin']).toBe('http://a.test');
      expect(b1.headers['access-control-allow-origin']).toBe('http://b.test');
      expect([a1.body, b1.body, a2.body, b2.body]).toEqual([
        { origin: 'http://a.test', n: 1 },
        { origin: 'http://b.test', n: 2 },
        { origin: 'http://a.test', n: 1 },
        { origin: 'http://b.test', n: 2 },
      ]);
      expect([a2.headers['x-cache'], b2.headers['x-cache']]).toEqual(['HIT', 'HIT']);
    });

    it('a compression middleware that adds Vary: Accept-Encoding late keeps caching', async () => {
      const gzip = () => get('/mw/compressed').set('Accept-Encoding', 'gzip').expect(200);
      const first = await gzip();
      const second = await gzip();
      expect(first.headers.vary).toMatch(/accept-encoding/i);
      expect(second.headers['x-cache']).toBe('HIT');
      expect(runs['mw-compressed']).toBe(1);
      // Another encoding is another variant.
      await get('/mw/compressed').set('Accept-Encoding', 'br').expect(200);
      expect(runs['mw-compressed']).toBe(2);
    });
  });

  describe('host', () => {
    it('virtual hosts never share entries', async () => {
      const a = await get('/h/host').set('Host', 'a.test').expect(200);
      const b = await get('/h/host').set('Host', 'b.test').expect(200);
      const a2 = await get('/h/host').set('Host', 'a.test').expect(200);
      const b2 = await get('/h/host').set('Host', 'b.test').expect(200);
      expect([a.body, b.body, a2.body, b2.body]).toEqual([
        { host: 'a.test', n: 1 },
        { host: 'b.test', n: 2 },
        { host: 'a.test', n: 1 },
        { host: 'b.test', n: 2 },
      ]);
    });

    it('the port is not part of the key; the case of the name is', async () => {
      const plain = await get('/h/host').set('Host', 'a.test').expect(200);
      const port = await get('/h/host').set('Host', 'a.test:8080').expect(200);
      const upper = await get('/h/host').set('Host', 'A.test').expect(200);
      expect(port.body).toEqual(plain.body);
      expect(port.headers['x-cache']).toBe('HIT');
      expect(upper.body).toEqual({ host: 'A.test', n: 2 });
    });

    it('a host cannot pose as a path: host "a.test/p" + /q is not host "a.test" + /p/q', async () => {
      const odd = await get('/q').set('Host', 'a.test/p').expect(200);
      const plain = await get('/p/q').set('Host', 'a.test').expect(200);
      expect(odd.body).toEqual({ host: 'a.test/p', path: '/q', n: 1 });
      expect(plain.body).toEqual({ host: 'a.test', path: '/p/q', n: 1 });
      expect(plain.headers['x-cache']).toBe('MISS');
    });
  });

  describe('concurrent requests for a cold URL', () => {
    async function burst(path: string, headers: Array<Record<string, string>>) {
      resetGate();
      const server = app.getHttpServer() as Server;
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      const responses = Promise.all(
        headers.map((set) => request(`http://127.0.0.1:${port}`).get(path).set(set)),
      );
      try {
        for (let i = 0; i < 400 && gate.arrived < headers.length; i++) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
        expect(gate.arrived).toBe(headers.length);
        // Every request has passed its guard; give the interceptors a moment to join the run.
        await new Promise((resolve) => setTimeout(resolve, 50));
      } finally {
        gate.release();
      }
      return responses;
    }

    it('do not share a response that is not stored (it sets a cookie)', async () => {
      const results = await burst(
        '/burst/cookie',
        Array.from({ length: 6 }, () => ({})),
      );
      expect(results.every((r) => r.status === 200)).toBe(true);
      expect(runs['burst-cookie']).toBe(6);
      expect(new Set(results.map((r) => (r.body as { n: number }).n)).size).toBe(6);
    });

    it('share a varying response only with requests that send the same values', async () => {
      const flavours = ['a', 'b', 'a', 'b', 'c', 'a'];
      const results = await burst(
        '/burst/vary',
        flavours.map((flavour) => ({ 'X-Flavour': flavour })),
      );
      expect(results.map((r) => (r.body as { flavour: string }).flavour)).toEqual(flavours);
      // One run per flavour: requests with the same values share it.
      expect(runs['burst-vary']).toBe(3);
    });
  });
});

describe.each(backends)('CacheInterceptor Vary and host on %s', (_backend, optionsFor) => {
  describe.each(PLATFORMS)('(%s)', (platform) => {
    let app: INestApplication;
    const get = (path: string) => request(app.getHttpServer()).get(path);

    beforeEach(async () => {
      for (const name of Object.keys(runs)) delete runs[name];
      app = await createApp(
        platform,
        { imports: [CacheModule.forRoot({ isGlobal: true, ...optionsFor() }), RulesModule] },
        false,
      );
    });

    afterEach(async () => {
      await app.get(CacheService).clear();
      await app.close();
    });

    it('serves each request its own variant, also after a round trip through the store', async () => {
      const ask = (host: string, lang: string) =>
        get('/h/lang').set('Host', host).set('Accept-Language', lang).expect(200);
      const first = [
        await ask('a.test', 'en'),
        await ask('a.test', 'fr'),
        await ask('b.test', 'en'),
      ];
      const again = [
        await ask('b.test', 'en'),
        await ask('a.test', 'fr'),
        await ask('a.test', 'en'),
      ];
      expect(first.map((r) => r.body)).toEqual([
        { lang: 'en', flavour: null, n: 1 },
        { lang: 'fr', flavour: null, n: 2 },
        { lang: 'en', flavour: null, n: 3 },
      ]);
      expect(again.map((r) => r.body)).toEqual([first[2].body, first[1].body, first[0].body]);
      expect(again.map((r) => r.headers['x-cache'])).toEqual(['HIT', 'HIT', 'HIT']);
    });
  });
});
