import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import {
  CacheAdapter,
  CacheConnectionError,
  CacheModule,
  CacheService,
  RedisCacheAdapter,
  type CacheModuleOptions,
} from '../../lib';
import { CapturingLogger } from '../support/logs';
import { freePort, makeTlsFiles, RedisServer } from '../support/redis-server';
import { inspector, sharedRedisUrl, uniqueNamespace } from '../support/redis';

async function boot(options: CacheModuleOptions, logger = new CapturingLogger()) {
  const moduleRef = await Test.createTestingModule({
    imports: [CacheModule.forRoot(options)],
  }).compile();
  const app: INestApplication = moduleRef.createNestApplication({ logger });
  await app.init();
  return { app, cache: app.get(CacheService), logger };
}

/** Boots the module on the suite's shared redis-server, under `namespace`. */
function bootOnShared(namespace: string) {
  return boot({ provider: 'redis', redis: { url: sharedRedisUrl() }, namespace });
}

function redisCli(port: number, ...args: string[]): string {
  const result = spawnSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], {
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(result.stderr);
  return result.stdout.trim();
}

describe('RedisCacheAdapter on a real redis-server', () => {
  let raw: Redis;
  const port = () => Number(new URL(sharedRedisUrl()).port);

  beforeAll(() => {
    raw = inspector();
  });
  afterAll(async () => {
    await raw.quit();
  });

  it('stores JSON under namespace:key, readable with redis-cli GET', async () => {
    const namespace = uniqueNamespace('json');
    const { app, cache } = await bootOnShared(namespace);
    await cache.set('user:123', {
      name: 'Alice',
      tags: ['a'],
      admin: false,
      score: 1.5,
      none: null,
    });
    expect(redisCli(port(), 'GET', `${namespace}:user:123`)).toBe(
      '{"name":"Alice","tags":["a"],"admin":false,"score":1.5,"none":null}',
    );
    expect(await raw.exists('user:123')).toBe(0);
    await cache.clear();
    await app.close();
  });

  it('sets the TTL with PX (milliseconds), and no TTL for ttl 0', async () => {
    const namespace = uniqueNamespace('ttl');
    const { app, cache } = await bootOnShared(namespace);
    await cache.set('fractional', 1, 2.5);
    await cache.set('forever', 1, 0);
    await cache.set('default', 1);
    const pttl = await raw.pttl(`${namespace}:fractional`);
    expect(pttl).toBeGreaterThan(2000);
    expect(pttl).toBeLessThanOrEqual(2500);
    expect(await raw.pttl(`${namespace}:forever`)).toBe(-1);
    expect(await raw.pttl(`${namespace}:default`)).toBeGreaterThan(299_000);
    await cache.clear();
    await app.close();
  });

  it('clear and deleteByPrefix leave keys outside the namespace alone', async () => {
    const namespace = uniqueNamespace('ns');
    const other = `${namespace}x`; // shares the namespace as a string prefix, but not the "ns:" prefix
    await raw.set(`${other}:user:1`, '"other app"');
    await raw.set(`${namespace}`, '"bare namespace key"');
    await raw.set(`plain-${namespace}`, '"unrelated"');
    const { app, cache } = await bootOnShared(namespace);
    await cache.set('user:1', 'mine');
    await cache.set('user:2', 'mine');
    expect(await cache.deleteByPrefix('user:')).toBe(2);
    await cache.set('user:3', 'mine');
    await cache.clear();
    expect(await raw.get(`${namespace}:user:3`)).toBeNull();
    expect(await raw.get(`${other}:user:1`)).toBe('"other app"');
    expect(await raw.get(namespace)).toBe('"bare namespace key"');
    expect(await raw.get(`plain-${namespace}`)).toBe('"unrelated"');
    await raw.del(`${other}:user:1`, namespace, `plain-${namespace}`);
    await app.close();
  });

  it('refuses glob characters in the namespace, and escapes them in prefixes', async () => {
    const base = uniqueNamespace('glob');
    // A namespace `x-[ab]` would have matched `x-b` in SCAN: it is refused at startup.
    await expect(bootOnShared(`${base}-[ab]`)).rejects.toThrow(/option "namespace"/);
    const { app, cache } = await bootOnShared(base);
    await cache.set('[ab]:k', 'literal');
    await cache.set('b:k', 'neighbour');
    expect(await cache.deleteByPrefix('[ab]')).toBe(1);
    expect(await cache.get('b:k')).toBe('neighbour');
    await cache.clear();
    await app.close();
  });

  it('deleteByPrefix walks more keys than one SCAN page', async () => {
    const namespace = uniqueNamespace('many');
    const { app, cache } = await bootOnShared(namespace);
    const pipeline = raw.pipeline();
    for (let i = 0; i < 2500; i++) pipeline.set(`${namespace}:bulk:${i}`, String(i));
    pipeline.set(`${namespace}:keep`, '1');
    await pipeline.exec();
    expect(await cache.deleteByPrefix('bulk:')).toBe(2500);
    expect(await cache.get('keep')).toBe(1);
    await cache.clear();
    await app.close();
  });

  it('reads corrupt JSON and wrong-type keys as a miss with a WARN', async () => {
    const namespace = uniqueNamespace('corrupt');
    const { app, cache, logger } = await bootOnShared(namespace);
    await raw.set(`${namespace}:broken`, '{"half": ');
    await raw.lpush(`${namespace}:list`, 'x');
    expect(await cache.get('broken')).toBeUndefined();
    expect(await cache.get('list')).toBeUndefined();
    expect(await cache.wrap('broken', () => 'reloaded')).toBe('reloaded');
    const warnings = logger.warnings().join('\n');
    expect(warnings).toContain(`"${namespace}:broken" holds data that is not valid JSON`);
    expect(warnings).toContain(`"${namespace}:list" holds a non-string Redis type`);
    await cache.clear();
    await app.close();
  });

  it('connects and pings at startup, and closes its connection on app.close()', async () => {
    const { app } = await bootOnShared(uniqueNamespace('life'));
    const adapter = app.get<RedisCacheAdapter>(CacheAdapter);
    expect(adapter.client.status).toBe('ready');
    await app.close();
    expect(adapter.client.status).toBe('end');
  });

  it('batches the commands of one tick into one socket write, each getting its own answer', async () => {
    const namespace = uniqueNamespace('batch');
    const { app, cache } = await bootOnShared(namespace);
    const socket = (app.get<RedisCacheAdapter>(CacheAdapter).client as Redis).stream;
    const writes: number[] = [];
    const spied = socket as unknown as Record<'_write' | '_writev', (...args: unknown[]) => void>;
    for (const name of ['_write', '_writev'] as const) {
      const real = spied[name];
      spied[name] = function (this: unknown, ...args: unknown[]) {
        writes.push(Array.isArray(args[0]) ? args[0].length : 1);
        return real.apply(this, args);
      };
    }
    // The first goes out at once (nothing awaits a reply, as on a plain client); the 49 issued
    // while it is in flight share one write.
    const ids = Array.from({ length: 50 }, (_, i) => i);
    await Promise.all(ids.map((i) => cache.set(`item:${i}`, { i })));
    expect(writes).toEqual([1, 49]);
    writes.length = 0;
    expect(await Promise.all(ids.map((i) => cache.get(`item:${i}`)))).toEqual(
      ids.map((i) => ({ i })),
    );
    expect(writes).toEqual([1, 49]);
    writes.length = 0;
    // A lone command goes out on its own, in the tick it was issued.
    expect(await cache.get('item:7')).toEqual({ i: 7 });
    expect(writes).toEqual([1]);
    expect(await raw.get(`${namespace}:item:49`)).toBe('{"i":49}');
    await cache.clear();
    await app.close();
  });

  it('rejects (never throws) when used directly with a value JSON cannot write', async () => {
    const { app } = await bootOnShared(uniqueNamespace('direct'));
    const adapter = app.get<RedisCacheAdapter>(CacheAdapter);
    const pending = adapter.set('k', { n: 1n }, 0);
    expect(pending).toBeInstanceOf(Promise);
    await expect(pending).rejects.toThrow(/BigInt/);
    expect(await adapter.get('k')).toBeUndefined();
    await app.close();
  });

  it('leaves an application-provided client open', async () => {
    const client = new Redis(sharedRedisUrl());
    const { app, cache } = await boot({
      provider: 'redis',
      redis: { client },
      namespace: uniqueNamespace('own'),
    });
    await cache.set('k', 1);
    expect(await cache.get('k')).toBe(1);
    await cache.clear();
    await app.close();
    expect(client.status).toBe('ready');
    await client.quit();
  });

  describe('URLs', () => {
    let secured: RedisServer;
    beforeAll(async () => {
      secured = await RedisServer.start({ args: ['--requirepass', 'hunter2-secret'] });
    });
    afterAll(async () => {
      await secured.stop();
    });

    it('uses the password and database number of the URL', async () => {
      const url = `redis://:hunter2-secret@127.0.0.1:${secured.port}/3`;
      const { app, cache, logger } = await boot({
        provider: 'redis',
        redis: { url },
        namespace: 'dbtest',
      });
      await cache.set('k', 'in db 3');
      const check = new Redis({
        port: secured.port,
        host: '127.0.0.1',
        password: 'hunter2-secret',
        db: 3,
      });
      expect(await check.get('dbtest:k')).toBe('"in db 3"');
      await check.select(0);
      expect(await check.get('dbtest:k')).toBeNull();
      await check.quit();
      await app.close();
      expect(logger.text).not.toContain('hunter2');
    });

    it('never logs or throws the password when authentication or connection fails', async () => {
      const wrong = `redis://:hunter2-wrong@127.0.0.1:${secured.port}/0`;
      const booted = await boot({ provider: 'redis', redis: { url: wrong }, namespace: 'auth' });
      expect(await booted.cache.get('k')).toBeUndefined();
      await booted.app.close();
      expect(booted.logger.warnings().length).toBeGreaterThan(0);
      expect(booted.logger.text).not.toContain('hunter2');

      const closed = `redis://user:hunter2-secret@127.0.0.1:${await freePort()}/0`;
      const down = await boot({ provider: 'redis', redis: { url: closed }, namespace: 'down' });
      expect(down.logger.text).toMatch(/Cannot reach Redis at redis:\/\/127\.0\.0\.1:\d+\/0/);
      await down.app.close();
      expect(down.logger.text).not.toContain('hunter2');

      const strictError = await boot({
        provider: 'redis',
        redis: { url: closed },
        strict: true,
      }).catch((error: unknown) => error);
      expect(strictError).toBeInstanceOf(CacheConnectionError);
      expect(String((strictError as Error).message)).not.toContain('hunter2');
      expect(String((strictError as Error).message)).toContain(
        'Cannot reach Redis at redis://127.0.0.1',
      );
    });
  });

  describe('rediss:// (TLS)', () => {
    let dir: string;
    let server: RedisServer;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'cachekit-tls-'));
      server = await RedisServer.start({ tls: makeTlsFiles(dir) });
    });
    afterAll(async () => {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('connects over TLS with a rediss:// URL', async () => {
      const { readFileSync } = await import('node:fs');
      const { app, cache } = await boot({
        provider: 'redis',
        redis: {
          url: `rediss://127.0.0.1:${server.port}`,
          tls: { ca: readFileSync(join(dir, 'ca.crt')), servername: '127.0.0.1' },
        },
        namespace: 'tls',
      });
      await cache.set('secure', { ok: true });
      expect(await cache.get('secure')).toEqual({ ok: true });
      expect(await server.command('GET', 'tls:secure')).toContain('{"ok":true}');
      await app.close();
    });
  });
});
