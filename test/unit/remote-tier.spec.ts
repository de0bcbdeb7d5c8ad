import { Logger } from '@nestjs/common';
import { MemoryCacheAdapter } from '../../lib/adapters/memory.adapter';
import type { CircuitStateChange } from '../../lib/tiers/circuit-breaker';
import { FailoverTier } from '../../lib/tiers/failover-tier';
import { RemoteTier } from '../../lib/tiers/remote-tier';
import { FlakyAdapter } from '../support/flaky-adapter';

/**
 * The remote tier and the failover policy on their own (issue 11, item 5), on fake timers:
 * timeout, circuit breaker, outage journal and recovery. The store is a fault-injecting fake
 * (down: refuses at once; frozen: hangs, then runs what it buffered in order), the faults a
 * real server produces only with a process freeze.
 */
describe('RemoteTier', () => {
  let store: FlakyAdapter;
  let tier: RemoteTier;
  let changes: CircuitStateChange[];

  const make = () => {
    tier = new RemoteTier(store, {
      failureThreshold: 2,
      cooldownMs: 1_000,
      timeoutMs: 100,
      maxTrackedKeys: 100,
    });
    tier.onStateChange((change) => changes.push(change));
    return tier;
  };
  const advance = (ms = 0) => jest.advanceTimersByTimeAsync(ms);

  beforeEach(() => {
    jest.useFakeTimers();
    for (const level of ['log', 'warn', 'error', 'debug'] as const) {
      jest.spyOn(Logger.prototype, level).mockImplementation(() => undefined);
    }
    store = new FlakyAdapter();
    changes = [];
    make();
  });

  afterEach(() => {
    tier.stop();
    jest.restoreAllMocks();
    jest.useRealTimers();
  });

  it('answers from the store while it is healthy', async () => {
    await tier.set('k', 'v', 60);
    expect(await tier.get('k')).toBe('v');
    expect(await tier.has('k')).toBe(true);
    expect(await tier.delete('k')).toBe(true);
    expect(tier.counters).toMatchObject({ primaryHits: 1, primaryFailures: 0 });
  });

  it('a call that outlives the timeout fails fast, answered as nothing', async () => {
    store.mode = 'frozen';
    const read = tier.get('k');
    await advance(99);
    let settled = false;
    void read.then(() => (settled = true));
    await advance(0);
    expect(settled).toBe(false);
    await advance(1);
    await expect(read).resolves.toBeUndefined();
    expect(tier.counters.primaryFailures).toBe(1);
  });

  it('opens after failureThreshold failures, then skips the store entirely', async () => {
    store.mode = 'down';
    await tier.get('a');
    expect(tier.state).toBe('closed');
    await tier.get('b');
    expect(tier.state).toBe('open');
    store.calls.length = 0;
    expect(await tier.get('c')).toBeUndefined();
    expect(await tier.deleteByPrefix('p')).toBeUndefined();
    expect(store.calls).toEqual([]);
    expect(tier.counters.primarySkipped).toBe(2);
  });

  it('probes after the cool-down, replays the journal as deletes, then closes', async () => {
    await store.store.set('k', 'old', 0);
    store.mode = 'down';
    await tier.get('a');
    await tier.get('b');
    expect(tier.state).toBe('open');
    // Changed while open: journaled, not sent.
    await tier.set('k', 'new', 60);
    expect(tier.pendingReconciliation).toBe(1);
    store.mode = 'up';
    store.calls.length = 0;
    await advance(999);
    expect(store.calls).toEqual([]);
    await advance(1);
    await advance(0);
    expect(store.calls).toEqual(['ping', 'delete k']);
    expect(tier.state).toBe('closed');
    expect(changes.map((c) => c.to)).toEqual(['open', 'half-open', 'closed']);
    expect(tier.counters.reconciled).toBe(1);
    // Deleted, not the stale 'old' (nor the write it skipped).
    expect(await tier.get('k')).toBeUndefined();
  });

  it('a failed probe reopens the circuit and tries again a cool-down later', async () => {
    store.mode = 'down';
    await tier.get('a');
    await tier.get('b');
    await advance(1_000);
    expect(tier.state).toBe('open');
    expect(changes.map((c) => c.to)).toEqual(['open', 'half-open', 'open']);
    store.mode = 'up';
    await advance(1_000);
    expect(tier.state).toBe('closed');
  });

  it('a write that fails below the threshold journals its key: reads skip it until reconciled', async () => {
    store.mode = 'down';
    await tier.set('k', 'v', 60);
    expect(tier.state).toBe('closed');
    store.mode = 'up';
    store.calls.length = 0;
    // Untrusted: the store may still apply the failed write later.
    expect(await tier.get('k')).toBeUndefined();
    expect(store.calls).toEqual([]);
    await advance(0);
    expect(store.calls).toEqual(['delete k']);
    expect(tier.pendingReconciliation).toBe(0);
    await store.store.set('k', 'fresh', 0);
    expect(await tier.get('k')).toBe('fresh');
  });

  it('stop ends background work: no probe after it', async () => {
    store.mode = 'down';
    await tier.get('a');
    await tier.get('b');
    tier.stop();
    store.calls.length = 0;
    await advance(5_000);
    expect(store.calls).toEqual([]);
  });
});

