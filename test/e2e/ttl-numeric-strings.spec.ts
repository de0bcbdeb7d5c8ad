import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  argField,
  CacheArgumentError,
  Cacheable,
  CacheModule,
  CachePut,
  cacheResult,
  CacheService,
  KeyConstructor,
  type CacheModuleOptions,
} from '../../lib';
import { CacheStack } from '../../lib/core/cache-stack';
import { CapturingLogger } from '../support/logs';

/**
 * Issue 16, item 4: a TTL given as a numeric string (what `ConfigService.get` returns from the
 * environment) is read as that number in every entry point, and a `forRoot` TTL that looks like
 * milliseconds (`@nestjs/cache-manager`'s unit) gets a startup warning naming the unit.
 */

@Injectable()
class Catalog {
  @Cacheable('item:{id}', { ttl: '60' })
  find(id: number) {
    return Promise.resolve({ id });
  }

  @CachePut({ key: 'item:{id}', ttl: '1.5' })
  save(id: number) {
    return Promise.resolve({ id, saved: true });
  }
}

const key = KeyConstructor.define({ namespace: 'strings', fields: [argField('id')] });
const double = cacheResult((id: number) => id * 2, { key, ttl: '30' });

async function boot(
  options: CacheModuleOptions,
  logger: CapturingLogger | false = false,
): Promise<INestApplication> {
  // The options are resolved (and warned about) while the module compiles, as NestFactory does.
  const builder = Test.createTestingModule({
    imports: [CacheModule.forRoot(options)],
    providers: [Catalog],
  });
  if (logger) builder.setLogger(logger);
  const moduleRef = await builder.compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  return app;
}

/** Seconds `key` has left, to the millisecond (undefined on a miss). */
async function secondsLeft(app: INestApplication, entry: string): Promise<number | undefined> {
  const at = await app.get(CacheStack).expiresAt(entry);
  return at === undefined ? undefined : (at - Date.now()) / 1000;
}

describe('numeric-string TTLs in every entry point', () => {
  let app: INestApplication;
  beforeEach(async () => {
    app = await boot({ namespace: 'ttl-strings', ttl: 300 });
  });
  afterEach(() => app.close());

  it("CacheService.set / wrap: '60' and { ttl: '90' } are seconds", async () => {
    const cache = app.get(CacheService);
    await cache.set('a', 1, '60');
    await cache.set('b', 1, { ttl: '90' });
    await cache.wrap('c', () => 1, '45');
    await cache.wrap('d', () => 1, { ttl: '2.5' });
    expect(await secondsLeft(app, 'a')).toBeCloseTo(60, 0);
    expect(await secondsLeft(app, 'b')).toBeCloseTo(90, 0);
    expect(await secondsLeft(app, 'c')).toBeCloseTo(45, 0);
    expect(await secondsLeft(app, 'd')).toBeCloseTo(2.5, 0);
  });

  it("@Cacheable({ ttl: '60' }) and @CachePut({ ttl: '1.5' })", async () => {
    const catalog = app.get(Catalog);
    await catalog.find(1);
    expect(await secondsLeft(app, 'item:1')).toBeCloseTo(60, 0);
    await catalog.save(2);
    expect(await secondsLeft(app, 'item:2')).toBeCloseTo(1.5, 0);
  });

  it("cacheResult({ ttl: '30' })", async () => {
    expect(await double(4)).toBe(8);
    expect(await secondsLeft(app, double.keyFor(4))).toBeCloseTo(30, 0);
  });

  it.each(['60s', '1e3', ' 60', '-1', 'Infinity'])(
    'any other string (%p) is refused, the entry left as it was',
    async (ttl) => {
      const cache = app.get(CacheService);
      await cache.set('kept', 'old', 60);
      await expect(cache.set('kept', 'new', ttl as never)).rejects.toThrow(CacheArgumentError);
      await expect(cache.wrap('w', () => 1, ttl as never)).rejects.toThrow(CacheArgumentError);
      expect(await cache.get('kept')).toBe('old');
    },
  );
});

describe('a forRoot TTL that looks like milliseconds', () => {
  it.each([60_000, 300_000, 3_600_000, '60000'])(
    'ttl %p: a startup warning naming the unit',
    async (ttl) => {
      const logger = new CapturingLogger();
      const app = await boot({ namespace: 'ttl-ms', ttl: ttl as number }, logger);
      await app.close();
      const warning = logger.warnings().find((line) => line.includes('"ttl"'));
      expect(warning).toBeDefined();
      expect(warning).toContain('forRoot takes seconds');
      expect(warning).toContain('milliseconds');
      expect(warning).toContain(`ttl: ${Number(ttl) / 1000}`);
    },
  );

  it.each([60, 3600, 86_400, 59_000, 61_500])('ttl %p: no warning', async (ttl) => {
    const logger = new CapturingLogger();
    const app = await boot({ namespace: 'ttl-ms', ttl }, logger);
    await app.close();
    expect(logger.warnings().filter((line) => line.includes('"ttl"'))).toEqual([]);
  });

  it('CacheModule.register({ ttl: 60000 }) (milliseconds) warns of nothing', async () => {
    const logger = new CapturingLogger();
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.register({ ttl: 60_000 })],
    })
      .setLogger(logger)
      .compile();
    const app = moduleRef.createNestApplication({ logger });
    await app.init();
    expect(app.get(CacheService).defaultTtl).toBe(60);
    await app.close();
    expect(logger.warnings().filter((line) => line.includes('"ttl"'))).toEqual([]);
  });
});
