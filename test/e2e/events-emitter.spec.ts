import {
  Controller,
  Get,
  Header,
  Headers,
  Injectable,
  Param,
  UseInterceptors,
  type INestApplication,
  type ModuleMetadata,
} from '@nestjs/common';
import { EventEmitter2, EventEmitterModule, OnEvent } from '@nestjs/event-emitter';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import {
  CacheInterceptor,
  CacheModule,
  CacheService,
  Cacheable,
  type CacheHitEvent,
  type CacheLoaderErrorEvent,
  type CacheModuleOptions,
} from '../../lib';
import { eventually } from '../support/eventually';
import { createHttpApp, PLATFORMS } from '../support/http-platforms';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

/**
 * Issue 15, item 1: the cache's events on `@nestjs/event-emitter` as `cachekit.<name>`, heard by
 * `@OnEvent` handlers from the first request; and item 2: every HTTP request through a
 * `@Cacheable` handler or `CacheInterceptor` counted exactly once.
 */

@Injectable()
class Listeners {
  readonly hits: CacheHitEvent[] = [];
  readonly loaderErrors: CacheLoaderErrorEvent[] = [];

  @OnEvent('cachekit.hit')
  onHit(event: CacheHitEvent): void {
    this.hits.push(event);
  }

  @OnEvent('cachekit.loader.error')
  onLoaderError(event: CacheLoaderErrorEvent): void {
    this.loaderErrors.push(event);
  }
}

@Injectable()
class WildcardListeners {
  readonly heard: Array<{ name: string; event: unknown }> = [];

  @OnEvent('cachekit.*')
  onAny(this: WildcardListeners, event: unknown): void {
    this.heard.push({ name: 'cachekit.*', event });
  }
}

async function app(metadata: ModuleMetadata): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule(metadata).compile();
  const created = moduleRef.createNestApplication({ logger: false });
  await created.init();
  return created;
}

const cacheOptions = (extra: CacheModuleOptions = {}): CacheModuleOptions => ({
  namespace: 'ee-events',
  ...extra,
});

