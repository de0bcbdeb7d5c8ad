import {
  Body,
  Controller,
  Get,
  HttpCode,
  Injectable,
  Param,
  ParseIntPipe,
  Post,
  Query,
  Res,
  SetMetadata,
  UseGuards,
  UseInterceptors,
  type CallHandler,
  type CanActivate,
  type ExecutionContext,
  type INestApplication,
  type NestInterceptor,
  type PipeTransform,
} from '@nestjs/common';
import { PATH_METADATA } from '@nestjs/common/constants';
import { Reflector } from '@nestjs/core';
import { map, Observable, of } from 'rxjs';
import request from 'supertest';
import { CacheEvict, CacheModule, CacheService, Cacheable } from '../../lib';
import { createHttpApp, PLATFORMS } from '../support/http-platforms';

/** Another library's method decorator, writing its own metadata key the way Nest's do. */
const LIBRARY_KEY = 'some-library:method-options';
const LibraryDecorator =
  (value: string): MethodDecorator =>
  (_target, _key, descriptor) => {
    Reflect.defineMetadata(LIBRARY_KEY, value, descriptor.value as object);
    return descriptor;
  };

/** Lets a request through only when it carries the role the handler's metadata asks for. */
@Injectable()
class RoleGuard implements CanActivate {
  constructor(private readonly reflector: Reflector) {}
  canActivate(context: ExecutionContext): boolean {
    const roles = this.reflector.get<string[] | undefined>('roles', context.getHandler());
    if (!roles) return true;
    const request = context.switchToHttp().getRequest<{ headers: Record<string, string> }>();
    return roles.includes(request.headers['x-role']);
  }
}

/** Upper-cases a query value, to show pipes run before the key is rendered. */
class UpperPipe implements PipeTransform<string | undefined, string | undefined> {
  transform(value: string | undefined): string | undefined {
    return value?.toUpperCase();
  }
}

/** Wraps whatever the handler answers, as response-shaping interceptors do. */
class Envelope implements NestInterceptor {
  intercept(_context: ExecutionContext, next: CallHandler): Observable<unknown> {
    return next.handle().pipe(map((data: unknown) => ({ data })));
  }
}

/**
 * Another library's decorator that wraps the method again, copying its reflect metadata and,
 * with `ownProperties`, its own properties too. It expects a Promise back, as the method's
 * signature promises.
 */
const seenByOuter: unknown[][] = [];
const Logged =
  (ownProperties: boolean): MethodDecorator =>
  (_target, _key, descriptor) => {
    const inner = descriptor.value as unknown as (...args: unknown[]) => Promise<unknown>;
    const outer = function (this: unknown, ...args: unknown[]): Promise<unknown> {
      seenByOuter.push(args);
      return inner.apply(this, args).then((value) => value);
    };
    for (const key of Reflect.getOwnMetadataKeys(inner) as unknown[]) {
      Reflect.defineMetadata(key, Reflect.getOwnMetadata(key, inner), outer);
    }
    if (ownProperties) {
      for (const key of Reflect.ownKeys(inner)) {
        if (['length', 'name', 'prototype'].includes(key as string)) continue;
        Object.defineProperty(outer, key, Object.getOwnPropertyDescriptor(inner, key)!);
      }
    }
    (descriptor as PropertyDescriptor).value = outer;
    return descriptor;
  };

const calls: Record<string, number> = {};
const count = (name: string) => (calls[name] = (calls[name] ?? 0) + 1);

@Controller('products')
class ProductsController {
  // Cache decorator below the route decorators.
  @Get(':id')
  @HttpCode(200)
  @Cacheable('product:{id}')
  async get(@Param('id') id: string): Promise<{ id: string; name: string }> {
    count('get');
    return { id, name: `Product ${id}` };
  }

  // Cache decorator above the route decorators, with a pipe on the parameter.
  @Cacheable('item:{id}')
  @Get('items/:id')
  @HttpCode(203)
  item(@Param('id', ParseIntPipe) id: number): { id: number; type: string } {
    count('item');
    return { id, type: typeof id };
  }

  @Get('search/all')
  @Cacheable('search:{q}:page:{page}')
  search(@Query('q', UpperPipe) q: string, @Query('page') page = '1'): string[] {
    count('search');
    return [`${q}@${page}`];
  }

  @Get('stream/:id')
  @Cacheable('obs:{id}')
  stream(@Param('id') id: string): Observable<{ id: string; via: string }> {
    count('stream');
    return of({ id, via: 'observable' });
  }

  // Guard + custom metadata, cache decorator in the middle.
  @Get('admin/:id')
  @UseGuards(RoleGuard)
  @Cacheable('admin:{id}')
  @SetMetadata('roles', ['admin'])
  @LibraryDecorator('below')
  admin(@Param('id') id: string): { id: string; admin: boolean } {
    count('admin');
    return { id, admin: true };
  }

