import 'reflect-metadata';
import { Controller, Get, Injectable, Module, Param, type Type } from '@nestjs/common';
import { CacheModule, Cacheable, type CacheModuleOptions } from '../../lib';

/**
 * An application whose cached classes share names, for the default-key tests (issue 10, item
 * 3): two `UsersService` and two `UsersController` in different modules (each class is
 * declared in its own function scope, so the names really collide), two more `UsersService`
 * in one module, one class provided twice under two tokens, two providers inheriting one
 * cached method, and a class whose name is unique. Also run as a separate process (see
 * `default-keys-child.ts`).
 */

function usersService(label: string) {
  @Injectable()
  class UsersService {
    calls = 0;

    @Cacheable()
    async find(id: number) {
      this.calls++;
      return { from: label, id };
    }
  }
  return UsersService;
}

function usersController(label: string) {
  @Controller(label)
  class UsersController {
    calls = 0;

    @Get(':id')
    @Cacheable()
    async get(@Param('id') id: string) {
      this.calls++;
      return { from: `${label} controller`, id };
    }
  }
  return UsersController;
}

export const AdminUsersService = usersService('admin');
export const ShopUsersService = usersService('shop');
export const FirstSameService = usersService('same #1');
export const SecondSameService = usersService('same #2');
export const AdminUsersController = usersController('admin');
export const ShopUsersController = usersController('shop');

@Module({ providers: [AdminUsersService], controllers: [AdminUsersController] })
export class AdminModule {}

@Module({ providers: [ShopUsersService], controllers: [ShopUsersController] })
export class ShopModule {}

/** Two classes named `UsersService` in one module. */
@Module({ providers: [FirstSameService, SecondSameService] })
export class SameModule {}

/** No other cached class is called this: its default keys stay `CatalogService:list:<page>`. */
@Injectable()
export class CatalogService {
  calls = 0;

  @Cacheable()
  async list(page: number) {
    this.calls++;
    return { page };
  }
}

/** Provided twice, under two tokens, with different data behind each. */
export class Repo {
  calls = 0;
  constructor(readonly source: string) {}

  @Cacheable()
  async find(id: number) {
    this.calls++;
    return { source: this.source, id };
  }
}
export const PRIMARY = 'PRIMARY_REPO';
export const REPLICA = 'REPLICA_REPO';

/** One cached method, inherited by two providers. */
export class BaseFeed {
  calls = 0;

  @Cacheable()
  async latest(count: number) {
    this.calls++;
    return { feed: this.constructor.name, count };
  }
}

@Injectable()
export class NewsFeed extends BaseFeed {}

@Injectable()
export class SportsFeed extends BaseFeed {}

@Module({
  imports: [AdminModule, ShopModule, SameModule],
  providers: [
    CatalogService,
    NewsFeed,
    SportsFeed,
    { provide: PRIMARY, useFactory: () => new Repo('primary') },
    { provide: REPLICA, useFactory: () => new Repo('replica') },
  ],
})
export class FeaturesModule {}

/** The application's root module, `AppModule`, with the cache configured by `options`. */
export function appModule(options: CacheModuleOptions): Type {
  @Module({ imports: [CacheModule.forRoot({ isGlobal: true, ...options }), FeaturesModule] })
  class AppModule {}
  return AppModule;
}

/** Every default key the calls of {@link callEverything} write, by the owner it belongs to. */
export const EXPECTED_KEYS = {
  admin: 'AppModule/FeaturesModule/AdminModule/UsersService:find:1',
  shop: 'AppModule/FeaturesModule/ShopModule/UsersService:find:1',
  same1: 'AppModule/FeaturesModule/SameModule/UsersService:find:1',
  same2: 'AppModule/FeaturesModule/SameModule/UsersService#2:find:1',
  catalog: 'CatalogService:list:1',
  primary: 'AppModule/FeaturesModule/PRIMARY_REPO.Repo:find:1',
  replica: 'AppModule/FeaturesModule/REPLICA_REPO.Repo:find:1',
  news: 'AppModule/FeaturesModule/NewsFeed.BaseFeed:latest:3',
  sports: 'AppModule/FeaturesModule/SportsFeed.BaseFeed:latest:3',
} as const;

/** Calls every cached service method once; answers what each returned and how many ran. */
export async function callEverything(app: {
  get<T>(token: Type<T> | string): T;
}): Promise<{ values: Record<string, unknown>; calls: number }> {
  const owners = {
    admin: () => app.get(AdminUsersService).find(1),
    shop: () => app.get(ShopUsersService).find(1),
    same1: () => app.get(FirstSameService).find(1),
    same2: () => app.get(SecondSameService).find(1),
    catalog: () => app.get(CatalogService).list(1),
    primary: () => app.get<Repo>(PRIMARY).find(1),
    replica: () => app.get<Repo>(REPLICA).find(1),
    news: () => app.get(NewsFeed).latest(3),
    sports: () => app.get(SportsFeed).latest(3),
  };
  const values: Record<string, unknown> = {};
  for (const [name, call] of Object.entries(owners)) values[name] = await call();
  const instances = [
    app.get(AdminUsersService),
    app.get(ShopUsersService),
    app.get(FirstSameService),
    app.get(SecondSameService),
    app.get(CatalogService),
    app.get<Repo>(PRIMARY),
    app.get<Repo>(REPLICA),
    app.get(NewsFeed),
    app.get(SportsFeed),
  ];
  return { values, calls: instances.reduce((sum, instance) => sum + instance.calls, 0) };
}

/** What each owner's method returns: every owner its own data. */
export const EXPECTED_VALUES = {
  admin: { from: 'admin', id: 1 },
  shop: { from: 'shop', id: 1 },
  same1: { from: 'same #1', id: 1 },
  same2: { from: 'same #2', id: 1 },
  catalog: { page: 1 },
  primary: { source: 'primary', id: 1 },
  replica: { source: 'replica', id: 1 },
  news: { feed: 'NewsFeed', count: 3 },
  sports: { feed: 'SportsFeed', count: 3 },
};
