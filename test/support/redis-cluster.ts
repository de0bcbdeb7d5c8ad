import { spawnSync } from 'node:child_process';
import { RedisServer } from './redis-server';

/**
 * A real Redis Cluster on loopback: `size` masters (no replicas) started as separate
 * `redis-server` processes on free ports, joined with `redis-cli --cluster create`, ready when
 * every node reports `cluster_state:ok`.
 */
export class RedisCluster {
  private constructor(readonly nodes: RedisServer[]) {}

  static async start(size = 3): Promise<RedisCluster> {
    const nodes: RedisServer[] = [];
    try {
      for (let i = 0; i < size; i++) {
        nodes.push(
          await RedisServer.start({
            args: ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf'],
          }),
        );
      }
      const created = spawnSync(
        'redis-cli',
        [
          '--cluster',
          'create',
          ...nodes.map((node) => `127.0.0.1:${node.port}`),
          '--cluster-replicas',
          '0',
          '--cluster-yes',
        ],
        { encoding: 'utf8', timeout: 30_000 },
      );
      if (created.status !== 0) {
        throw new Error(`redis-cli --cluster create failed: ${created.stdout}${created.stderr}`);
      }
      const cluster = new RedisCluster(nodes);
      await cluster.waitUntilReady();
      return cluster;
    } catch (error) {
      await Promise.all(nodes.map((node) => node.stop()));
      throw error;
    }
  }

  /** Seed nodes for `new Cluster(...)` / the module's `redis.cluster` option. */
  get seeds(): Array<{ host: string; port: number }> {
    return this.nodes.map((node) => ({ host: '127.0.0.1', port: node.port }));
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((node) => node.stop()));
  }

  private async waitUntilReady(): Promise<void> {
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      const states = await Promise.all(
        this.nodes.map((node) => node.command('CLUSTER', 'INFO').catch(() => '')),
      );
      if (states.every((info) => info.includes('cluster_state:ok'))) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error('the Redis cluster did not reach cluster_state:ok within 20 s');
  }
}