  @LibraryDecorator('above')
  @SetMetadata('roles', ['editor'])
  @Cacheable('editor:{id}')
  @UseGuards(RoleGuard)
  @Get('editor/:id')
  editor(@Param('id') id: string): { id: string; editor: boolean } {
    count('editor');
    return { id, editor: true };
  }

  // X-Cache goes onto the response through an extra argument: the method must not see it.
  @Get('args/:id')
  @Cacheable('args:{0}:{1}')
  async args(
    @Param('id') id: string,
    @Query('q') q?: string,
  ): Promise<{ id: string; q?: string; seen: number }> {
    count('args');
    return Promise.resolve({ id, q, seen: arguments.length });
  }

  @Get('wrapped/:id')
  @UseInterceptors(Envelope)
  @Cacheable('wrapped:{id}')
  wrapped(@Param('id') id: string): { id: string } {
    count('wrapped');
    return { id };
  }

  @Get('logged/:id')
  @Logged(false)
  @Cacheable('logged:{id}')
  async logged(@Param('id') id: string): Promise<{ id: string }> {
    count('logged');
    return Promise.resolve({ id });
  }

  @Get('logged-own/:id')
  @Logged(true)
  @Cacheable('logged-own:{id}')
  async loggedOwn(@Param('id') id: string): Promise<{ id: string }> {
    count('loggedOwn');
    return Promise.resolve({ id });
  }

  // A handler that takes the response itself keeps it, and still reports X-Cache.
  @Get('own-response/:id')
  @Cacheable('own:{id}')
  ownResponse(
    @Param('id') id: string,
    @Res({ passthrough: true }) res: { header(name: string, value: string): unknown },
  ): { id: string } {
    count('ownResponse');
    res.header('x-handler', 'ran');
    return { id };
  }

  @Post()
  @HttpCode(202)
  @CacheEvict({ key: 'product:{body.id}' })
  update(@Body() body: { id: string }): { updated: string } {
    count('update');
    return { updated: body.id };
  }
}

