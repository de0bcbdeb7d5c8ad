import type { INestApplication, Provider } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  CacheAdapter,
  CacheModule,
  CacheService,
  type CacheModuleOptions,
  type CircuitState,
  type FailoverCacheAdapter,
  type RedisCacheAdapter,
} from '../../lib';
import { CapturingLogger } from './logs';

/** One Nest application with the cache module, its adapter and a logger that keeps every line. */
export interface BootedApp {
  app: INestApplication;
  cache: CacheService;
  adapter: CacheAdapter;
  logger: CapturingLogger;
}

export async function boot(
  options: CacheModuleOptions,
  logger = new CapturingLogger(),
  providers: Provider[] = [],
): Promise<BootedApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [CacheModule.forRoot(options)],
    providers,
  }).compile();
  const app = moduleRef.createNestApplication({ logger });
  await app.init();
  return { app, cache: app.get(CacheService), adapter: app.get(CacheAdapter), logger };
}

/** The Redis adapter behind a failover adapter. */
export function redisOf(adapter: FailoverCacheAdapter): RedisCacheAdapter {
  return adapter.primary as RedisCacheAdapter;
}

/** A sleep that can be cancelled, so a lost race leaves no timer behind. */
export function timer(ms: number): { promise: Promise<'timer'>; cancel(): void } {
  let handle: NodeJS.Timeout | undefined;
  const promise = new Promise<'timer'>((resolve) => {
    handle = setTimeout(() => resolve('timer'), ms);
  });
  return { promise, cancel: () => clearTimeout(handle) };
}

/** Races `work` against a timer of `ms`: resolves `{ value }` if the work won, `'timer'` if not. */
export async function raceTimer<T>(work: Promise<T>, ms: number): Promise<{ value: T } | 'timer'> {
  const t = timer(ms);
  try {
    return await Promise.race([work.then((value) => ({ value })), t.promise]);
  } finally {
    t.cancel();
  }
}

/** Resolves when the failover circuit reaches `state`; rejects after `ms` saying where it is. */
export function waitForState(
  adapter: FailoverCacheAdapter,
  state: CircuitState,
  ms = 10_000,
): Promise<void> {
  if (adapter.state === state) return Promise.resolve();
  return new Promise<void>((resolve, reject) => {
    const timeout = setTimeout(() => {
      off();
      reject(new Error(`circuit still '${adapter.state}' after ${ms} ms, expected '${state}'`));
    }, ms);
    const off = adapter.onStateChange(({ to }) => {
      if (to !== state) return;
      clearTimeout(timeout);
      off();
      resolve();
    });
  });
}

/** Polls `condition` every 10 ms until it holds; rejects after `ms`. */
export async function until(
  condition: () => boolean,
  ms = 5000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
