import { redisInstances } from '../support/redis-instances';

describe('getMany through two tiers while the bus is down', () => {
  const redis = redisInstances('r1-bus', { l1: true });

  it('a write made elsewhere while the bus is down is never hidden by the L1 (getMany, wrapMany)', async () => {
    const a = await redis.instance();
    const b = await redis.instance();
    await a.cache.setMany([
      { key: 'k1', value: 'old' },
      { key: 'k2', value: 'old' },
    ]);
    await expect(a.cache.getMany(['k1', 'k2'])).resolves.toEqual(['old', 'old']);
    await redis.raw.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    await b.cache.setMany([{ key: 'k1', value: 'new' }]);
    await b.cache.deleteMany(['k2']);
    const loader = jest.fn(async (keys: string[]) => keys.map(() => 'loaded'));
    for (let i = 0; i < 30; i++) {
      const [k1, k2] = await a.cache.getMany(['k1', 'k2']);
      expect(k1).toBe('new');
      expect(k2).toBeUndefined();
      const [w1] = await a.cache.wrapMany(['k1'], loader);
      expect(w1).toBe('new');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  });
});
