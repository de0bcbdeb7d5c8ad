import { CacheKeyError, KeyConstructor, argField, constField } from '../../lib';
import type { CacheKeySource } from '../../lib';

const UserPayloadKey = KeyConstructor.define({
  namespace: 'users',
  fields: [argField('locale'), argField('userId', { partition: true }), constField('v', 1)],
});

describe('KeyConstructor', () => {
  it('writes the namespace, then partition fields, then the other fields in order', () => {
    expect(UserPayloadKey.render({ userId: 42, locale: 'en' })).toBe(
      'users:userId=42:locale=en:v=1',
    );
    expect(String(UserPayloadKey)).toBe('users:userId={userId}:locale={locale}:v=1');
  });

  it('renders the same key from a call as from field values', () => {
    const fromCall = UserPayloadKey.renderArgs(['en', 42], ['locale', 'userId']);
    expect(fromCall).toBe(UserPayloadKey.render({ userId: 42, locale: 'en' }));
    expect(UserPayloadKey.renderArgs([42, 'en'], ['userId', 'locale'])).toBe(fromCall);
  });

  it('is deterministic: objects render the same whatever their property order', () => {
    const key = KeyConstructor.define({ namespace: 'search', fields: [argField('filter')] });
    const a = key.render({
      filter: { status: 'open', tags: ['a', 'b'], page: { n: 1, size: 10 } },
    });
    const b = key.render({
      filter: { page: { size: 10, n: 1 }, tags: ['a', 'b'], status: 'open' },
    });
    expect(a).toBe(b);
    expect(key.render({ filter: { tags: ['b', 'a'] } })).not.toBe(
      key.render({ filter: { tags: ['a', 'b'] } }),
    );
  });

  it('is injective: separators, escapes and glob characters in values cannot collide', () => {
    const key = KeyConstructor.define({
      namespace: 'k',
      fields: [argField('a', { partition: true }), argField('b')],
    });
    const cases: Array<[unknown, unknown]> = [
      ['x:b=y', 'z'],
      ['x', 'b=y:z'],
      ['x%3Ab', 'y'],
      ['x:b', 'y'],
      ['*', 'y'],
      ['4', '2'],
      ['42', ''],
      ['~null', 'y'],
      [null, 'y'],
      [undefined, 'y'],
      ['[a]', 'y'],
      ['a\\', 'y'],
      [{ x: 1 }, 'y'],
      ['{"x":1}', 'y'],
      [['x'], 'y'],
      [{ x: '1' }, 'y'],
    ];
    const rendered = cases.map(([a, b]) => key.render({ a, b }));
    expect(new Set(rendered).size).toBe(cases.length);
    for (const k of rendered) {
      // Every raw ':' is a separator: namespace, partition, field.
      expect(k.split(':')).toHaveLength(3);
      expect(k).not.toMatch(/[*?[\]\\{}]/);
    }
  });

  it('renders 42 and "42" alike, so a route parameter and an entity id meet', () => {
    expect(UserPayloadKey.render({ userId: '42', locale: 'en' })).toBe(
      UserPayloadKey.render({ userId: 42, locale: 'en' }),
    );
  });

  it('makes old entries unreachable when the constant version is bumped', () => {
    const v2 = KeyConstructor.define({
      namespace: 'users',
      fields: [argField('locale'), argField('userId', { partition: true }), constField('v', 2)],
    });
    const values = { userId: 42, locale: 'en' };
    expect(v2.render(values)).not.toBe(UserPayloadKey.render(values));
    // ...but both versions share the partition, so a partition wipe still clears the old ones.
    expect(v2.partition({ userId: 42 })).toBe(UserPayloadKey.partition({ userId: 42 }));
  });

  it('gives each partition a prefix that no other partition starts with', () => {
    const p4 = UserPayloadKey.partition({ userId: 4 });
    expect(p4).toBe('users:userId=4:');
    expect(UserPayloadKey.render({ userId: 42, locale: 'en' }).startsWith(p4)).toBe(false);
    expect(UserPayloadKey.render({ userId: 4, locale: 'en' }).startsWith(p4)).toBe(true);
    expect(UserPayloadKey.render({ userId: '4*', locale: 'en' }).startsWith(p4)).toBe(false);
  });

  it('supports several partition fields and leading subsets of them', () => {
    const key = KeyConstructor.define({
      namespace: 'orders',
      fields: [
        argField('tenantId', { partition: true }),
        argField('userId', { partition: true }),
        argField('filter.status'),
      ],
    });
    const full = key.render({ tenantId: 7, userId: 42, filter: { status: 'open' } });
    expect(full).toBe('orders:tenantId=7:userId=42:filter.status=open');
    expect(full.startsWith(key.partition({ tenantId: 7 }))).toBe(true);
    expect(full.startsWith(key.partition({ tenantId: 7, userId: 42 }))).toBe(true);
    expect(() => key.partition({ userId: 42 })).toThrow(CacheKeyError);
    expect(() => key.partition({})).toThrow(/needs a value for "tenantId"/);
    // Field values may be given by field name or shaped like the arguments.
    expect(key.render({ tenantId: 7, userId: 42, 'filter.status': 'open' })).toBe(full);
  });

  it('targets the narrowest set that holds every matching entry', () => {
    const key = KeyConstructor.define({
      namespace: 'orders',
      fields: [
        argField('tenantId', { partition: true }),
        argField('userId', { partition: true }),
        argField('page'),
      ],
    });
    expect(key.target({ tenantId: 1, userId: 2, page: 3 })).toEqual({
      key: 'orders:tenantId=1:userId=2:page=3',
    });
    expect(key.target({ tenantId: 1, userId: 2 })).toEqual({
      prefix: 'orders:tenantId=1:userId=2:',
    });
    expect(key.target({ tenantId: 1, page: 3 })).toEqual({ prefix: 'orders:tenantId=1:' });
    expect(key.target({ userId: 2 })).toEqual({ prefix: 'orders:' });
    expect(key.target({ tenantId: undefined })).toEqual({ prefix: 'orders:' });
  });

  it('reads paths and positions from the call', () => {
    const key = KeyConstructor.define({
      namespace: 'search',
      fields: [argField(1, { name: 'tenant', partition: true }), argField('query.text')],
    });
    expect(key.renderArgs([{ text: 'shoes' }, 't1'], ['query', ''])).toBe(
      'search:tenant=t1:query.text=shoes',
    );
    expect(key.renderArgs([undefined, 't1'], ['query', ''])).toBe(
      'search:tenant=t1:query.text=~undefined',
    );
  });

  it('implements the decorators key-source interface and checks parameters up front', () => {
    const source: CacheKeySource = UserPayloadKey;
    expect(() => source.assertParameters?.(['userId', 'locale'], 'UsersService.get')).not.toThrow();
    expect(() => source.assertParameters?.(['id', 'locale'], 'UsersService.get')).toThrow(
      /UsersService.get\(id, locale\) has no such parameter/,
    );
  });

  it('rejects bad definitions and values with CacheKeyError', () => {
    expect(() => KeyConstructor.define({ namespace: 'a:b', fields: [] })).toThrow(CacheKeyError);
    expect(() => KeyConstructor.define({ namespace: '', fields: [] })).toThrow(CacheKeyError);
    expect(() =>
      KeyConstructor.define({ namespace: 'a', fields: [argField('x'), constField('x', 1)] }),
    ).toThrow(/two fields are named "x"/);
    expect(() => argField('a b')).toThrow(CacheKeyError);
    expect(() => (argField as (s: number) => unknown)(0)).toThrow(/needs a name/);
    expect(() => UserPayloadKey.render({ userid: 42, locale: 'en' })).toThrow(
      /no value for field "userId"/,
    );
    expect(() => UserPayloadKey.render({ userId: () => 1, locale: 'en' })).toThrow(CacheKeyError);
    expect(() => UserPayloadKey.render({ userId: new Map(), locale: 'en' })).toThrow(CacheKeyError);
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    expect(() => UserPayloadKey.render({ userId: circular, locale: 'en' })).toThrow(/circular/);
    const flat = KeyConstructor.define({ namespace: 'flat', fields: [argField('id')] });
    expect(() => flat.partition({ id: 1 })).toThrow(/no partition fields/);
  });

  it('lists its partition fields', () => {
    expect(UserPayloadKey.partitionFields).toEqual(['userId']);
  });
});