describe('events on @nestjs/event-emitter (cachekit.<name>)', () => {
  const apps: INestApplication[] = [];
  afterEach(async () => {
    await Promise.all(apps.splice(0).map((a) => a.close()));
  });
  const start = async (metadata: ModuleMetadata) => {
    const created = await app(metadata);
    apps.push(created);
    return created;
  };

  describe.each([
    ['EventEmitterModule first', true],
    ['CacheModule first', false],
  ])('@OnEvent handlers (%s)', (_label, emitterFirst) => {
    const imports = () =>
      emitterFirst
        ? [EventEmitterModule.forRoot(), CacheModule.forRoot(cacheOptions())]
        : [CacheModule.forRoot(cacheOptions()), EventEmitterModule.forRoot()];

    it('hear hits and loader errors right after app.init()', async () => {
      const created = await start({ imports: imports(), providers: [Listeners] });
      const cache = created.get(CacheService);
      const listeners = created.get(Listeners);
      await cache.set('k', 'v');
      expect(await cache.get('k')).toBe('v');
      expect(listeners.hits).toEqual([
        { cache: 'default', key: 'k', operation: 'get', tier: 'l1' },
      ]);
      const boom = new Error('boom');
      await expect(cache.wrap('w', () => Promise.reject(boom))).rejects.toBe(boom);
      expect(listeners.loaderErrors).toHaveLength(1);
      expect(listeners.loaderErrors[0]).toMatchObject({
        cache: 'default',
        key: 'w',
        error: boom,
        stale: false,
        background: false,
      });
    });

    it('each hit is forwarded once (the forwarder subscribes once)', async () => {
      const created = await start({ imports: imports(), providers: [Listeners] });
      const cache = created.get(CacheService);
      const listeners = created.get(Listeners);
      await cache.set('k', 'v');
      // Past the startup rechecks (setImmediate, then every second).
      await new Promise((resolve) => setImmediate(resolve));
      await cache.get('k');
      expect(cache.events.listenerCount('hit')).toBe(1);
      expect(listeners.hits).toHaveLength(1);
    });
  });

  it('wildcard: true — @OnEvent("cachekit.*") hears hits from the first call', async () => {
    const created = await start({
      imports: [
        EventEmitterModule.forRoot({ wildcard: true }),
        CacheModule.forRoot(cacheOptions()),
      ],
      providers: [WildcardListeners],
    });
    const cache = created.get(CacheService);
    const listeners = created.get(WildcardListeners);
    await cache.set('k', 'v');
    await cache.get('k');
    await cache.get('absent');
    const events = listeners.heard.map(({ event }) => event);
    expect(events).toEqual(
      expect.arrayContaining([
        { cache: 'default', key: 'k', ttl: 300, source: 'set' },
        { cache: 'default', key: 'k', operation: 'get', tier: 'l1' },
        { cache: 'default', key: 'absent', operation: 'get', shared: false },
      ]),
    );
    expect(events).toHaveLength(3);
  });

  it('an emitter with no cachekit listener: hits, misses and sets are not even built', async () => {
    const created = await start({
      imports: [EventEmitterModule.forRoot(), CacheModule.forRoot(cacheOptions())],
    });
    const cache = created.get(CacheService);
    const emitter = created.get(EventEmitter2);
    const emit = jest.spyOn(emitter, 'emit');
    await new Promise((resolve) => setImmediate(resolve));
    expect(cache.events.listenerCount('hit')).toBe(0);
    expect(cache.events.listenerCount('miss')).toBe(0);
    expect(cache.events.listenerCount('set')).toBe(0);
    await cache.set('k', 1);
    await cache.get('k');
    await cache.get('absent');
    expect(emit).not.toHaveBeenCalled();
    // The rare events are forwarded whoever listens.
    expect(cache.events.listenerCount('loader.error')).toBe(1);
  });

  it('eventEmitter: false — nothing is forwarded', async () => {
    const created = await start({
      imports: [
        EventEmitterModule.forRoot(),
        CacheModule.forRoot(cacheOptions({ eventEmitter: false })),
      ],
      providers: [Listeners],
    });
    const cache = created.get(CacheService);
    const listeners = created.get(Listeners);
    await cache.set('k', 1);
    await cache.get('k');
    await cache.wrap('w', () => Promise.reject(new Error('x'))).catch(() => undefined);
    await new Promise((resolve) => setImmediate(resolve));
    await cache.get('k');
    expect(listeners.hits).toEqual([]);
    expect(listeners.loaderErrors).toEqual([]);
    for (const name of ['hit', 'miss', 'set', 'loader.error', 'circuit'] as const) {
      expect(cache.events.listenerCount(name)).toBe(0);
    }
  });

  it('a listener added at run time hears hits soon; removed, the forwarding stops', async () => {
    const created = await start({
      imports: [EventEmitterModule.forRoot(), CacheModule.forRoot(cacheOptions())],
    });
    const cache = created.get(CacheService);
    const emitter = created.get(EventEmitter2);
    await cache.set('k', 1);
    const heard: unknown[] = [];
    const listener = (event: unknown) => heard.push(event);
    emitter.on('cachekit.hit', listener);
    await eventually(async () => {
      await cache.get('k');
      return heard.length > 0;
    }, 5000);
    expect(heard[0]).toEqual({ cache: 'default', key: 'k', operation: 'get', tier: 'l1' });
    emitter.off('cachekit.hit', listener);
    await eventually(async () => cache.events.listenerCount('hit') === 0, 5000);
  });

  it('app.close() stops forwarding: no listener is left on the cache', async () => {
    const created = await app({
      imports: [EventEmitterModule.forRoot(), CacheModule.forRoot(cacheOptions())],
      providers: [Listeners],
    });
    const cache = created.get(CacheService);
    expect(cache.events.listenerCount('hit')).toBe(1);
    await created.close();
    for (const name of ['hit', 'loader.error', 'circuit', 'bus.state'] as const) {
      expect(cache.events.listenerCount(name)).toBe(0);
    }
  });

  it('a throwing @OnEvent handler (suppressErrors: false) neither breaks the call nor goes unhandled', async () => {
    @Injectable()
    class Throwing {
      @OnEvent('cachekit.hit', { suppressErrors: false })
      onHit(): void {
        throw new Error('handler exploded');
      }
    }
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      const created = await start({
        imports: [EventEmitterModule.forRoot(), CacheModule.forRoot(cacheOptions())],
        providers: [Throwing],
      });
      const cache = created.get(CacheService);
      await cache.set('k', 1);
      await expect(cache.get('k')).resolves.toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 20));
      // Nest's wrapper makes the handler async: its rejection must be caught (and logged) by the
      // cache, as a rejecting listener of cache.events is, not left to crash the process.
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// HTTP: each request counted exactly once.

let runs = 0;

@Controller('dec')
class DecoratedController {
  @Get(':id')
  @Cacheable({ key: 'dec:{id}', ttl: 60 })
  async find(@Param('id') id: string) {
    runs++;
    return { id };
  }
}

@Controller('int')
@UseInterceptors(CacheInterceptor)
class InterceptedController {
  @Get('plain')
  plain() {
    runs++;
    return { n: runs };
  }

  @Get('vary')
  @Header('Vary', 'X-Flavour')
  vary(@Headers('x-flavour') flavour?: string) {
    runs++;
    return { flavour: flavour ?? null };
  }
}

describe.each(PLATFORMS)('HTTP requests are counted once (%s)', (platform) => {
  describe.each([
    ['memory', (): CacheModuleOptions => ({ namespace: uniqueNamespace('http') })],
    [
      'redis',
      (): CacheModuleOptions => ({
        provider: 'redis',
        redis: { url: sharedRedisUrl() },
        namespace: uniqueNamespace('http'),
      }),
    ],
    [
      'redis + l1',
      (): CacheModuleOptions => ({
        provider: 'redis',
        redis: { url: sharedRedisUrl() },
        namespace: uniqueNamespace('http'),
        l1: true,
      }),
    ],
  ])('%s', (_label, options) => {
    let created: INestApplication;
    let cache: CacheService;
    let hits: Array<{ key: string; operation: string }>;
    let misses: Array<{ key: string; shared: boolean }>;

    beforeEach(async () => {
      runs = 0;
      created = await createHttpApp(platform, {
        imports: [CacheModule.forRoot(options())],
        controllers: [DecoratedController, InterceptedController],
      });
      cache = created.get(CacheService);
      hits = [];
      misses = [];
      cache.events.on('hit', ({ key, operation }) => hits.push({ key, operation }));
      cache.events.on('miss', ({ key, shared }) => misses.push({ key, shared }));
    });
    afterEach(() => created.close());

    const server = () => created.getHttpServer() as Parameters<typeof request>[0];

    it('@Cacheable route: a miss, then one hit per request', async () => {
      await request(server()).get('/dec/1').expect(200, { id: '1' });
      await request(server()).get('/dec/1').expect(200, { id: '1' });
      await request(server()).get('/dec/1').expect(200, { id: '1' });
      expect(runs).toBe(1);
      expect(misses).toEqual([{ key: 'dec:1', shared: false }]);
      expect(hits).toEqual([
        { key: 'dec:1', operation: 'wrap' },
        { key: 'dec:1', operation: 'wrap' },
      ]);
      // The loaded value's write to Redis settles in the background (the hits meanwhile were
      // answered from it): it is counted once it has.
      await eventually(async () => cache.stats().sets === 1, 5000, 5);
      expect(cache.stats()).toMatchObject({ hits: 2, misses: 1, sets: 1 });
    });

    it('CacheInterceptor route: a miss, then one hit per request', async () => {
      await request(server()).get('/int/plain').expect(200, { n: 1 });
      await eventually(async () => cache.stats().sets === 1, 5000, 5);
      const hit1 = await request(server()).get('/int/plain').expect(200, { n: 1 });
      expect(hit1.headers['x-cache']).toBe('HIT');
      await request(server()).get('/int/plain').expect(200, { n: 1 });
      expect(runs).toBe(1);
      expect(misses).toHaveLength(1);
      expect(hits).toHaveLength(2);
      expect(cache.stats()).toMatchObject({ hits: 2, misses: 1, sets: 1, shared: 0 });
    });

    it('CacheInterceptor with Vary: each request counted once, variants included', async () => {
      const flavour = async (value: string, expected: string) => {
        const response = await request(server())
          .get('/int/vary')
          .set('X-Flavour', value)
          .expect(200, { flavour: value });
        expect(response.headers['x-cache']).toBe(expected);
      };
      await flavour('a', 'MISS'); // the base entry (a)
      await eventually(async () => cache.stats().sets === 1, 5000, 5);
      await flavour('b', 'MISS'); // its variant (b)
      await eventually(async () => cache.stats().sets === 2, 5000, 5);
      await flavour('b', 'HIT');
      await flavour('a', 'HIT');
      await flavour('b', 'HIT');
      expect(runs).toBe(2);
      // Five requests: two answered by their handler, three from the cache.
      expect({ hits: hits.length, misses: misses.length }).toEqual({ hits: 3, misses: 2 });
      expect(cache.stats()).toMatchObject({ hits: 3, misses: 2, sets: 2 });
    });
  });
});
