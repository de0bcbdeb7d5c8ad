import { Redis } from 'ioredis';
import type { BusMessage } from '../../lib/bus/cache-bus';
import { RedisBus } from '../../lib/bus/redis-bus';
import { eventually } from '../support/eventually';
import { RedisServer } from '../support/redis-server';
import { uniqueNamespace } from '../support/redis';

/**
 * The bus on its own, over a real redis-server: what goes on the wire, what a listener hears,
 * and what happens to messages that cannot be published.
 */
describe('RedisBus', () => {
  let server: RedisServer;
  const closers: Array<() => Promise<unknown> | void> = [];

  beforeAll(async () => {
    server = await RedisServer.start();
  });
  afterAll(() => server.stop());
  afterEach(async () => {
    for (const close of closers.splice(0).reverse()) await close();
  });

  const client = (options: Record<string, unknown> = {}) => {
    const redis = new Redis(server.url, {
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      retryStrategy: () => 100,
      ...options,
    });
    redis.on('error', () => undefined);
    closers.push(() => redis.disconnect());
    return redis;
  };
  const ready = async (redis: Redis) => {
    if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
    return redis;
  };
  /** Cuts `redis`'s connection from the server side; it reconnects by its retry strategy. */
  const cut = async (redis: Redis) => {
    const id = (await redis.call('CLIENT', 'ID')) as number;
    const killer = await ready(client());
    await killer.call('CLIENT', 'KILL', 'ID', String(id));
    await eventually(async () => redis.status !== 'ready', 2000, 5);
  };
  const bus = async (namespace: string, publisher?: Redis, settings = {}) => {
    publisher ??= await ready(client());
    const created = new RedisBus(publisher, {
      namespace,
      heartbeatMs: 0,
      maxBuffered: 100,
      timeoutMs: 500,
      ...settings,
    });
    const heard: BusMessage[] = [];
    created.listen({ message: (m) => heard.push(m), deaf: () => undefined, live: () => undefined });
    closers.push(() => created.stop());
    await created.start();
    return { bus: created, heard };
  };
  /** A raw subscriber: every payload published on the namespace's channel. */
  const tap = async (namespace: string) => {
    const subscriber = client({ enableOfflineQueue: true });
    const payloads: Array<Record<string, unknown>> = [];
    subscriber.on('message', (_channel: string, payload: string) =>
      payloads.push(JSON.parse(payload) as Record<string, unknown>),
    );
    await subscriber.subscribe(`cachekit:bus:${namespace}`);
    return payloads;
  };

  it('coalesces the changes of one tick into one message; other buses hear it', async () => {
    const namespace = uniqueNamespace('bus');
    const a = await bus(namespace);
    const b = await bus(namespace);
    const wire = await tap(namespace);
    a.bus.publish({ keys: ['k1'] });
    a.bus.publish({ keys: ['k2', 'k1'] });
    a.bus.publish({ prefixes: ['p:'] });
    await eventually(async () => b.heard.length >= 2, 2000, 5);
    expect(b.heard).toEqual([
      { keys: ['k1', 'k2'], prefixes: undefined, clear: false },
      { keys: undefined, prefixes: ['p:'], clear: false },
    ]);
    expect(a.heard).toEqual([]);
    expect(wire).toHaveLength(2);
    expect(wire[0]).toEqual({ o: a.bus.origin, k: ['k1', 'k2'] });
  });

  it('sends a huge invalidation in parts', async () => {
    const namespace = uniqueNamespace('bus');
    const a = await bus(namespace);
    const b = await bus(namespace);
    const keys = Array.from({ length: 2500 }, (_, i) => `key:${i}`);
    a.bus.publish({ keys });
    await eventually(async () => b.heard.length === 3, 2000, 5);
    expect(b.heard.flatMap((m) => m.keys ?? [])).toEqual(keys);
  });

  it('keeps what it could not publish and sends it once Redis takes it', async () => {
    const namespace = uniqueNamespace('bus');
    const wire = await tap(namespace);
    const publisher = await ready(client({ retryStrategy: () => 600 }));
    const a = await bus(namespace, publisher);
    await cut(publisher);
    a.bus.publish({ keys: ['written while the publisher was down'] });
    await eventually(async () => a.bus.bufferedMessages === 1, 2000, 5);
    expect(wire).toEqual([]);
    await eventually(async () => wire.length === 1, 5000, 5);
    expect(wire[0].k).toEqual(['written while the publisher was down']);
    expect(a.bus.bufferedMessages).toBe(0);
  });

  it('turns an overflowing retry buffer into one "clear all"', async () => {
    const namespace = uniqueNamespace('bus');
    const wire = await tap(namespace);
    const publisher = await ready(client({ retryStrategy: () => 800 }));
    const a = await bus(namespace, publisher, { maxBuffered: 3 });
    await cut(publisher);
    for (let i = 0; i < 10; i++) {
      a.bus.publish({ keys: [`k${i}`] });
      await new Promise((resolve) => setImmediate(resolve));
    }
    await eventually(async () => a.bus.bufferedMessages > 0, 2000, 5);
    expect(a.bus.bufferedMessages).toBeLessThanOrEqual(3);
    await eventually(async () => wire.length > 0 && a.bus.bufferedMessages === 0, 5000, 5);
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Other instances are told to drop everything rather than miss a key.
    expect(wire.some((payload) => payload.c === 1)).toBe(true);
  });

  it('reads a malformed message as "drop everything"', async () => {
    const namespace = uniqueNamespace('bus');
    const b = await bus(namespace);
    const publisher = await ready(client());
    for (const payload of ['not json', '{"o":"x"}', '{"o":"x","k":[1]}', '[]', '{"o":"x","c":2}']) {
      await publisher.publish(`cachekit:bus:${namespace}`, payload);
    }
    await eventually(async () => b.heard.length === 5, 2000, 5);
    expect(b.heard.every((m) => m.clear === true)).toBe(true);
  });

  it('keeps namespaces apart: x and x.b never hear each other', async () => {
    const x = await bus('x');
    const xb = await bus('x.b');
    const other = await bus('x');
    x.bus.publish({ keys: ['k'] });
    await eventually(async () => other.heard.length === 1, 2000, 5);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(xb.heard).toEqual([]);
  });
});
