import {
  Controller,
  Get,
  Injectable,
  Param,
  ParseIntPipe,
  Post,
  UseInterceptors,
  type INestApplication,
} from '@nestjs/common';
import request from 'supertest';
import {
  CacheInterceptor,
  CacheModule,
  CacheStatusInterceptor,
  Cacheable,
  cacheResult,
} from '../../lib';
import { createHttpApp, PLATFORMS } from '../support/http-platforms';

let loads = 0;

// Declared once at module level, as a user would.
const getPayload = cacheResult(
  async (id: number) => {
    loads++;
    return { id, kind: 'payload' };
  },
  { key: (id: number) => `payload:${id}`, ttl: 60 },
);

@Injectable()
class ProfileService {
  @Cacheable('profile:{id}')
  async find(id: number): Promise<{ id: number; kind: string }> {
    return { id, kind: 'profile' };
  }
}

@Controller('fn')
@UseInterceptors(CacheStatusInterceptor)
class FunctionController {
  constructor(private readonly profiles: ProfileService) {}

  @Get(':id')
  one(@Param('id', ParseIntPipe) id: number) {
    return getPayload(id);
  }

  @Get('both/:id')
  async both(@Param('id', ParseIntPipe) id: number) {
    const [profile, payload] = await Promise.all([this.profiles.find(id), getPayload(id)]);
    return { profile, payload };
  }
}

/** A route CacheInterceptor does not cache (POST): it reports the cached calls it made. */
@Controller('fn-url')
@UseInterceptors(CacheInterceptor)
class UncachedRouteController {
  @Post(':id')
  post(@Param('id', ParseIntPipe) id: number) {
    return getPayload(id);
  }
}

describe.each(PLATFORMS)('cacheResult functions report to X-Cache (%s)', (platform) => {
  let app: INestApplication;
  const server = () => app.getHttpServer() as Parameters<typeof request>[0];

  beforeEach(async () => {
    loads = 0;
    app = await createHttpApp(platform, {
      imports: [CacheModule.forRoot({ ttl: 60 })],
      controllers: [FunctionController, UncachedRouteController],
      providers: [ProfileService],
    });
  });

  afterEach(async () => {
    await app.close();
  });

  it('a call made by the handler: MISS, then HIT', async () => {
    const first = await request(server()).get('/fn/1').expect(200);
    const second = await request(server()).get('/fn/1').expect(200);
    expect(second.body).toEqual(first.body);
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    expect(loads).toBe(1);
  });

  it('counts with @Cacheable calls: HIT only when both hit', async () => {
    const cold = await request(server()).get('/fn/both/2').expect(200);
    const warm = await request(server()).get('/fn/both/2').expect(200);
    await getPayload.invalidate(2);
    // The @Cacheable service hits; the function alone misses.
    const partly = await request(server()).get('/fn/both/2').expect(200);
    expect([cold, warm, partly].map((r) => r.headers['x-cache'])).toEqual(['MISS', 'HIT', 'MISS']);
    expect(loads).toBe(2);
  });

  it('on a route CacheInterceptor passes through', async () => {
    const first = await request(server()).post('/fn-url/3').expect(201);
    const second = await request(server()).post('/fn-url/3').expect(201);
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
  });
});
