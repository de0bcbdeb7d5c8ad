/**
 * One process of the propagation benchmark (bench/tiers.ts):
 * `tiers-child.ts <cachekit|bentocache|raw> <redis url> <namespace>`. Driven over IPC by the parent: `prime` (read a key into L1),
 * `watch` (poll it until a version shows, a read every ~0.1 ms), `write`, `close`.
 * Times are process.hrtime in ns, the same monotonic clock in every process on the machine.
 */
import 'reflect-metadata';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type { TierClient } from './tiers';

type Command =
  | { op: 'prime'; key: string }
  | { op: 'watch'; key: string; version: number }
  | { op: 'write'; key: string; version: number }
  | { op: 'close' };

const [library, url, namespace] = process.argv.slice(2);
const WATCH_LIMIT_MS = 2000;
// Between two reads the watcher sleeps 0.1 ms (blocking, so it leaves the CPU to Redis and
// the writer instead of spinning), then lets one event-loop turn read the bus socket.
const pause = new Int32Array(new SharedArrayBuffer(4));
const POLL_PAUSE_MS = 0.1;

function send(message: object): void {
  process.send?.(message);
}

const versionOf = (entry: unknown) => (entry as { version?: number } | undefined)?.version ?? 0;

async function watch(client: TierClient, key: string, version: number): Promise<void> {
  const until = Date.now() + WATCH_LIMIT_MS;
  send({ op: 'watching' });
  for (;;) {
    const entry = await client.get(key);
    if (versionOf(entry) >= version) {
      send({ op: 'seen', at: process.hrtime.bigint().toString() });
      return;
    }
    if (Date.now() > until) {
      send({ op: 'seen', at: null });
      return;
    }
    Atomics.wait(pause, 0, 0, POLL_PAUSE_MS);
    await nextTurn();
  }
}

/**
 * The floor: a Map in front of Redis, a SET then a PUBLISH of the key per write, and a
 * subscriber deleting it from the Map. No envelope, no TTL, no guard against a read in flight.
 */
async function rawClient(): Promise<TierClient> {
  const commands = new Redis(url);
  const subscriber = new Redis(url);
  const l1 = new Map<string, unknown>();
  const channel = `${namespace}:bus`;
  subscriber.on('message', (_channel: string, key: string) => l1.delete(key));
  await subscriber.subscribe(channel);
  const get = async (key: string) => {
    if (l1.has(key)) return l1.get(key);
    const stored = await commands.get(`${namespace}:${key}`);
    const entry: unknown = stored === null ? undefined : JSON.parse(stored);
    if (entry !== undefined) l1.set(key, entry);
    return entry;
  };
  return {
    get,
    set: async (key, entry) => {
      await commands.set(`${namespace}:${key}`, JSON.stringify(entry), 'PX', 300_000);
      l1.set(key, entry);
      await commands.publish(channel, key);
    },
    wrap: async (key, load) => (await get(key)) ?? load(),
    close: async () => {
      await subscriber.quit();
      await commands.quit();
    },
  };
}

async function createClient(): Promise<TierClient> {
  if (library === 'raw') return rawClient();
  if (library === 'bentocache')
    return (await import('./peers/peers')).bentoCacheClient(url, namespace);
  const { cachekitClient, twoTierOptions } = await import('./tiers');
  return cachekitClient(twoTierOptions(url, namespace));
}

async function main(): Promise<void> {
  const client = await createClient();
  process.on('message', (command: Command) => {
    const run = async () => {
      switch (command.op) {
        case 'prime':
          await client.get(command.key);
          await client.get(command.key);
          send({ op: 'primed' });
          break;
        case 'watch':
          await watch(client, command.key, command.version);
          break;
        case 'write': {
          const at = process.hrtime.bigint().toString();
          await client.set(command.key, { id: 1, name: 'Product 1', version: command.version });
          send({ op: 'written', at });
          break;
        }
        case 'close':
          await client.close();
          process.disconnect?.();
          break;
      }
    };
    run().catch((error: unknown) => {
      console.error(error);
      process.exit(1);
    });
  });
  send({ op: 'ready' });
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
