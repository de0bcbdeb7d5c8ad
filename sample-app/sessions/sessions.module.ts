import { Module } from '@nestjs/common';
import { SessionsController } from './sessions.controller';
import { SessionsService } from './sessions.service';

/**
 * Sessions in the named cache `sessions` (issue 17). Needs `CacheModule` to be global with that
 * cache declared: `caches: { sessions: { ttl: 1800, serializer: 'rich' } }`.
 */
@Module({ controllers: [SessionsController], providers: [SessionsService] })
export class SessionsModule {}
