import {
  Controller,
  Get,
  Header,
  Injectable,
  Module,
  Post,
  UseInterceptors,
  type ExecutionContext,
  type INestApplication,
} from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import { ExecutionContextHost } from '@nestjs/core/helpers/execution-context-host';
import { Test } from '@nestjs/testing';
import { lastValueFrom, of } from 'rxjs';
import request from 'supertest';
import { CacheInterceptor, CacheKey, CacheModule, CacheTTL, MemoryCacheAdapter } from '../../lib';
import type { CacheSafetyRules } from '../../lib/interfaces/cache-route.interface';
import { createHttpApp, PLATFORMS } from '../support/http-platforms';
import { CapturingLogger } from '../support/logs';

/**
 * A migrating user's subclasses of CacheInterceptor, written as for `@nestjs/cache-manager`:
 * the NestJS caching sample's `HttpCacheInterceptor`, async and empty keys, other methods, and
 * the documented way to relax a safety rule.
 */

/** The NestJS caching sample's interceptor, as its users wrote it (`override` added). */
@Injectable()
class HttpCacheInterceptor extends CacheInterceptor {
  protected override trackBy(context: ExecutionContext): string | undefined {
    const request = context.switchToHttp().getRequest();
    const { httpAdapter } = this.httpAdapterHost;
    const isGetRequest = httpAdapter.getRequestMethod(request) === 'GET';
    const excludePaths = ['/sample/excluded'];
    if (
      !isGetRequest ||
      (isGetRequest && excludePaths.includes(httpAdapter.getRequestUrl(request)))
    ) {
      return undefined;
    }
    return httpAdapter.getRequestUrl(request);
  }

  /** For the test: the host Nest injected. */
  get host(): HttpAdapterHost {
    return this.httpAdapterHost;
  }
}

/** Keys from a Promise: `/async/none` resolves `undefined`, `/async/null` answers `null`. */
@Injectable()
class AsyncKeyInterceptor extends CacheInterceptor {
  protected override async trackBy(context: ExecutionContext): Promise<string | undefined> {
    const url = this.httpAdapterHost.httpAdapter.getRequestUrl(
      context.switchToHttp().getRequest(),
    ) as string;
    await new Promise((resolve) => setImmediate(resolve));
    return url === '/async/none' ? undefined : `async:${url}`;
  }
}

@Injectable()
class NullKeyInterceptor extends CacheInterceptor {
  protected override trackBy(): null {
    return null;
  }
}

/** Caches POST too (by URL), and never `/methods/private-get`. */
@Injectable()
class PostCachingInterceptor extends CacheInterceptor {
  protected override allowedMethods = ['GET', 'POST'];

  protected override isRequestCacheable(context: ExecutionContext): boolean {
    const url = this.httpAdapterHost.httpAdapter.getRequestUrl(context.switchToHttp().getRequest());
    return url !== '/methods/private-get' && super.isRequestCacheable(context);
  }
}

/** Relaxes the credentials and cookie rules, keeps the others. */
@Injectable()
class RelaxedInterceptor extends CacheInterceptor {
  protected override safetyRules(context: ExecutionContext): CacheSafetyRules {
    return { ...super.safetyRules(context), credentials: false, setCookie: false };
  }
}

const runs: Record<string, number> = {};
const ran = (name: string) => ({ name, run: (runs[name] = (runs[name] ?? 0) + 1) });

@Controller('sample')
@UseInterceptors(HttpCacheInterceptor)
class SampleController {
  @Get('items')
  items() {
    return ran('sample-items');
  }

  @Get('excluded')
  excluded() {
    return ran('sample-excluded');
  }

  @Post('items')
  create() {
    return ran('sample-post');
  }
}

@Controller('async')
@UseInterceptors(AsyncKeyInterceptor)
class AsyncController {
  @Get('some')
  some() {
    return ran('async-some');
  }

  @Get('none')
  none() {
    return ran('async-none');
  }
}

@Controller('null')
@UseInterceptors(NullKeyInterceptor)
class NullController {
  @Get()
  get() {
    return ran('null');
  }
}

@Controller('methods')
@UseInterceptors(PostCachingInterceptor)
class MethodsController {
  @Post('search')
  search() {
    return ran('methods-search');
  }

  @Get('private-get')
  privateGet() {
    return ran('methods-private-get');
  }
}

@Controller('decorated')
@UseInterceptors(CacheInterceptor)
class DecoratedController {
  // One entry per id, whatever the query string.
  @Get('key/:id')
  @CacheKey((context) => {
    const req = context.switchToHttp().getRequest<{ params: { id: string } }>();
    return `item:${req.params.id}`;
  })
  keyed() {
    return ran('decorated-key');
  }

  @Get('async-key')
  @CacheKey(() => Promise.resolve('async-key'))
  asyncKey() {
    return ran('decorated-async-key');
  }

