import { MemoryCacheAdapter, type CacheAdapter } from '../../lib';

/**
 * A primary for unit tests of the failover layer: a memory store that can be `up`, `down`
 * (every call rejects at once, like a refused connection) or `frozen` (calls hang; `thaw()`
 * then runs them in order, as a SIGSTOPped Redis runs the commands buffered on its socket).
 */
export class FlakyAdapter implements CacheAdapter {
  readonly store = new MemoryCacheAdapter({ sweepInterval: 0 });
  mode: 'up' | 'down' | 'frozen' = 'up';
  /** Every call, as `op key`. */
  readonly calls: string[] = [];
  private readonly buffered: Array<() => Promise<void>> = [];
  /** Lifecycle hooks a test may set. */
  onModuleInit?: () => Promise<void> | void;
  onApplicationShutdown?: (signal?: string) => Promise<void> | void;

  get<T = unknown>(key: string): Promise<T | undefined> {
    return this.run(`get ${key}`, () => this.store.get<T>(key));
  }
  set(key: string, value: unknown, ttl: number): Promise<void> {
    return this.run(`set ${key}`, () => this.store.set(key, value, ttl));
  }
  delete(key: string): Promise<boolean> {
    return this.run(`delete ${key}`, () => this.store.delete(key));
  }
  has(key: string): Promise<boolean> {
    return this.run(`has ${key}`, () => this.store.has(key));
  }
  clear(): Promise<void> {
    return this.run('clear', () => this.store.clear());
  }
  deleteByPrefix(prefix: string): Promise<number> {
    return this.run(`deleteByPrefix ${prefix}`, () => this.store.deleteByPrefix(prefix));
  }
  ping(): Promise<string> {
    return this.run('ping', () => Promise.resolve('PONG'));
  }

  /** Answers again, first running (in order) whatever was sent while frozen. */
  async thaw(): Promise<void> {
    this.mode = 'up';
    for (const run of this.buffered.splice(0)) await run();
  }

  /** Calls made since the last `reset`, excluding probes. */
  dataCalls(): string[] {
    return this.calls.filter((c) => c !== 'ping');
  }

  private run<T>(label: string, op: () => Promise<T>): Promise<T> {
    this.calls.push(label);
    if (this.mode === 'down') return Promise.reject(new Error('connect ECONNREFUSED'));
    if (this.mode === 'frozen') {
      return new Promise<T>((resolve, reject) => {
        this.buffered.push(() => op().then(resolve, reject));
      });
    }
    return op();
  }
}
