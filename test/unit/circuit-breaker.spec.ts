import { type CircuitStateChange } from '../../lib';
import { CircuitBreaker } from '../../lib/tiers/circuit-breaker';

describe('CircuitBreaker', () => {
  let now: number;
  let changes: CircuitStateChange[];
  const make = (failureThreshold = 3, cooldownMs = 1000) => {
    const breaker = new CircuitBreaker({ failureThreshold, cooldownMs, now: () => now });
    breaker.onStateChange((change) => changes.push(change));
    return breaker;
  };

  beforeEach(() => {
    now = 1_000_000;
    changes = [];
  });

  it('starts closed with the documented defaults', () => {
    const breaker = new CircuitBreaker();
    expect(breaker.state).toBe('closed');
    expect(breaker.failureThreshold).toBe(5);
    expect(breaker.cooldownMs).toBe(5000);
  });

  it('opens after failureThreshold consecutive failures, not before', () => {
    const breaker = make(3);
    breaker.recordFailure('e1');
    breaker.recordFailure('e2');
    expect(breaker.state).toBe('closed');
    expect(breaker.failures).toBe(2);
    expect(breaker.recordFailure('e3')).toBe('open');
    expect(changes).toEqual([
      { from: 'closed', to: 'open', reason: '3 consecutive failures, last: e3' },
    ]);
  });

  it('a success resets the count: failures must be consecutive', () => {
    const breaker = make(3);
    breaker.recordFailure('e');
    breaker.recordFailure('e');
    breaker.recordSuccess();
    breaker.recordFailure('e');
    breaker.recordFailure('e');
    expect(breaker.state).toBe('closed');
  });

  it('refuses a probe until the cool-down has passed, then goes half-open once', () => {
    const breaker = make(1, 1000);
    breaker.recordFailure('down');
    expect(breaker.cooldownRemaining).toBe(1000);
    now += 999;
    expect(breaker.tryHalfOpen()).toBe(false);
    expect(breaker.cooldownRemaining).toBe(1);
    now += 1;
    expect(breaker.tryHalfOpen()).toBe(true);
    expect(breaker.state).toBe('half-open');
    expect(breaker.tryHalfOpen()).toBe(false);
  });

  it('half-open: a failure reopens and restarts the cool-down; close() recovers', () => {
    const breaker = make(1, 1000);
    breaker.recordFailure('down');
    now += 1000;
    breaker.tryHalfOpen();
    breaker.recordFailure('probe failed');
    expect(breaker.state).toBe('open');
    expect(breaker.cooldownRemaining).toBe(1000);
    now += 1000;
    expect(breaker.tryHalfOpen()).toBe(true);
    breaker.close('answers again');
    expect(breaker.state).toBe('closed');
    expect(breaker.failures).toBe(0);
    expect(changes.map((c) => `${c.from}>${c.to}`)).toEqual([
      'closed>open',
      'open>half-open',
      'half-open>open',
      'open>half-open',
      'half-open>closed',
    ]);
  });

  it('ignores outcomes reported with a stale epoch (calls started before a transition)', () => {
    const breaker = make(2, 1000);
    const before = breaker.epoch;
    breaker.recordFailure('a');
    breaker.recordFailure('b');
    expect(breaker.state).toBe('open');
    now += 1000;
    breaker.tryHalfOpen();
    // A late failure from a call made while closed must not reopen the half-open circuit...
    expect(breaker.recordFailure('late', before)).toBe('half-open');
    breaker.close('ok');
    // ...nor count against the new closed period.
    breaker.recordFailure('late', before);
    expect(breaker.failures).toBe(0);
    breaker.recordFailure('fresh', breaker.epoch);
    expect(breaker.failures).toBe(1);
  });

  it('a success does not close an open or half-open circuit by itself', () => {
    const breaker = make(1, 0);
    breaker.recordFailure('x');
    breaker.recordSuccess();
    expect(breaker.state).toBe('open');
    breaker.tryHalfOpen();
    breaker.recordSuccess();
    expect(breaker.state).toBe('half-open');
  });

  it('open() forces the circuit open and restarts the cool-down when already open', () => {
    const breaker = make(5, 1000);
    breaker.open('unreachable at startup');
    expect(breaker.state).toBe('open');
    now += 600;
    breaker.open('again');
    expect(breaker.cooldownRemaining).toBe(1000);
    expect(changes).toHaveLength(1);
  });

  it('survives a throwing listener and lets listeners unsubscribe', () => {
    const breaker = make(1);
    const seen: string[] = [];
    breaker.onStateChange(() => {
      throw new Error('bad listener');
    });
    const off = breaker.onStateChange((c) => seen.push(c.to));
    breaker.recordFailure('x');
    off();
    breaker.close('y');
    expect(seen).toEqual(['open']);
    expect(breaker.state).toBe('closed');
  });

  it.each([0, 1.5, -1, NaN])('rejects failureThreshold %p', (failureThreshold) => {
    expect(() => new CircuitBreaker({ failureThreshold })).toThrow(/failureThreshold/);
  });
});