  @Get('ttl-string')
  @CacheTTL('60')
  ttlString() {
    return ran('decorated-ttl-string');
  }

  @Get('ttl-function-string')
  @CacheTTL(() => Promise.resolve('45'))
  ttlFunctionString() {
    return ran('decorated-ttl-function-string');
  }
}

/** The same routes under the default interceptor and the relaxed one. */
function safetyController(path: string, name: string, interceptor: typeof CacheInterceptor) {
  @Controller(path)
  @UseInterceptors(interceptor)
  class SafetyController {
    @Get('public')
    public() {
      return ran(`${path}-public`);
    }

    @Get('cookie')
    @Header('Set-Cookie', 'session=abc; Path=/')
    cookie() {
      return ran(`${path}-cookie`);
    }

    @Get('private')
    @Header('Cache-Control', 'private')
    private() {
      return ran(`${path}-private`);
    }
  }
  // Log lines name the route by its controller's class.
  Object.defineProperty(SafetyController, 'name', { value: `${name}Controller` });
  return SafetyController;
}

const StrictController = safetyController('strict', 'Strict', CacheInterceptor);
const RelaxedController = safetyController('relaxed', 'Relaxed', RelaxedInterceptor);

/** A memory adapter that records the TTL of every key written. */
class TtlRecordingAdapter extends MemoryCacheAdapter {
  readonly ttls = new Map<string, number>();
  override set(key: string, value: unknown, ttl: number): Promise<void> {
    this.ttls.set(key, ttl);
    return super.set(key, value, ttl);
  }
  override setSync(key: string, value: unknown, ttl: number): void {
    this.ttls.set(key, ttl);
    super.setSync(key, value, ttl);
  }
}

