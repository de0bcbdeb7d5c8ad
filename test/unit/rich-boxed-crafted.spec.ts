import { MemoryCacheAdapter } from '../../lib';
import { RICH_SERIALIZER } from '../../lib/utils/serializer';

// README, Rich values: `new Number(1)`, `new String('x')` read back as `1`, `'x'` on every tier
// (the rich form unboxes them, so the serializer never writes devalue's ["Object", ...] tag).
// Text in Redis holding that tag (damaged, or written by another devalue user) is read back as a
// boxed String / Number — `typeof` 'object', `v === 'x'` false — a value the memory backend never
// returns, instead of a logged miss (as done for the ["null", ...] tag, rich-null-proto.spec.ts).
describe('rich values, boxed primitives in stored text', () => {
  it('the memory backend returns a primitive for a boxed one', async () => {
    const memory = new MemoryCacheAdapter({ serializer: 'rich' });
    await memory.set('k', new String('x'), 0);
    expect(await memory.get('k')).toBe('x');
    memory.onApplicationShutdown?.();
  });

  it('text holding a boxed primitive is refused (a miss), not returned boxed', () => {
    expect(() => RICH_SERIALIZER.deserialize('[["Object",1],"x"]')).toThrow();
    expect(() => RICH_SERIALIZER.deserialize('[{"n":1},["Object",2],7]')).toThrow();
  });
});
