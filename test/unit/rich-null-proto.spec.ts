import { RICH_SERIALIZER } from '../../lib/utils/serializer';
import { toRichStorable } from '../../lib/utils/serializable';

// Defect (low): devalue text holding a null-prototype object (["null", ...]), which the rich
// serializer never writes, is read back as Object.create(null) — a value the memory backend
// never returns (toRichStorable makes such objects plain) — instead of a logged miss.
describe('rich values, null-prototype objects in stored text', () => {
  it('what the rich serializer writes for a null-prototype object reads back plain', () => {
    const value = Object.assign(Object.create(null) as object, { a: 1 });
    const text = RICH_SERIALIZER.serialize(toRichStorable({ value }, 'k'));
    const back = RICH_SERIALIZER.deserialize(text) as { value: object };
    expect(Object.getPrototypeOf(back.value)).toBe(Object.prototype);
  });

  it('text holding a null-prototype object is refused (a miss), not returned', () => {
    expect(() => RICH_SERIALIZER.deserialize('[["null","a",1],2]')).toThrow();
    expect(() => RICH_SERIALIZER.deserialize('[{"x":1},["null"]]')).toThrow();
  });
});