describe.each(PLATFORMS)('CacheInterceptor subclasses (%s)', (platform) => {
  let app: INestApplication;
  let adapter: TtlRecordingAdapter;
  let logger: CapturingLogger;

  beforeAll(async () => {
    adapter = new TtlRecordingAdapter();
    logger = new CapturingLogger();
    app = await createHttpApp(
      platform,
      {
        imports: [CacheModule.forRoot({ adapter, ttl: 5 })],
        controllers: [
          SampleController,
          AsyncController,
          NullController,
          MethodsController,
          DecoratedController,
          StrictController,
          RelaxedController,
        ],
      },
      logger,
    );
  });

  afterAll(() => app.close());

  /** Sends `method path` twice; the two responses. */
  async function twice(method: 'get' | 'post', path: string, headers: Record<string, string> = {}) {
    const send = () => request(app.getHttpServer())[method](path).set(headers);
    const first = await send();
    const second = await send();
    return [first, second] as const;
  }

  async function expectCached(method: 'get' | 'post', path: string, name: string) {
    const before = runs[name] ?? 0;
    const [first, second] = await twice(method, path);
    expect(first.body).toEqual({ name, run: before + 1 });
    expect(second.body).toEqual({ name, run: before + 1 });
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    return [first, second] as const;
  }

  async function expectUncached(
    method: 'get' | 'post',
    path: string,
    name: string,
    headers: Record<string, string> = {},
  ) {
    const before = runs[name] ?? 0;
    const [first, second] = await twice(method, path, headers);
    expect(first.body).toEqual({ name, run: before + 1 });
    expect(second.body).toEqual({ name, run: before + 2 });
    expect(second.headers['x-cache']).not.toBe('HIT');
  }

  describe("the NestJS sample's HttpCacheInterceptor", () => {
    it('is given the HTTP adapter host', () => {
      const host = app.get(HttpCacheInterceptor).host;
      expect(host).toBeInstanceOf(HttpAdapterHost);
      expect(host.httpAdapter).toBe(app.getHttpAdapter());
    });

    it('caches GET under the URL its trackBy returns', async () => {
      await expectCached('get', '/sample/items', 'sample-items');
      expect(adapter.ttls.has('/sample/items')).toBe(true);
    });

    it('leaves the excluded path and POST uncached (trackBy answers undefined)', async () => {
      await expectUncached('get', '/sample/excluded', 'sample-excluded');
      await expectUncached('post', '/sample/items', 'sample-post');
    });
  });

  describe('trackBy', () => {
    it('may answer a Promise of the key', async () => {
      await expectCached('get', '/async/some', 'async-some');
      expect(adapter.ttls.has('async:/async/some')).toBe(true);
    });

    it('a Promise of undefined leaves the request uncached', async () => {
      await expectUncached('get', '/async/none', 'async-none');
    });

    it('null leaves the request uncached', async () => {
      await expectUncached('get', '/null', 'null');
    });
  });

  describe('isRequestCacheable and allowedMethods', () => {
    it('caches POST when allowedMethods lets it in, replayed with its 201', async () => {
      const [first, second] = await expectCached('post', '/methods/search', 'methods-search');
      expect([first.status, second.status]).toEqual([201, 201]);
    });

    it('an override excludes a path', async () => {
      await expectUncached('get', '/methods/private-get', 'methods-private-get');
    });
  });

  describe('@CacheKey and @CacheTTL', () => {
    it('@CacheKey(function) keys the response', async () => {
      const name = 'decorated-key';
      const before = runs[name] ?? 0;
      const first = await request(app.getHttpServer()).get('/decorated/key/7?a=1');
      const second = await request(app.getHttpServer()).get('/decorated/key/7?a=2');
      expect([first.body, second.body]).toEqual([
        { name, run: before + 1 },
        { name, run: before + 1 },
      ]);
      expect(adapter.ttls.has('item:7')).toBe(true);
    });

    it('@CacheKey(async function) keys the response', async () => {
      await expectCached('get', '/decorated/async-key', 'decorated-async-key');
      expect(adapter.ttls.has('async-key')).toBe(true);
    });

    it("@CacheTTL('60') is 60 seconds", async () => {
      await expectCached('get', '/decorated/ttl-string', 'decorated-ttl-string');
      const key = [...adapter.ttls.keys()].find((k) => k.endsWith('/decorated/ttl-string'));
      expect(adapter.ttls.get(key as string)).toBe(60);
    });

    it("@CacheTTL(() => Promise.resolve('45')) is 45 seconds", async () => {
      await expectCached('get', '/decorated/ttl-function-string', 'decorated-ttl-function-string');
      const key = [...adapter.ttls.keys()].find((k) =>
        k.endsWith('/decorated/ttl-function-string'),
      );
      expect(adapter.ttls.get(key as string)).toBe(45);
    });
  });

  describe('safety rules', () => {
    const notices = (rule: string) =>
      logger.lines.filter(
        (l) => l.message.includes(`${rule}: false`) && l.message.includes('safetyRules'),
      );

    it('by default, a request with credentials gets no shared entry, logged once', async () => {
      await expectUncached('get', '/strict/public', 'strict-public', { Authorization: 'Bearer a' });
      await expectUncached('get', '/strict/public', 'strict-public', { Cookie: 'sid=1' });
      const lines = notices('credentials');
      expect(lines).toHaveLength(1);
      expect(lines[0].message).toMatch(/StrictController\.public/);
      expect(lines[0].message).toMatch(/@CachePerUser/);
      // Nothing of the request reaches the line.
      expect(lines[0].message).not.toMatch(/Bearer|sid=1/);
    });

    it('by default, a response setting a cookie or private is not stored, logged once', async () => {
      await expectUncached('get', '/strict/cookie', 'strict-cookie');
      await expectUncached('get', '/strict/private', 'strict-private');
      expect(notices('setCookie')).toHaveLength(1);
      expect(notices('cacheControl')).toHaveLength(1);
    });

    it('a subclass relaxes the credentials rule through safetyRules()', async () => {
      const name = 'relaxed-public';
      const before = runs[name] ?? 0;
      const [first, second] = await twice('get', '/relaxed/public', { Authorization: 'Bearer a' });
      const third = await request(app.getHttpServer()).get('/relaxed/public');
      expect([first.body, second.body, third.body]).toEqual([
        { name, run: before + 1 },
        { name, run: before + 1 },
        { name, run: before + 1 },
      ]);
      expect(second.headers['x-cache']).toBe('HIT');
    });

    it('a subclass relaxes the cookie rule, and keeps the others', async () => {
      await expectCached('get', '/relaxed/cookie', 'relaxed-cookie');
      await expectUncached('get', '/relaxed/private', 'relaxed-private');
      const relaxedNotices = logger.lines.filter(
        (l) => l.message.includes('RelaxedController') && l.message.includes('safetyRules'),
      );
      expect(relaxedNotices.map((l) => l.message)).toEqual([
        expect.stringMatching(/^RelaxedInterceptor: .*cacheControl: false/),
      ]);
    });
  });
});

describe('CacheInterceptor without an HTTP server', () => {
  @Module({ imports: [CacheModule.forRoot({})], providers: [HttpCacheInterceptor] })
  class MicroserviceLikeModule {}

  it('is built with a host whose adapter is absent, and passes non-HTTP contexts through', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [MicroserviceLikeModule],
    }).compile();
    const context = await moduleRef.init();
    try {
      const interceptor = context.get(HttpCacheInterceptor);
      expect(interceptor.host).toBeInstanceOf(HttpAdapterHost);
      expect(interceptor.host.httpAdapter).toBeUndefined();
      const rpc = new ExecutionContextHost([{ pattern: 'sum' }, {}], SampleController, () => 0);
      rpc.setType('rpc');
      const out = interceptor.intercept(rpc, { handle: () => of(42) });
      expect(await lastValueFrom(await out)).toBe(42);
    } finally {
      await context.close();
    }
  });
});
