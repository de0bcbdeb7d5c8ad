import { Logger } from '@nestjs/common';
import { MemoryCacheAdapter } from '../../lib/adapters/memory.adapter';
import type { CacheStack, CacheStackOptions } from '../../lib/core/cache-stack';
import { createCacheStack } from '../../lib/core/create-stack';
import { FlakyAdapter } from '../support/flaky-adapter';
import { deferred } from '../support/deferred';

const OPTIONS: CacheStackOptions = { enabled: true, ttl: 60, namespace: 'test' };
type Shape = 'memory' | 'remote';
function stackOf(shape: Shape, options: Partial<CacheStackOptions> = {}): CacheStack {
  const store =
    shape === 'memory' ? new MemoryCacheAdapter({ sweepInterval: 0 }) : new FlakyAdapter();
  return createCacheStack(store, { ...OPTIONS, ...options });
}
const tick = () => new Promise((resolve) => setImmediate(resolve));
const settle = async () => {
  for (let i = 0; i < 5; i++) await tick();
};

describe.each<Shape>(['memory', 'remote'])('wrapMany races (%s)', (shape) => {
  beforeEach(() => jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined));
  afterEach(() => jest.restoreAllMocks());

  async function race(change: (stack: CacheStack) => Promise<unknown>, expected: unknown) {
    const stack = stackOf(shape);
    const gate = deferred<void>();
    const many = stack.wrapMany(
      ['a', 'b'],
      async (keys) => {
        await gate.promise;
        return keys.map((key) => `old-${key}`);
      },
      { tags: ['t'] },
    );
    await settle();
    await change(stack);
    gate.resolve();
    await expect(many).resolves.toEqual(['old-a', 'old-b']);
    await settle();
    await expect(stack.get('a')).resolves.toEqual(expected);
  }

  it('set during the load wins', () => race((s) => s.set('a', 'new'), 'new'));
  it('setMany during the load wins', () =>
    race((s) => s.setMany([{ key: 'a', value: 'new' }]), 'new'));
  it('delete during the load wins', () => race((s) => s.delete('a'), undefined));
  it('deleteMany during the load wins', () => race((s) => s.deleteMany(['a']), undefined));
  it('deleteByTag during the load wins', () => race((s) => s.deleteByTag('t'), undefined));
  it('clear during the load wins', () => race((s) => s.clear(), undefined));

  it('a loader that throws synchronously rejects, and the keys load again later', async () => {
    const stack = stackOf(shape);
    await expect(
      stack.wrapMany(['a'], () => {
        throw new Error('sync boom');
      }),
    ).rejects.toThrow('sync boom');
    expect(stack.loadsInFlight).toBe(0);
    await expect(stack.wrapMany(['a'], (keys) => keys.map(() => 1))).resolves.toEqual([1]);
  });

  it('extra keys returned by the loader are not stored', async () => {
    const stack = stackOf(shape);
    await stack.wrapMany(
      ['a'],
      () =>
        new Map([
          ['a', 1],
          ['zzz', 2],
        ]),
    );
    await expect(stack.get('zzz')).resolves.toBeUndefined();
  });

  it('wrap + wrapMany overlapping: each key loaded once', async () => {
    const stack = stackOf(shape);
    const gate = deferred<string>();
    const single = jest.fn(() => gate.promise);
    const w = stack.wrap('b', single);
    await settle();
    const batch = jest.fn(async (keys: string[]) => keys.map((k) => `m-${k}`));
    const m = stack.wrapMany(['a', 'b'], batch);
    const w2 = stack.wrap('a', () => 'w2');
    await settle();
    gate.resolve('s-b');
    // wrap('a') started first (wrapMany reads before it loads): the batch joins it.
    await expect(m).resolves.toEqual(['w2', 's-b']);
    expect((await w2).value).toBe('w2');
    await w;
    expect(batch).not.toHaveBeenCalled();
  });
});
