import { redisInstances } from '../support/redis-instances';
import { uniqueNamespace } from '../support/redis';
import { CacheSerializationError, type CacheSerializer } from '../../lib';
import { eventually } from '../support/eventually';

describe('rich values', () => {
  const redis = redisInstances('rr', { serializer: 'rich' });

  it('crafted __proto__ / constructor data in Redis is a logged miss, never pollution', async () => {
    const a = await redis.instance();
    await redis.raw.set(`${redis.namespace}:p1`, '[{"__proto__":1},{"polluted":2},true]');
    await redis.raw.set(`${redis.namespace}:p2`, '[["null","__proto__",1],{"polluted":2}]');
    await redis.raw.set(
      `${redis.namespace}:p3`,
      '[{"constructor":1},{"prototype":2},{"polluted":3},true]',
    );
    expect(await a.cache.get('p1')).toBeUndefined();
    expect(await a.cache.get('p2')).toBeUndefined();
    const p3 = await a.cache.get<Record<string, unknown>>('p3');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(p3)).toBe(Object.prototype);
  });

  it('crafted deep nesting from Redis is a miss', async () => {
    const a = await redis.instance();
    const n = 200000;
    const parts: string[] = [];
    for (let i = 0; i < n; i++) parts.push(`[${i + 1}]`);
    parts.push('1');
    await redis.raw.set(`${redis.namespace}:deep`, `[${parts.join(',')}]`);
    expect(await a.cache.get('deep')).toBeUndefined();
  });

  it('invalid Date round-trips (memory == redis)', async () => {
    const a = await redis.instance();
    const m = await redis.memory();
    await a.cache.set('d', { d: new Date(NaN) });
    await m.cache.set('d', { d: new Date(NaN) });
    const r = await a.cache.get<{ d: Date }>('d');
    const mm = await m.cache.get<{ d: Date }>('d');
    expect(r?.d).toBeInstanceOf(Date);
    expect(Number.isNaN(r!.d.getTime())).toBe(true);
    expect(Number.isNaN(mm!.d.getTime())).toBe(true);
  });

  it('typed array view with offset and pooled Buffer round-trip', async () => {
    const a = await redis.instance();
    const base = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);
    const view = new Uint16Array(base.buffer, 2, 2);
    const small = Buffer.from('abc');
    await a.cache.set('t', { view, small, dv: new DataView(base.buffer, 3, 2) });
    const r = await a.cache.get<{ view: Uint16Array; small: Buffer; dv: DataView }>('t');
    expect(Array.from(r!.view)).toEqual(Array.from(view));
    expect(Buffer.isBuffer(r!.small)).toBe(true);
    expect(r!.small.toString()).toBe('abc');
    expect(r!.dv.byteLength).toBe(2);
    expect(r!.dv.getUint8(0)).toBe(4);
  });

  it('cycles, sparse arrays, class instances, symbol keys, -0 map keys', async () => {
    const a = await redis.instance();
    const m = await redis.memory();
    class P {
      constructor(public x = 1) {}
      get y() {
        return 2;
      }
    }
    const cyc: Record<string, unknown> = { n: 1 };
    cyc.self = cyc;
    // eslint-disable-next-line no-sparse-arrays
    const value = { cyc, sparse: [1, , 3], p: new P(), [Symbol('s')]: 1, m: new Map([[-0, 'z']]) };
    for (const b of [a, m]) await b.cache.set('c', value);
    const r = await a.cache.get<Record<string, { self?: unknown; [k: string]: unknown }>>('c');
    const mm = await m.cache.get<Record<string, { self?: unknown; [k: string]: unknown }>>('c');
    expect(r!.cyc.self).toBe(r!.cyc);
    expect(mm!.cyc.self).toBe(mm!.cyc);
    expect(1 in r!.sparse).toBe(false);
    expect(1 in mm!.sparse).toBe(false);
    expect(r!.p).toEqual({ x: 1 });
    expect(mm!.p).toEqual({ x: 1 });
    expect(Object.getPrototypeOf(mm!.p)).toBe(Object.prototype);
  });

  it('a throwing getter is rejected and the old entry stays', async () => {
    const a = await redis.instance();
    await a.cache.set('g', 'old');
    const bad = {
      get boom() {
        throw new Error('nope');
      },
    };
    await expect(a.cache.set('g', bad)).rejects.toBeInstanceOf(CacheSerializationError);
    expect(await a.cache.get('g')).toBe('old');
  });

  it('envelope look-alikes under rich, with grace and tags', async () => {
    const a = await redis.instance({ grace: 30 });
    const m = await redis.memory({ grace: 30 });
    for (const b of [a, m]) {
      const look = { v: 1, __cachekit: 1, e: 1, t: ['x'], value: new Map([[1, 2]]) } as never;
      expect(
        await b.cache.wrap('e', () => Promise.resolve(look), { ttl: 60, tags: ['t1'] }),
      ).toEqual(look);
      // (on Redis a tagged wrap's write lands after wrap resolves: wait for it)
      await eventually(async () => (await b.cache.get('e')) !== undefined, 2000, 10);
      expect(await b.cache.get('e')).toEqual(look);
    }
  });

  it('custom serializer: non-string is rejected; deserialize throwing is a logged miss', async () => {
    const nonString: CacheSerializer = {
      serialize: () => 42 as unknown as string,
      deserialize: (t) => JSON.parse(t),
    };
    const a = await redis.instance({ serializer: nonString });
    await expect(a.cache.set('x', 1)).rejects.toBeInstanceOf(CacheSerializationError);
    let broken = false;
    const flaky: CacheSerializer = {
      serialize: (v) => JSON.stringify(v),
      deserialize: (t) => {
        if (broken) throw new Error('bad');
        return JSON.parse(t);
      },
    };
    const b = await redis.instance({ serializer: flaky, namespace: uniqueNamespace('rr2') });
    await b.cache.set('x', { a: 1 });
    broken = true;
    expect(await b.cache.get('x')).toBeUndefined();
    expect(b.logger.warnings().join('\n')).toMatch(/cannot read/);
    // a cache failure never fails the method
    expect(await b.cache.wrap('x', () => Promise.resolve(5), 60)).toBe(5);
  });

  it('memory maxSize bounds a 10 MB Buffer under rich', async () => {
    const m = await redis.memory({ memory: { maxSize: 1_000_000 } });
    await m.cache.set('big', Buffer.alloc(10 * 1024 * 1024, 1));
    expect(await m.cache.get('big')).toBeUndefined();
  });

  it("'json' unchanged: Date → ISO string, BigInt rejected", async () => {
    const j = await redis.instance({ serializer: 'json' });
    await j.cache.set('d', { d: new Date(0) });
    expect(await j.cache.get('d')).toEqual({ d: '1970-01-01T00:00:00.000Z' });
    await expect(j.cache.set('b', { b: 1n })).rejects.toBeInstanceOf(CacheSerializationError);
  });

  it('rich + two tiers + bus: other instance gets the rich value', async () => {
    const a = await redis.instance({ l1: true });
    const b = await redis.instance({ l1: true });
    await a.cache.set('m', new Map([[1, new Set([2n])]]));
    expect(await b.cache.get('m')).toEqual(new Map([[1, new Set([2n])]]));
    await a.cache.set('m', new Map([[2, new Date(5)]]));
    await new Promise((r) => setTimeout(r, 300));
    expect(await b.cache.get('m')).toEqual(new Map([[2, new Date(5)]]));
  });
});
