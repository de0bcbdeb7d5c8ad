/**
 * What observability (issue 15) costs the hit path, in the same run: the same memory cache read
 * through `CacheService.get`, `wrap` and an `@Cacheable` method, with nobody listening, with a
 * listener on another event, with a `hit` listener, with `@nestjs/event-emitter` set up but no
 * cache listener there, and with OpenTelemetry metrics on (an SDK meter provider).
 */
import { Injectable, Module, type DynamicModule } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { EventEmitterModule } from '@nestjs/event-emitter';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { Cacheable, CacheModule, CacheService, type CacheModuleOptions } from '../lib';
import { formatOps, interleave, ratio } from './measure';
import type { BenchContext } from './tiers';

type App = Awaited<ReturnType<typeof NestFactory.createApplicationContext>>;

@Injectable()
class Products {
  @Cacheable('product:{id}', { ttl: 600 })
  find(id: number): Promise<{ id: number; name: string }> {
    return Promise.resolve({ id, name: `Product ${id}` });
  }
}

interface Setup {
  name: string;
  options?: Partial<CacheModuleOptions>;
  imports?: DynamicModule[];
  /** Subscribes what this setup listens with. */
  listen?(cache: CacheService): void;
}

const KEYS = 1000;
const OTHER_LISTENER = 'a loader.error listener (not hit)';
const EMITTER_ONLY = 'EventEmitterModule, no cachekit listener';

async function appFor(setup: Setup): Promise<App> {
  @Module({
    imports: [...(setup.imports ?? []), CacheModule.forRoot({ ttl: 600, ...setup.options })],
    providers: [Products],
  })
  class EventsBenchModule {}
  const app = await NestFactory.createApplicationContext(EventsBenchModule, { logger: false });
  await app.init();
  setup.listen?.(app.get(CacheService));
  const cache = app.get(CacheService);
  const products = app.get(Products);
  for (let i = 0; i < KEYS; i++) {
    await cache.set(`k:${i}`, { id: i, name: `Product ${i}` });
    await products.find(i);
  }
  return app;
}

/** Runs the events scenario: its tables go to `ctx.log`, its targets to `ctx.check`. */
export async function eventsScenario(ctx: BenchContext): Promise<void> {
  ctx.log('## Observability: the hit path with and without listeners');
  ctx.log();
  let heard = 0;
  const setups: Setup[] = [
    { name: 'no listener' },
    {
      name: OTHER_LISTENER,
      listen: (cache) => cache.events.on('loader.error', () => heard++),
    },
    { name: 'a hit listener', listen: (cache) => cache.events.on('hit', () => heard++) },
    {
      name: EMITTER_ONLY,
      imports: [EventEmitterModule.forRoot({ wildcard: true })],
    },
    {
      name: 'metrics: true (OpenTelemetry SDK)',
      options: { metrics: { meterProvider: new MeterProvider() } },
    },
  ];
  const apps: App[] = [];
  try {
    for (const setup of setups) apps.push(await appFor(setup));
    const reads: Array<{ name: string; read: (app: App, i: number) => Promise<unknown> }> = [
      { name: 'get', read: (app, i) => app.get(CacheService).get(`k:${i % KEYS}`) },
      {
        name: 'wrap',
        read: (app, i) =>
          app.get(CacheService).wrap(`k:${i % KEYS}`, () => ({ id: -1, name: 'miss' }), 600),
      },
      { name: '@Cacheable', read: (app, i) => app.get(Products).find(i % KEYS) },
    ];
    const rows: string[][] = [];
    for (const { name, read } of reads) {
      const measured = await interleave(
        setups.map((setup, index) => {
          const app = apps[index];
          return {
            name: setup.name,
            run: async (ops: number) => {
              for (let i = 0; i < ops; i++) await read(app, i);
            },
          };
        }),
        { rounds: ctx.rounds, roundMs: ctx.roundMs },
      );
      const base = measured[0].opsPerSec;
      const of = (setup: string) => measured.find((m) => m.name === setup)?.opsPerSec ?? 0;
      const other = of(OTHER_LISTENER) / base;
      const emitter = of(EMITTER_ONLY) / base;
      rows.push([
        name,
        formatOps(base),
        ...measured.slice(1).map((m) => `${formatOps(m.opsPerSec)} (${ratio(m.opsPerSec, base)})`),
      ]);
      ctx.check(
        `${name} hit: a listener on another event ÷ no listener ≥ 0.9 (no cost when nobody listens)`,
        `${other.toFixed(2)}×`,
        other >= 0.9,
      );
      ctx.check(
        `${name} hit: EventEmitterModule without cachekit listeners ÷ no listener ≥ 0.9`,
        `${emitter.toFixed(2)}×`,
        emitter >= 0.9,
      );
    }
    if (heard === 0) throw new Error('events: the hit listener heard nothing');
    ctx.log('- memory provider, 1 k keys, one caller; each cell: hits/s (÷ no listener)');
    ctx.table(['read', ...setups.map((setup) => setup.name)], rows);
  } finally {
    for (const app of apps) await app.close();
  }
}
