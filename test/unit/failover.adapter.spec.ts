import { Logger } from '@nestjs/common';
import {
  FailoverCacheAdapter,
  MemoryCacheAdapter,
  type CircuitStateChange,
  type FailoverCacheAdapterOptions,
} from '../../lib';
import { FlakyAdapter } from '../support/flaky-adapter';

describe('FailoverCacheAdapter', () => {
  let primary: FlakyAdapter;
  let fallback: MemoryCacheAdapter;
  let adapter: FailoverCacheAdapter;
  let lines: Array<{ level: string; message: string }>;
  let changes: CircuitStateChange[];

  const make = (options: FailoverCacheAdapterOptions = {}) => {
    adapter = new FailoverCacheAdapter(primary, fallback, {
      failureThreshold: 3,
      cooldown: 1,
      timeout: 0.1,
      ...options,
    });
    adapter.onStateChange((change) => changes.push(change));
    return adapter;
  };
  const warnings = () => lines.filter((l) => l.level === 'warn').map((l) => l.message);
  /** Lets background work (probe, reconciliation) and `ms` of fake time run. */
  const advance = (ms = 0) => jest.advanceTimersByTimeAsync(ms);
  const openCircuit = async () => {
    const mode = primary.mode;
    primary.mode = 'down';
    for (let i = 0; i < 3; i++) await adapter.get('probe-failure');
    primary.mode = mode;
    expect(adapter.state).toBe('open');
  };

  beforeEach(() => {
    jest.useFakeTimers();
    primary = new FlakyAdapter();
    fallback = new MemoryCacheAdapter({ sweepInterval: 0 });
    lines = [];
    changes = [];
    for (const level of ['log', 'warn', 'error', 'debug'] as const) {
      jest.spyOn(Logger.prototype, level).mockImplementation((...args: unknown[]) => {
        lines.push({ level, message: String(args[0]) });
      });
    }
  });

  afterEach(async () => {
    await adapter?.onApplicationShutdown();
    jest.restoreAllMocks();
    jest.useRealTimers();
  });

  describe('the PyFly CacheManager semantics (primary healthy)', () => {
    beforeEach(() => make());

    it('get: the primary answers when it has the key', async () => {
      await primary.store.set('user:123', 'from-primary', 0);
      await fallback.set('user:123', 'from-fallback', 0);
      expect(await adapter.get('user:123')).toBe('from-primary');
      expect(adapter.stats.primaryHits).toBe(1);
    });

    it('get: a primary miss also checks the fallback', async () => {
      await fallback.set('user:123', 'from-fallback', 0);
      expect(await adapter.get('user:123')).toBe('from-fallback');
      expect(await adapter.get('nope')).toBeUndefined();
      expect(adapter.stats).toMatchObject({ fallbackHits: 1, misses: 1 });
    });

    it('set writes to both tiers (the fallback stays warm)', async () => {
      await adapter.set('k', { v: 1 }, 60);
      expect(await primary.store.get('k')).toEqual({ v: 1 });
      expect(await fallback.get('k')).toEqual({ v: 1 });
    });

    it('delete evicts from both and is true if either had the key', async () => {
      await primary.store.set('only-primary', 1, 0);
      await fallback.set('only-fallback', 1, 0);
      expect(await adapter.delete('only-primary')).toBe(true);
      expect(await adapter.delete('only-fallback')).toBe(true);
      expect(await adapter.delete('neither')).toBe(false);
      expect(await primary.store.has('only-primary')).toBe(false);
      expect(await fallback.has('only-fallback')).toBe(false);
    });

    it('has is true if either tier has the key', async () => {
      await fallback.set('f', 1, 0);
      await primary.store.set('p', 1, 0);
      expect(await adapter.has('f')).toBe(true);
      expect(await adapter.has('p')).toBe(true);
      expect(await adapter.has('none')).toBe(false);
    });

    it('clear and deleteByPrefix hit both tiers', async () => {
      await adapter.set('a:1', 1, 0);
      await adapter.set('a:2', 2, 0);
      await adapter.set('b:1', 3, 0);
      expect(await adapter.deleteByPrefix('a:')).toBe(2);
      expect(await primary.store.has('a:1')).toBe(false);
      expect(await fallback.has('a:2')).toBe(false);
      await adapter.clear();
      expect(primary.store.size + fallback.size).toBe(0);
    });
  });

  describe('when the primary fails', () => {
    it("get falls back and logs the seed's WARN", async () => {
      make();
      await fallback.set('user:123', 'alice', 0);
      primary.mode = 'down';
      expect(await adapter.get('user:123')).toBe('alice');
      expect(warnings()).toEqual([
        'Primary cache failed for GET "user:123", falling back: connect ECONNREFUSED',
      ]);
    });

    it('set writes the fallback only and logs', async () => {
      make();
      primary.mode = 'down';
      await adapter.set('user:123', 'alice', 0);
      expect(await fallback.get('user:123')).toBe('alice');
      expect(warnings()).toEqual([
        'Primary cache failed for SET "user:123", using fallback only: connect ECONNREFUSED',
      ]);
    });

    it('never throws for any operation', async () => {
      make();
      primary.mode = 'down';
      await expect(adapter.has('k')).resolves.toBe(false);
      await expect(adapter.delete('k')).resolves.toBe(false);
      await expect(adapter.deleteByPrefix('k')).resolves.toBe(0);
      await expect(adapter.clear()).resolves.toBeUndefined();
    });

    it('rate-limits the WARN: an outage costs one line per operation, not one per call', async () => {
      make({ failureThreshold: 10_000 });
      primary.mode = 'down';
      for (let i = 0; i < 500; i++) await adapter.get(`k${i}`);
      for (let i = 0; i < 500; i++) await adapter.set(`k${i}`, i, 0);
      expect(warnings()).toHaveLength(2);
      await advance(10_001);
      await adapter.get('again');
      expect(warnings()[2]).toMatch(/GET "again".*\(499 similar messages suppressed\)/);
    });

    it('answers from the fallback after `timeout` when the primary hangs (fail fast)', async () => {
      make({ timeout: 0.1 });
      await fallback.set('k', 'fallback', 0);
      primary.mode = 'frozen';
      let result: unknown = 'pending';
      void adapter.get('k').then((v) => (result = v));
      await advance(99);
      expect(result).toBe('pending');
      await advance(1);
      expect(result).toBe('fallback');
      expect(warnings()[0]).toContain('no answer within 100 ms');
    });
  });

  describe('circuit breaker', () => {
    it('opens after failureThreshold consecutive failures, then skips the primary', async () => {
      make({ failureThreshold: 3 });
      await openCircuit();
      primary.calls.length = 0;
      await adapter.set('k', 1, 0);
      expect(await adapter.get('k')).toBe(1);
      await adapter.has('k');
      await adapter.delete('k');
      await adapter.clear();
      await adapter.deleteByPrefix('k');
      expect(primary.calls).toEqual([]);
      expect(adapter.stats.primarySkipped).toBe(6);
      expect(changes).toEqual([expect.objectContaining({ from: 'closed', to: 'open' })]);
      expect(warnings()).toContain(
        'Primary cache circuit opened (3 consecutive failures, last: connect ECONNREFUSED); ' +
          'serving from the fallback only, next probe in 1 s',
      );
    });

    it('probes after the cool-down and returns to the primary by itself', async () => {
      make();
      await openCircuit();
      await advance(999);
      expect(primary.calls.filter((c) => c === 'ping')).toHaveLength(0);
      await advance(1);
      expect(primary.calls).toContain('ping');
      expect(adapter.state).toBe('closed');
      expect(changes.map((c) => c.to)).toEqual(['open', 'half-open', 'closed']);
      expect(lines).toContainEqual({
        level: 'log',
        message:
          'Primary cache circuit closed: primary answers again; reads and writes use it again',
      });
      await primary.store.set('k', 'primary', 0);
      expect(await adapter.get('k')).toBe('primary');
    });

    it('stays open while probes fail, probing once per cool-down', async () => {
      make();
      primary.mode = 'down';
      await openCircuit();
      primary.mode = 'down';
      primary.calls.length = 0;
      await advance(3000);
      expect(primary.calls).toEqual(['ping', 'ping', 'ping']);
      expect(adapter.state).toBe('open');
      primary.mode = 'up';
      await advance(1000);
      expect(adapter.state).toBe('closed');
    });

    it('ignores a late success from a call made before the circuit opened', async () => {
      make({ failureThreshold: 1, timeout: 0 });
      primary.mode = 'frozen';
      const late = adapter.get('slow');
      primary.mode = 'down';
      await adapter.get('fails');
      expect(adapter.state).toBe('open');
      await primary.thaw();
      await late;
      expect(adapter.state).toBe('open');
    });
  });

  describe('no stale reads after recovery', () => {
    it('deletes keys changed during a freeze from the primary before reads return to it', async () => {
      make({ failureThreshold: 2, timeout: 0.1 });
      await adapter.set('a', 'v1', 0);
      await adapter.set('b', 'v1', 0);
      await adapter.set('c', 'v1', 0);
      primary.mode = 'frozen';
      // Sent to the frozen primary: they time out here but run when it thaws.
      const writes = [adapter.set('a', 'v2', 0), adapter.set('c', 'v2', 0)];
      await advance(100);
      await Promise.all(writes);
      expect(adapter.state).toBe('open');
      // While open: the fallback only.
      await adapter.set('a', 'v3', 0);
      await adapter.delete('b');
      expect(await adapter.get('a')).toBe('v3');
      expect(await adapter.get('b')).toBeUndefined();
      // Redis thaws and runs the buffered, now stale, writes.
      await primary.thaw();
      expect(await primary.store.get('a')).toBe('v2');
      expect(await primary.store.get('b')).toBe('v1');
      await advance(1000);
      expect(adapter.state).toBe('closed');
      expect(await primary.store.has('a')).toBe(false);
      expect(await primary.store.has('b')).toBe(false);
      expect(await primary.store.has('c')).toBe(false);
      expect(await adapter.get('a')).toBe('v3');
      expect(await adapter.get('b')).toBeUndefined();
      expect(await adapter.get('c')).toBe('v2');
      expect(adapter.stats.reconciled).toBe(3);
      expect(lines.map((l) => l.message)).toContain(
        'Primary cache circuit closed: primary answers again; 3 keys changed during the ' +
          'outage were deleted from it first; reads and writes use it again',
      );
    });

    it('a key whose write failed below the threshold is read from the fallback until reconciled', async () => {
      make({ failureThreshold: 100, timeout: 0.1 });
      await adapter.set('k', 'old', 0);
      primary.mode = 'frozen';
      const write = adapter.set('k', 'new', 0);
      await advance(100);
      await write;
      expect(adapter.state).toBe('closed');
      await primary.thaw();
      // The primary now holds 'new' but could as well hold 'old': the key is not trusted.
      await primary.store.set('k', 'old', 0);
      primary.mode = 'down';
      expect(await adapter.get('k')).toBe('new');
      expect(primary.calls.filter((c) => c === 'get k')).toHaveLength(0);
      primary.mode = 'up';
      await advance(1000);
      expect(adapter.stats.pendingReconciliation).toBe(0);
      expect(await primary.store.has('k')).toBe(false);
      expect(await adapter.get('k')).toBe('new');
    });

    it('waits for writes sent before the circuit opened before trusting the primary again', async () => {
      make({ timeout: 0 });
      await adapter.set('a', 'v1', 0);
      let failWrite!: (error: Error) => void;
      primary.set = () => new Promise<void>((_resolve, reject) => (failWrite = reject));
      const write = adapter.set('a', 'v2', 0);
      await openCircuit();
      await advance(1000);
      // The probe answered, but the write to 'a' has not settled: the primary may be stale.
      expect(adapter.state).toBe('half-open');
      expect(await adapter.get('a')).toBe('v2');
      failWrite(new Error('Connection is closed.'));
      await write;
      await advance(0);
      expect(adapter.state).toBe('closed');
      expect(await primary.store.has('a')).toBe(false);
      expect(await adapter.get('a')).toBe('v2');
    });

    it('replays deleteByPrefix and clear made during the outage', async () => {
      make();
      await adapter.set('user:1', 1, 0);
      await adapter.set('user:2', 2, 0);
      await adapter.set('order:1', 3, 0);
      await openCircuit();
      await adapter.deleteByPrefix('user:');
      await advance(1000);
      expect(adapter.state).toBe('closed');
      expect(await primary.store.has('user:1')).toBe(false);
      expect(await primary.store.get('order:1')).toBe(3);

      await openCircuit();
      await adapter.clear();
      await advance(1000);
      expect(primary.calls).toContain('clear');
      expect(await primary.store.has('order:1')).toBe(false);
    });

    it('clears the namespace on recovery when more keys changed than it tracks', async () => {
      make({ maxTrackedKeys: 3 });
      await primary.store.set('untouched', 'stale?', 0);
      await openCircuit();
      for (let i = 0; i < 5; i++) await adapter.set(`k${i}`, i, 0);
      expect(warnings().join('\n')).toContain('more than 3 keys changed while it was unavailable');
      // Every key is now untrusted, even one not written during the outage.
      await fallback.set('untouched', 'fallback', 0);
      expect(await adapter.get('untouched')).toBe('fallback');
      await advance(1000);
      expect(adapter.state).toBe('closed');
      expect(primary.calls).toContain('clear');
      expect(primary.store.size).toBe(0);
    });

    it('keeps the circuit open when reconciliation fails, and retries', async () => {
      make();
      await openCircuit();
      await adapter.set('k', 'new', 0);
      const realDelete = primary.delete.bind(primary);
      let failDeletes = true;
      primary.delete = (key: string) =>
        failDeletes ? Promise.reject(new Error('READONLY')) : realDelete(key);
      await advance(1000);
      expect(adapter.state).toBe('open');
      expect(warnings().join('\n')).toContain(
        'Primary cache still unavailable (probe failed: READONLY)',
      );
      failDeletes = false;
      await advance(1000);
      expect(adapter.state).toBe('closed');
    });
  });

  describe('lifecycle', () => {
    it('starts and stops both tiers', async () => {
      make();
      const calls: string[] = [];
      primary.onModuleInit = () => void calls.push('primary:init');
      primary.onApplicationShutdown = () => void calls.push('primary:stop');
      jest
        .spyOn(fallback, 'onModuleInit')
        .mockImplementation(() => void calls.push('fallback:init'));
      jest
        .spyOn(fallback, 'onApplicationShutdown')
        .mockImplementation(() => void calls.push('fallback:stop'));
      await adapter.onModuleInit();
      await adapter.onApplicationShutdown();
      expect(calls.sort()).toEqual([
        'fallback:init',
        'fallback:stop',
        'primary:init',
        'primary:stop',
      ]);
    });

    it('boots with the primary down: circuit open at once, fallback serving, no throw', async () => {
      make();
      primary.mode = 'down';
      await expect(adapter.onModuleInit()).resolves.toBeUndefined();
      expect(adapter.state).toBe('open');
      expect(warnings()[0]).toBe(
        'Primary cache circuit opened (unreachable at startup: connect ECONNREFUSED); ' +
          'serving from the fallback only, next probe in 1 s',
      );
      await adapter.set('k', 1, 0);
      expect(await adapter.get('k')).toBe(1);
      primary.mode = 'up';
      await advance(1000);
      expect(adapter.state).toBe('closed');
    });

    it('lets a strict primary fail startup', async () => {
      make();
      primary.onModuleInit = () => Promise.reject(new Error('strict: cannot reach Redis'));
      await expect(adapter.onModuleInit()).rejects.toThrow('strict: cannot reach Redis');
    });

    it('stops probing after shutdown', async () => {
      make();
      await openCircuit();
      await adapter.onApplicationShutdown();
      primary.calls.length = 0;
      await advance(5000);
      expect(primary.calls).toEqual([]);
      expect(jest.getTimerCount()).toBe(0);
    });

    it('probes with has() when the primary has no ping()', async () => {
      const bare = new MemoryCacheAdapter({ sweepInterval: 0 });
      const has = jest.spyOn(bare, 'has');
      adapter = new FailoverCacheAdapter(bare, fallback);
      await adapter.onModuleInit();
      expect(has).toHaveBeenCalledWith('__cachekit:probe__');
    });
  });
});
