import { Injectable, Module, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { CacheModule, CacheService, Cacheable } from '../../lib';
import { CapturingLogger } from '../support/logs';

/** Review of issue 17 item 2: the batch form of @Cacheable, as a demanding user writes it. */
interface Row {
  id: number;
  name: string;
}
const DB = new Map<number, Row>([1, 2, 3, 4].map((id) => [id, { id, name: `R${id}` }]));

@Injectable()
class Repo {
  readonly calls: unknown[][] = [];

  /** Sorts the ids in place (a common thing before a query), answers a Map by id. */
  @Cacheable('sorted-map:{ids}', { batch: { map: true } })
  async sortedMap(ids: number[]): Promise<Map<number, Row>> {
    this.calls.push([...ids]);
    ids.sort((a, b) => b - a);
    return new Map(ids.filter((id) => DB.has(id)).map((id) => [id, DB.get(id)!]));
  }

  /** Chunks the ids with splice (a common pattern for IN-list limits), rows in any order. */
  @Cacheable('chunked:{ids}', { batch: { by: 'id' } })
  async chunked(ids: number[]): Promise<Row[]> {
    this.calls.push([...ids]);
    const rows: Row[] = [];
    while (ids.length > 0) {
      for (const id of ids.splice(0, 2)) if (DB.has(id)) rows.push(DB.get(id)!);
    }
    return rows;
  }

  /** Composite ids (objects); rows carry their composite id as a fresh object. */
  @Cacheable('composite:{ids.tenant}:{ids.id}', {
    batch: { by: (row: { tenant: string; id: number }) => ({ tenant: row.tenant, id: row.id }) },
  })
  async composite(
    ids: Array<{ tenant: string; id: number }>,
  ): Promise<Array<{ tenant: string; id: number; name: string }>> {
    this.calls.push([...ids]);
    return ids.map(({ tenant, id }) => ({ tenant, id, name: `${tenant}-${id}` })).reverse();
  }

  /** Ids from a query string (text), a database that keys its Map by number. */
  @Cacheable('numeric-map:{ids}', { batch: { map: true } })
  async numericMap(ids: string[]): Promise<Map<number, Row>> {
    this.calls.push([...ids]);
    return new Map(
      ids
        .map(Number)
        .filter((id) => DB.has(id))
        .map((id) => [id, DB.get(id)!]),
    );
  }
}

@Module({ providers: [Repo] })
class RepoModule {}

describe('@Cacheable batch form', () => {
  let app: INestApplication;
  let repo: Repo;
  let cache: CacheService;

  beforeEach(async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [CacheModule.forRoot({ isGlobal: true, provider: 'memory' }), RepoModule],
    }).compile();
    app = moduleRef.createNestApplication({ logger: new CapturingLogger() });
    await app.init();
    repo = app.get(Repo);
    cache = app.get(CacheService);
  });
  afterEach(async () => {
    await app.close();
  });

  it('a method that sorts its ids in place: each value still cached under its own id', async () => {
    const first = await repo.sortedMap([1, 2, 3]);
    expect([...first.entries()]).toEqual([
      [1, DB.get(1)],
      [2, DB.get(2)],
      [3, DB.get(3)],
    ]);
    // Read back from the cache (no second call): id 1's entry holds row 1.
    const again = await repo.sortedMap([1]);
    expect(again.get(1)).toEqual(DB.get(1));
    expect(repo.calls).toHaveLength(1);
    expect(cache).toBeDefined();
  });

  it('a method that consumes its ids (splice): the rows it returned are answered and cached', async () => {
    const rows = await repo.chunked([1, 2, 3]);
    expect(rows).toEqual([DB.get(1), DB.get(2), DB.get(3)]);
    await repo.chunked([1, 2, 3]);
    expect(repo.calls).toHaveLength(1);
  });

  it('items shape with object ids: no row is cached under another id', async () => {
    const rows = await repo.composite([
      { tenant: 't', id: 1 },
      { tenant: 't', id: 2 },
    ]);
    // Each row for its own id (never row 2 answered, and cached, as id 1's), in list order.
    expect(rows.map((row) => row.name)).toEqual(['t-1', 't-2']);
    const again = await repo.composite([{ tenant: 't', id: 1 }]);
    expect(again.map((row) => row.name)).toEqual(['t-1']);
  });

  it("map shape: text ids match a Map keyed by number ('42' matches 42, as documented)", async () => {
    const found = await repo.numericMap(['1', '2']);
    expect([...found.entries()]).toEqual([
      ['1', DB.get(1)],
      ['2', DB.get(2)],
    ]);
  });
});
