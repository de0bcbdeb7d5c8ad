import { Injectable, Module } from '@nestjs/common';
// @nestjs/cache-manager 3 also exports `Cache`: an abstract class that is a provider token for
// the same object as CACHE_MANAGER, so a service can inject it by type, without `@Inject`.
import { Cache, CacheModule } from '../../../lib';

/** A service injecting the cache by its class, as @nestjs/cache-manager 3 allows. */
@Injectable()
export class ByClassStore {
  constructor(readonly cache: Cache) {}
}

/** The application of the scenario: `register({ ttl })` in ms, and the service above. */
@Module({ imports: [CacheModule.register({ ttl: 4000 })], providers: [ByClassStore] })
export class ByClassModule {}
