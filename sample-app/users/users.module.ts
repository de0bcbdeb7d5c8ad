import { Module } from '@nestjs/common';
import { UsersController } from './users.controller';
import { UsersRepository } from './users.repository';
import { UsersService } from './users.service';

/**
 * A user payload cached with a `KeyConstructor` and invalidated when the user is saved
 * (issue 5). Needs `CacheModule` to be global (or imported here).
 */
@Module({
  controllers: [UsersController],
  providers: [UsersRepository, UsersService],
})
export class UsersModule {}
