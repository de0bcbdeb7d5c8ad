import { Logger } from '@nestjs/common';
import { MemoryCacheAdapter } from '../../lib/adapters/memory.adapter';
import { createCacheStack } from '../../lib/core/create-stack';
import { FlakyAdapter } from '../support/flaky-adapter';

describe.each(['memory', 'remote'])('bulk bad input (%s)', (shape) => {
  beforeEach(() => jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined));
  afterEach(() => jest.restoreAllMocks());
  const make = () =>
    createCacheStack(
      shape === 'memory' ? new MemoryCacheAdapter({ sweepInterval: 0 }) : new FlakyAdapter(),
      {
        enabled: true,
        ttl: 60,
        namespace: 't',
      },
    );

  it.each([
    ['a misspelt option', { key: 'b', value: 1, tll: 5 }, /tll/],
    ['a negative ttl', { key: 'b', value: 1, ttl: -1 }, /ttl|TTL/],
    ['an undefined value', { key: 'b', value: undefined }, /undefined/],
    ['a BigInt', { key: 'b', value: 1n }, /BigInt|bigint/],
    ['a NaN ttl', { key: 'b', value: 1, ttl: NaN }, /ttl|TTL/],
    ['bad tags', { key: 'b', value: 1, tags: [''] }, /tag/],
  ])('%s rejects clearly and leaves old entries intact', async (_n, bad, message) => {
    const stack = make();
    await stack.setMany([
      { key: 'a', value: 'old-a' },
      { key: 'b', value: 'old-b' },
    ]);
    await expect(stack.setMany([{ key: 'a', value: 'new-a' }, bad as never])).rejects.toThrow(
      message,
    );
    await expect(stack.getMany(['a', 'b'])).resolves.toEqual(['old-a', 'old-b']);
  });

  it('wrapMany: a loader value that cannot be stored is returned, not stored, old entry intact', async () => {
    const stack = make();
    const values = await stack.wrapMany(['x', 'y'], () => [1n as never, 'ok']);
    expect(values[1]).toBe('ok');
    await expect(stack.getMany(['x', 'y'])).resolves.toEqual([undefined, 'ok']);
  });

  it('getMany / deleteMany with a non-array reject clearly', async () => {
    const stack = make();
    await expect(stack.getMany('a' as never)).rejects.toThrow(/array/);
    await expect(stack.deleteMany('a' as never)).rejects.toThrow(/array/);
    await expect(stack.wrapMany('abc' as never, () => [])).rejects.toThrow(/array/);
  });
});
