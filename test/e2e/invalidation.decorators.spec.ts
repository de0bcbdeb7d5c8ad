import { Injectable, type INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import {
  CacheEvict,
  CacheInvalidator,
  CacheModule,
  CachePut,
  Cacheable,
  InvalidationRule,
  KeyConstructor,
  argField,
  constField,
  type CacheModuleOptions,
} from '../../lib';
import { Gate } from '../support/gated-adapter';
import { sharedRedisUrl, uniqueNamespace } from '../support/redis';

class User {
  constructor(
    readonly id: number,
    public name: string,
  ) {}
}

const UserPayloadKey = KeyConstructor.define({
  namespace: 'users',
  fields: [argField('userId', { partition: true }), argField('locale'), constField('v', 1)],
});

@Injectable()
class UsersRepository {
  readonly rows = new Map<number, User>([
    [42, new User(42, 'Alice')],
    [7, new User(7, 'Bob')],
  ]);
  reads = 0;
  slow: Gate | undefined;

  constructor(private readonly invalidator: CacheInvalidator) {}

  async read(id: number): Promise<User | undefined> {
    this.reads++;
    const row = this.rows.get(id);
    const snapshot = row && new User(row.id, row.name);
    if (this.slow) await this.slow.wait;
    return snapshot;
  }

  async save(user: User): Promise<void> {
    this.rows.set(user.id, new User(user.id, user.name));
    await this.invalidator.publish(User, user);
  }
}

@Injectable()
class UsersService {
  constructor(private readonly repo: UsersRepository) {}

  @Cacheable({
    key: UserPayloadKey,
    ttl: 60,
    invalidateOn: [InvalidationRule({ event: User, fieldMapping: { userId: 'id' } })],
  })
  async payload(userId: number, locale = 'en'): Promise<{ name: string; locale: string }> {
    const user = await this.repo.read(userId);
    return { name: user?.name ?? '?', locale };
  }

  @CachePut({ key: UserPayloadKey })
  async recompute(userId: number, locale: string): Promise<{ name: string; locale: string }> {
    const user = await this.repo.read(userId);
    return { name: `${user?.name ?? '?'}!`, locale };
  }

  @CacheEvict({ key: UserPayloadKey })
  async forget(userId: number, locale: string): Promise<void> {
    await Promise.resolve([userId, locale]);
  }
}

const backends: Array<[string, () => CacheModuleOptions]> = [
  ['memory', () => ({ namespace: uniqueNamespace('deco') })],
  [
    'redis',
    () => ({
      provider: 'redis',
      redis: { url: sharedRedisUrl() },
      namespace: uniqueNamespace('deco'),
    }),
  ],
];

describe.each(backends)(
  '@Cacheable with a KeyConstructor and invalidateOn (%s)',
  (_, optionsFor) => {
    let app: INestApplication;
    let users: UsersService;
    let repo: UsersRepository;

    beforeEach(async () => {
      const moduleRef = await Test.createTestingModule({
        imports: [CacheModule.forRoot(optionsFor())],
        providers: [UsersRepository, UsersService],
      }).compile();
      app = moduleRef.createNestApplication({ logger: false });
      await app.init();
      users = app.get(UsersService);
      repo = app.get(UsersRepository);
    });

    afterEach(async () => {
      repo.slow?.open();
      await app.close();
    });

    it('an entity save drops every cached payload of that user, and only that user', async () => {
      await users.payload(42);
      await users.payload(42, 'fr');
      await users.payload(7);
      expect(repo.reads).toBe(3);
      await users.payload(42);
      expect(repo.reads).toBe(3);

      await repo.save(new User(42, 'Alicia'));

      expect(await users.payload(42)).toEqual({ name: 'Alicia', locale: 'en' });
      expect(await users.payload(42, 'fr')).toEqual({ name: 'Alicia', locale: 'fr' });
      expect(await users.payload(7)).toEqual({ name: 'Bob', locale: 'en' });
      expect(repo.reads).toBe(5);
    });

    it('@CachePut and @CacheEvict address the same entries through the KeyConstructor', async () => {
      await users.payload(42, 'en');
      await users.recompute(42, 'en');
      expect(await users.payload(42, 'en')).toEqual({ name: 'Alice!', locale: 'en' });
      await users.forget(42, 'en');
      expect(await users.payload(42, 'en')).toEqual({ name: 'Alice', locale: 'en' });
    });

    it('a save that lands while a miss is loading does not let the old payload be stored', async () => {
      repo.slow = new Gate();
      const readsBefore = repo.reads;
      const stale = users.payload(42);
      // Wait until the load has read 'Alice' (on Redis the cache lookup comes first); it is now
      // parked on the gate, busy.
      while (repo.reads === readsBefore) await new Promise((r) => setTimeout(r, 2));

      await repo.save(new User(42, 'Alicia'));
      repo.slow.open();
      expect(await stale).toEqual({ name: 'Alice', locale: 'en' });

      repo.slow = undefined;
      expect(await users.payload(42)).toEqual({ name: 'Alicia', locale: 'en' });
    });
  },
);

describe('invalidateOn declarations', () => {
  it('fail when the class is defined if the key is not a KeyConstructor', () => {
    expect(() => {
      class Bad {
        @Cacheable({
          key: 'user:{id}',
          invalidateOn: [InvalidationRule({ event: User, fieldMapping: { id: 'id' } })],
        })
        get(id: number) {
          return id;
        }
      }
      return Bad;
    }).toThrow(/invalidateOn needs a KeyConstructor key/);
  });
});