describe('FailoverTier (the failover policy, once)', () => {
  let store: FlakyAdapter;
  let fallback: MemoryCacheAdapter;
  let remote: RemoteTier;
  let failover: FailoverTier;

  beforeEach(() => {
    jest.useFakeTimers();
    jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined);
    store = new FlakyAdapter();
    fallback = new MemoryCacheAdapter({ sweepInterval: 0 });
    remote = new RemoteTier(store, {
      failureThreshold: 5,
      cooldownMs: 1_000,
      timeoutMs: 100,
      maxTrackedKeys: 100,
    });
    failover = new FailoverTier(remote, fallback);
  });

  afterEach(() => {
    remote.stop();
    jest.restoreAllMocks();
    jest.useRealTimers();
  });

  it('reads the remote tier first, then the fallback on a miss or a failure', async () => {
    await store.store.set('both', 'remote', 0);
    await fallback.set('both', 'fallback', 0);
    await fallback.set('only-fallback', 'fallback', 0);
    expect(await failover.get('both')).toBe('remote');
    expect(await failover.get('only-fallback')).toBe('fallback');
    store.mode = 'down';
    expect(await failover.get('both')).toBe('fallback');
    expect(await failover.get('none')).toBeUndefined();
    expect({ fallbackHits: failover.fallbackHits, misses: failover.misses }).toEqual({
      fallbackHits: 2,
      misses: 1,
    });
  });

  it('writes the fallback, then the remote tier; a remote failure never rejects', async () => {
    store.mode = 'down';
    await expect(failover.set('k', 'v', 60)).resolves.toBeUndefined();
    expect(await fallback.get('k')).toBe('v');
    expect(remote.pendingReconciliation).toBe(1);
    store.mode = 'up';
    await failover.set('j', 'w', 60);
    expect(store.calls.slice(-1)).toEqual(['set j']);
    expect(await store.store.get('j')).toBe('w');
  });

  it('delete, clear and deleteByPrefix hit both; counts from either', async () => {
    await store.store.set('p:1', 1, 0);
    await fallback.set('p:1', 1, 0);
    await fallback.set('p:2', 2, 0);
    expect(await failover.deleteByPrefix('p:')).toBe(2);
    await fallback.set('k', 1, 0);
    expect(await failover.delete('k')).toBe(true);
    await store.store.set('x', 1, 0);
    await failover.clear();
    expect(await store.store.has('x')).toBe(false);
    store.mode = 'down';
    await fallback.set('q:1', 1, 0);
    // The remote count is unknown: the fallback's.
    expect(await failover.deleteByPrefix('q:')).toBe(1);
  });
});
