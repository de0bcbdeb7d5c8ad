import { Logger } from '@nestjs/common';
import { MemoryCacheAdapter } from '../../lib/adapters/memory.adapter';
import { createCacheStack } from '../../lib/core/create-stack';
import { FlakyAdapter } from '../support/flaky-adapter';
import { deferred } from '../support/deferred';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.each(['memory', 'remote'])('wrapMany loading options (%s)', (shape) => {
  beforeEach(() => jest.spyOn(Logger.prototype, 'warn').mockImplementation(() => undefined));
  afterEach(() => jest.restoreAllMocks());
  const make = (options = {}) =>
    createCacheStack(
      shape === 'memory' ? new MemoryCacheAdapter({ sweepInterval: 0 }) : new FlakyAdapter(),
      {
        enabled: true,
        ttl: 60,
        namespace: 't',
        ...options,
      },
    );
  const keys = ['a', 'b', 'c', 'd', 'e'];

  it('refreshAhead: the keys due are refreshed in one background loader call', async () => {
    const stack = make();
    const calls: string[][] = [];
    const loader = async (missing: string[]) => {
      calls.push(missing);
      return missing.map((key) => `${key}${calls.length}`);
    };
    await stack.wrapMany(keys, loader, { ttl: 1, refreshAhead: 0.5 });
    await sleep(650);
    await expect(stack.wrapMany(keys, loader, { ttl: 1, refreshAhead: 0.5 })).resolves.toEqual(
      keys.map((key) => `${key}1`),
    );
    await sleep(50);
    expect(calls).toEqual([keys, keys]);
    await expect(stack.getMany(keys)).resolves.toEqual(keys.map((key) => `${key}2`));
  });

  it('timeouts.soft with grace: stale answers, one loader call, fresh values land', async () => {
    const stack = make();
    const calls: string[][] = [];
    const gate = deferred<void>();
    await stack.wrapMany(keys, (missing) => missing.map((key) => `${key}-old`), {
      ttl: 0.2,
      grace: 60,
    });
    await sleep(300);
    const answer = await stack.wrapMany(
      keys,
      async (missing) => {
        calls.push(missing);
        await gate.promise;
        return missing.map((key) => `${key}-new`);
      },
      { ttl: 0.2, grace: 60, timeouts: { soft: 0.05 } },
    );
    expect(answer).toEqual(keys.map((key) => `${key}-old`));
    gate.resolve();
    await sleep(30);
    expect(calls).toEqual([keys]);
    await expect(stack.getMany(keys)).resolves.toEqual(keys.map((key) => `${key}-new`));
  });
});
