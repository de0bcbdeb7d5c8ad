import { Injectable } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { Redis } from 'ioredis';
import { CacheModule } from '../../lib';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

// Defect: the connections named caches share are opened while Nest builds the providers
// (NamedStacks.create, in a factory), not at init. When the application then fails to build
// (any other provider failing: the everyday "Nest can't resolve dependencies of ..."), no hook
// ever runs and those connections stay open, reconnecting forever (a Jest run that never exits,
// sockets leaked by a process that keeps going). The module's own cache connects at init only.
@Injectable()
class Broken {
  constructor() {
    throw new Error('a provider that fails to build');
  }
}

describe('a failed build leaves no connection open', () => {
  let server: RedisServer;
  let raw: Redis;
  beforeAll(async () => {
    server = await RedisServer.start();
    raw = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });
  afterAll(async () => {
    raw.disconnect();
    await server.stop();
  });

  const others = async (): Promise<number> =>
    String(await raw.client('LIST'))
      .split('\n')
      .filter((line) => line.trim() !== '').length - 1;

  it.each([
    ['without named caches', {}],
    ['with named caches', { caches: { sessions: {} } }],
  ])('%s', async (_label, extra) => {
    const error = await Test.createTestingModule({
      imports: [
        CacheModule.forRoot({
          provider: 'redis',
          redis: { url: server.url },
          namespace: uniqueNamespace('leak'),
          ...extra,
        }),
      ],
      providers: [Broken],
    })
      .compile()
      .then(
        () => undefined,
        (e: unknown) => e as Error,
      );
    expect(error?.message).toMatch(/fails to build/);
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(await others()).toBe(0);
  });
});
