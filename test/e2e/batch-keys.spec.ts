import { Controller, Get, Injectable, Module, Query, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import request from 'supertest';
import { CacheEvict, CacheModule, CacheService, Cacheable } from '../../lib';
import { CapturingLogger } from '../support/logs';

@Injectable()
class Svc {
  readonly calls: unknown[][] = [];
  @Cacheable('p:{ids}', { batch: true })
  async echo(ids: unknown[]): Promise<string[]> {
    this.calls.push(ids);
    return ids.map((id) => JSON.stringify(id));
  }

  @Cacheable({ batch: true })
  async plain(ids: unknown[]): Promise<string[]> {
    this.calls.push(ids);
    return ids.map((id) => `plain-${JSON.stringify(id)}`);
  }

  @Cacheable({ batch: true })
  async other(ids: unknown[]): Promise<string[]> {
    this.calls.push(ids);
    return ids.map((id) => `other-${JSON.stringify(id)}`);
  }

  @CacheEvict({ prefix: 'listing:' })
  @Cacheable('ev:{ids}', { batch: true })
  async evicting(ids: string[]): Promise<string[]> {
    this.calls.push(ids);
    return ids.map((id) => `ev-${id}`);
  }

  @Cacheable('named:{ids}', { batch: true, cache: 'side' })
  async named(ids: string[]): Promise<string[]> {
    this.calls.push(ids);
    return ids.map((id) => `named-${id}`);
  }

  @Cacheable('un:{ids}', { batch: true, unless: (v: unknown) => v === 'skip' })
  async unlessed(ids: string[]): Promise<string[]> {
    this.calls.push(ids);
    return ids.map((id) => (id === 's' ? 'skip' : `u-${id}`));
  }

  @Cacheable('sync:{ids}', { batch: true })
  syncOne(ids: string[]): string[] {
    this.calls.push(ids);
    return ids.map((id) => `s-${id}`);
  }
}

@Controller('b')
class Ctl {
  readonly calls: string[][] = [];
  @Get()
  @Cacheable('http:b:{ids}', { batch: true })
  async list(@Query('ids') ids: string[]): Promise<string[]> {
    this.calls.push(ids);
    return ids.map((id) => `h-${id}`);
  }
}

@Module({ providers: [Svc], controllers: [Ctl] })
class M {}

describe('batch-form keys and combinations', () => {
  let app: INestApplication;
  let svc: Svc;
  let cache: CacheService;
  beforeEach(async () => {
    const ref = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({ isGlobal: true, provider: 'memory', caches: { side: {} } }),
        M,
      ],
    }).compile();
    app = ref.createNestApplication({ logger: new CapturingLogger() });
    await app.init();
    svc = app.get(Svc);
    cache = app.get(CacheService);
  });
  afterEach(() => app.close());

  it('ids that differ only in type or structure are distinct entries', async () => {
    // (1 and '1', true and 'true' render alike: templates render text, documented.)
    const list = [1, ['1', '2'], '1,2', { a: 1 }, { a: 2 }, 'a:b', 'a', null, true];
    const out = await svc.echo(list);
    expect(out).toEqual(list.map((id) => JSON.stringify(id)));
  });

  it('default keys: two batch methods of one class never share an entry', async () => {
    await svc.plain(['x']);
    await expect(svc.other(['x'])).resolves.toEqual(['other-"x"']);
  });

  it('batch + @CacheEvict on the same method: evicts after the call', async () => {
    await cache.set('listing:1', 'L');
    await expect(svc.evicting(['1', '2'])).resolves.toEqual(['ev-1', 'ev-2']);
    await expect(cache.get('listing:1')).resolves.toBeUndefined();
    await svc.evicting(['1']);
    expect(svc.calls).toEqual([['1', '2']]);
  });

  it('unless per id; sync method', async () => {
    await expect(svc.unlessed(['a', 's'])).resolves.toEqual(['u-a', 'skip']);
    await svc.unlessed(['a', 's']);
    expect(svc.calls).toEqual([['a', 's'], ['s']]);
    await expect(Promise.resolve(svc.syncOne(['q']))).resolves.toEqual(['s-q']);
    await expect(Promise.resolve(svc.syncOne(['q', 'r']))).resolves.toEqual(['s-q', 's-r']);
  });

  it('named cache: entries land in the named cache only', async () => {
    await expect(svc.named(['1', '2'])).resolves.toEqual(['named-1', 'named-2']);
    await svc.named(['2', '1']);
    expect(svc.calls).toEqual([['1', '2']]);
    await expect(cache.getMany(['named:1'])).resolves.toEqual([undefined]);
  });

  it('controller X-Cache: MISS then HIT; one id alone (a string) runs uncached', async () => {
    const server = app.getHttpServer();
    const first = await request(server).get('/b?ids=1&ids=2');
    expect(first.body).toEqual(['h-1', 'h-2']);
    expect(first.headers['x-cache']).toBe('MISS');
    const second = await request(server).get('/b?ids=2&ids=1');
    expect(second.body).toEqual(['h-2', 'h-1']);
    expect(second.headers['x-cache']).toBe('HIT');
  });
});