describe.each(PLATFORMS)('decorated controller handlers (%s)', (platform) => {
  let app: INestApplication;
  let cache: CacheService;

  beforeEach(async () => {
    for (const name of Object.keys(calls)) delete calls[name];
    app = await createHttpApp(platform, {
      imports: [CacheModule.forRoot()],
      controllers: [ProductsController],
      providers: [RoleGuard],
    });
    cache = app.get(CacheService);
  });

  afterEach(async () => {
    await app.close();
  });

  it('two GET /products/1 run the handler body once, with X-Cache MISS then HIT', async () => {
    const first = await request(app.getHttpServer()).get('/products/1').expect(200);
    const second = await request(app.getHttpServer()).get('/products/1').expect(200);
    expect(first.body).toEqual({ id: '1', name: 'Product 1' });
    expect(second.body).toEqual(first.body);
    expect(calls.get).toBe(1);
    expect(first.headers['x-cache']).toBe('MISS');
    expect(second.headers['x-cache']).toBe('HIT');
    expect(await cache.get('product:1')).toEqual({ id: '1', name: 'Product 1' });
  });

  it('keeps pipes and @HttpCode when the cache decorator is above the route', async () => {
    const first = await request(app.getHttpServer()).get('/products/items/7').expect(203);
    await request(app.getHttpServer()).get('/products/items/7').expect(203);
    expect(first.body).toEqual({ id: 7, type: 'number' });
    expect(calls.item).toBe(1);
    await request(app.getHttpServer()).get('/products/items/x').expect(400);
    expect(calls.item).toBe(1);
  });

  it('renders keys from piped query parameters with their defaults', async () => {
    await request(app.getHttpServer()).get('/products/search/all?q=shoes').expect(200);
    await request(app.getHttpServer()).get('/products/search/all?q=SHOES&page=1').expect(200);
    expect(calls.search).toBe(1);
    expect(await cache.get('search:SHOES:page:1')).toEqual(['SHOES@1']);
  });

  it('caches handlers returning an Observable', async () => {
    const first = await request(app.getHttpServer()).get('/products/stream/3').expect(200);
    const second = await request(app.getHttpServer()).get('/products/stream/3').expect(200);
    expect(first.body).toEqual({ id: '3', via: 'observable' });
    expect(second.body).toEqual(first.body);
    expect(calls.stream).toBe(1);
    expect(second.headers['x-cache']).toBe('HIT');
  });

  it('still runs guards reading metadata set on either side of the cache decorator', async () => {
    await request(app.getHttpServer()).get('/products/admin/1').expect(403);
    await request(app.getHttpServer()).get('/products/admin/1').set('x-role', 'admin').expect(200);
    await request(app.getHttpServer()).get('/products/admin/1').set('x-role', 'admin').expect(200);
    // A cached answer never skips the guard.
    await request(app.getHttpServer()).get('/products/admin/1').expect(403);
    expect(calls.admin).toBe(1);

    await request(app.getHttpServer()).get('/products/editor/2').set('x-role', 'admin').expect(403);
    await request(app.getHttpServer())
      .get('/products/editor/2')
      .set('x-role', 'editor')
      .expect(200);
    expect(calls.editor).toBe(1);
  });

  it('hands the handler exactly its own arguments, and keys see only those', async () => {
    const first = await request(app.getHttpServer()).get('/products/args/4?q=red').expect(200);
    const second = await request(app.getHttpServer()).get('/products/args/4?q=red').expect(200);
    expect(first.body).toEqual({ id: '4', q: 'red', seen: 2 });
    expect(second.body).toEqual(first.body);
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    expect(calls.args).toBe(1);
    expect(await cache.get('args:4:red')).toEqual(first.body);
    // Called directly (a unit test), the method works the same, and a hit is still a Promise.
    const controller = app.get(ProductsController);
    expect(await controller.args('5')).toEqual({ id: '5', q: undefined, seen: 1 });
    const hit = controller.args('5');
    expect(hit).toBeInstanceOf(Promise);
    expect(await hit).toEqual({ id: '5', q: undefined, seen: 1 });
    expect(calls.args).toBe(2);
  });

  it('hands hits and misses alike to the interceptors around the handler', async () => {
    const first = await request(app.getHttpServer()).get('/products/wrapped/9').expect(200);
    const second = await request(app.getHttpServer()).get('/products/wrapped/9').expect(200);
    expect(first.body).toEqual({ data: { id: '9' } });
    expect(second.body).toEqual(first.body);
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    expect(calls.wrapped).toBe(1);
  });

  it.each(['logged', 'logged-own'])(
    'keeps a decorator above @Cacheable working: its arguments, a Promise, X-Cache (%s)',
    async (path) => {
      seenByOuter.length = 0;
      const first = await request(app.getHttpServer()).get(`/products/${path}/2`).expect(200);
      const second = await request(app.getHttpServer()).get(`/products/${path}/2`).expect(200);
      expect(first.body).toEqual({ id: '2' });
      expect(second.body).toEqual({ id: '2' });
      expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
      expect(seenByOuter).toEqual([['2'], ['2']]);
      expect(calls.logged ?? calls.loggedOwn).toBe(1);
    },
  );

  it('reports X-Cache on a handler that takes the response itself', async () => {
    const first = await request(app.getHttpServer()).get('/products/own-response/1').expect(200);
    const second = await request(app.getHttpServer()).get('/products/own-response/1').expect(200);
    expect(first.body).toEqual({ id: '1' });
    expect(second.body).toEqual({ id: '1' });
    expect(first.headers['x-handler']).toBe('ran');
    expect(second.headers['x-handler']).toBeUndefined();
    expect([first.headers['x-cache'], second.headers['x-cache']]).toEqual(['MISS', 'HIT']);
    expect(calls.ownResponse).toBe(1);
  });

  it('keeps POST routes, @Body and @HttpCode on an evicting handler', async () => {
    await request(app.getHttpServer()).get('/products/5').expect(200);
    expect(await cache.has('product:5')).toBe(true);
    const res = await request(app.getHttpServer()).post('/products').send({ id: '5' }).expect(202);
    expect(res.body).toEqual({ updated: '5' });
    expect(await cache.has('product:5')).toBe(false);
    await request(app.getHttpServer()).get('/products/5').expect(200);
    expect(calls.get).toBe(2);
  });
});

describe('metadata survives the cache decorators, in either order', () => {
  const reflector = new Reflector();
  const proto = ProductsController.prototype;

  it('reads SetMetadata and other libraries’ keys back through Reflector', () => {
    expect(reflector.get('roles', proto.admin)).toEqual(['admin']);
    expect(reflector.get(LIBRARY_KEY, proto.admin)).toBe('below');
    expect(reflector.get('roles', proto.editor)).toEqual(['editor']);
    expect(reflector.get(LIBRARY_KEY, proto.editor)).toBe('above');
  });

  it('keeps route paths on the handler', () => {
    expect(reflector.get(PATH_METADATA, proto.get)).toBe(':id');
    expect(reflector.get(PATH_METADATA, proto.item)).toBe('items/:id');
    expect(reflector.get(PATH_METADATA, proto.editor)).toBe('editor/:id');
  });

  it('keeps the method name', () => {
    expect(proto.get.name).toBe('get');
    expect(proto.editor.name).toBe('editor');
  });
});
