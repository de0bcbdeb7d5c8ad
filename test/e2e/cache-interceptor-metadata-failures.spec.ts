import {
  Controller,
  Get,
  UseInterceptors,
  type ExecutionContext,
  type INestApplication,
} from '@nestjs/common';
import request from 'supertest';
import {
  CacheInterceptor,
  CacheKey,
  CacheModule,
  CachePerUser,
  CacheTTL,
  MemoryCacheAdapter,
} from '../../lib';
import { createHttpApp, PLATFORMS } from '../support/http-platforms';
import { CapturingLogger } from '../support/logs';

/**
 * A route's cache metadata that fails (a factory that throws, rejects or answers something
 * unusable) is the application's bug, not the client's: the request is served uncached (the
 * handler runs every time, nothing is stored) and the failure is logged, never a 500.
 */
const runs: Record<string, number> = {};
const ran = (name: string) => ({ name, run: (runs[name] = (runs[name] ?? 0) + 1) });

@Controller('broken')
@UseInterceptors(CacheInterceptor)
class BrokenController {
  @Get('ttl-negative')
  @CacheTTL(() => -1)
  ttlNegative() {
    return ran('ttl-negative');
  }

  @Get('ttl-string')
  @CacheTTL(() => '60s')
  ttlString() {
    return ran('ttl-string');
  }

  @Get('ttl-throws')
  @CacheTTL(() => {
    throw new Error('ttl factory exploded');
  })
  ttlThrows() {
    return ran('ttl-throws');
  }

  @Get('ttl-rejects')
  @CacheTTL(() => Promise.reject(new Error('ttl lookup failed')))
  ttlRejects() {
    return ran('ttl-rejects');
  }

  @Get('key-number')
  @CacheKey((() => 42) as unknown as () => string)
  keyNumber() {
    return ran('key-number');
  }

  @Get('key-throws')
  @CacheKey(() => {
    throw new Error('key factory exploded');
  })
  keyThrows() {
    return ran('key-throws');
  }

  @Get('per-user-throws')
  @CachePerUser(
    (context: ExecutionContext) =>
      context.switchToHttp().getRequest<{ user: { id: string } }>().user.id,
  )
  perUserThrows() {
    return ran('per-user-throws');
  }

  @Get('identify-rejects')
  @CachePerUser(() => Promise.reject(new Error('session store down')))
  identifyRejects() {
    return ran('identify-rejects');
  }
}

const ROUTES = [
  ['ttl-negative', /TTL failed for ".*ttl-negative": the TTL is -1/],
  ['ttl-string', /TTL failed for ".*ttl-string": the TTL is "60s"/],
  ['ttl-throws', /TTL failed for ".*ttl-throws": "ttl factory exploded"/],
  ['ttl-rejects', /TTL failed for ".*ttl-rejects": "ttl lookup failed"/],
  ['key-number', /key failed: the key is 42, expected a string/],
  ['key-throws', /key failed: "key factory exploded"/],
  ['per-user-throws', /key failed: .*undefined/],
  ['identify-rejects', /key failed: "session store down"/],
] as const;

describe.each(PLATFORMS)('CacheInterceptor with failing cache metadata (%s)', (platform) => {
  let app: INestApplication;
  let adapter: MemoryCacheAdapter;
  let logger: CapturingLogger;

  beforeAll(async () => {
    adapter = new MemoryCacheAdapter();
    logger = new CapturingLogger();
    app = await createHttpApp(
      platform,
      { imports: [CacheModule.forRoot({ adapter })], controllers: [BrokenController] },
      logger,
    );
  });

  afterAll(() => app.close());

  // Log lines are rate-limited per route for 10 s, process-wide: each platform's requests happen
  // a minute after the previous platform's, so each logs its own line.
  let clock = 0;
  beforeEach(() => {
    clock += 60_000;
    const now = Date.now.bind(Date);
    jest
      .spyOn(Date, 'now')
      .mockImplementation(() => now() + clock * (PLATFORMS.indexOf(platform) + 1));
  });
  afterEach(() => jest.restoreAllMocks());

  it.each(ROUTES)('serves /broken/%s uncached, logged', async (route, logged) => {
    const before = runs[route] ?? 0;
    const first = await request(app.getHttpServer()).get(`/broken/${route}`);
    const second = await request(app.getHttpServer()).get(`/broken/${route}`);
    expect([first.status, second.status]).toEqual([200, 200]);
    expect(first.body).toEqual({ name: route, run: before + 1 });
    // The handler ran again: nothing was stored.
    expect(second.body).toEqual({ name: route, run: before + 2 });
    expect(first.headers['x-cache']).not.toBe('HIT');
    expect(second.headers['x-cache']).not.toBe('HIT');
    expect(adapter.size).toBe(0);
    const warnings = logger.warnings().filter((line) => line.includes('served uncached'));
    expect(warnings.some((line) => logged.test(line))).toBe(true);
    // Rate-limited: two failing requests, one line.
    expect(warnings.filter((line) => logged.test(line))).toHaveLength(1);
  });
});
