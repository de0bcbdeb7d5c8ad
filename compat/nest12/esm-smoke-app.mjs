// The ES-module NestJS 12 application of esm-smoke.mjs (run that file, not this one). Decorators
// are applied with Reflect.decorate, as plain JavaScript has no decorator syntax on Node 20.
import 'reflect-metadata';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import {
  Controller,
  Get,
  Inject,
  Injectable,
  Module,
  Param,
  UseInterceptors,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { CacheInterceptor, CacheModule, CacheService, Cacheable } from 'nestjs-cachekit';

const require = createRequire(import.meta.url);
const versions = ['@nestjs/common', '@nestjs/core', '@nestjs/platform-express'].map((name) => {
  const entry = require.resolve(name);
  const manifest = JSON.parse(readFileSync(entry.replace(/index\.js$/, 'package.json'), 'utf8'));
  assert.match(manifest.version, /^12\./, `${name} should be NestJS 12, got ${manifest.version}`);
  return `${name}@${manifest.version}`;
});
const libEntry = require.resolve('nestjs-cachekit');
const libCommon = createRequire(libEntry).resolve('@nestjs/common');
assert.equal(libCommon, require.resolve('@nestjs/common'), 'the package must share @nestjs/common');

const decorateMethod = (decorators, proto, key) =>
  Object.defineProperty(
    proto,
    key,
    Reflect.decorate(decorators, proto, key, Object.getOwnPropertyDescriptor(proto, key)),
  );

let priceCalls = 0;
let Prices = class {
  async price(id) {
    priceCalls++;
    return { id, price: priceCalls };
  }
};
decorateMethod([Cacheable('price:{id}')], Prices.prototype, 'price');
Prices = Reflect.decorate([Injectable()], Prices);

let listCalls = 0;
let ShopController = class {
  constructor(prices) {
    this.prices = prices;
  }
  list() {
    listCalls++;
    return { items: ['a'], n: listCalls };
  }
  price(id) {
    return this.prices.price(Number(id));
  }
};
decorateMethod([Get('items')], ShopController.prototype, 'list');
decorateMethod([Get('price/:id')], ShopController.prototype, 'price');
Param('id')(ShopController.prototype, 'price', 0);
Inject(Prices)(ShopController, undefined, 0);
ShopController = Reflect.decorate(
  [Controller(), UseInterceptors(CacheInterceptor)],
  ShopController,
);

async function freePort() {
  const server = createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts a throwaway redis-server when one is installed; returns undefined otherwise. */
async function startRedis() {
  const port = await freePort();
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  const failed = await new Promise((resolve) => {
    child.once('error', () => resolve(true));
    child.once('spawn', () => resolve(false));
  });
  if (failed) return undefined;
  const deadline = Date.now() + 5000;
  for (;;) {
    const up = await new Promise((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.end(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (up) break;
    if (Date.now() > deadline) throw new Error('redis-server did not start');
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return { url: `redis://127.0.0.1:${port}`, stop: () => child.kill() };
}

async function run(label, cacheImport) {
  let AppModule = class {};
  AppModule = Reflect.decorate(
    [Module({ imports: [cacheImport], controllers: [ShopController], providers: [Prices] })],
    AppModule,
  );
  priceCalls = 0;
  listCalls = 0;
  const app = await NestFactory.create(AppModule, { logger: false });
  await app.listen(0, '127.0.0.1');
  try {
    const base = await app.getUrl();
    const first = await fetch(`${base}/items`);
    const second = await fetch(`${base}/items`);
    assert.equal(first.headers.get('x-cache'), 'MISS', `${label}: first GET /items`);
    assert.equal(second.headers.get('x-cache'), 'HIT', `${label}: second GET /items`);
    assert.deepEqual(await second.json(), { items: ['a'], n: 1 });

    await fetch(`${base}/price/7`);
    const again = await (await fetch(`${base}/price/7`)).json();
    assert.deepEqual(again, { id: 7, price: 1 }, `${label}: @Cacheable service method`);
    assert.equal(priceCalls, 1);

    const cache = app.get(CacheService);
    await cache.set('smoke', { ok: true }, 30);
    assert.deepEqual(await cache.get('smoke'), { ok: true }, `${label}: CacheService`);
  } finally {
    await app.close();
  }
  console.log(`esm-smoke: ${label} ok`);
}

console.log(`esm-smoke: ${versions.join(', ')}; nestjs-cachekit from ${libEntry}`);
await run('forRoot (memory)', CacheModule.forRoot({ namespace: 'smoke-mem' }));
await run(
  'forRootAsync (memory)',
  CacheModule.forRootAsync({ useFactory: async () => ({ namespace: 'smoke-async', ttl: 60 }) }),
);
const redis = await startRedis();
if (redis) {
  try {
    await run(
      'forRoot (redis)',
      CacheModule.forRoot({
        provider: 'redis',
        namespace: `smoke-${process.pid}`,
        redis: { url: redis.url },
      }),
    );
  } finally {
    redis.stop();
  }
} else {
  console.log('esm-smoke: redis-server not installed, skipping the Redis run');
}
