import {
  Body,
  Controller,
  Delete,
  Get,
  Param,
  ParseIntPipe,
  Patch,
  Query,
  UseInterceptors,
} from '@nestjs/common';
import { CacheStatusInterceptor } from '../../lib';
import { computeUserStats } from './users.queries';
import { UsersService, type UserPayload } from './users.service';

/**
 * Caching lives in {@link UsersService} and in `computeUserStats`; the status interceptor
 * reports it as `X-Cache: HIT | MISS` on the routes that made a cached call.
 */
@Controller('users')
@UseInterceptors(CacheStatusInterceptor)
export class UsersController {
  constructor(private readonly users: UsersService) {}

  /** `GET /users/1?view=full`: cached; the second call does not read the "database". */
  @Get(':id')
  async get(
    @Param('id', ParseIntPipe) id: number,
    @Query('view') view?: string,
  ): Promise<UserPayload & { databaseReads: number }> {
    const payload = await this.users.payload(id, view ?? 'summary');
    return { ...payload, databaseReads: this.users.databaseReads };
  }

  /** `PATCH /users/1 {"name":"Ada King"}`: saves and invalidates every cached view of user 1. */
  @Patch(':id')
  rename(@Param('id', ParseIntPipe) id: number, @Body('name') name: string) {
    return this.users.rename(id, name);
  }

  /** `GET /users/1/stats`: a function-level cache (`cacheResult`), dropped on save too. */
  @Get(':id/stats')
  stats(@Param('id', ParseIntPipe) id: number) {
    return computeUserStats(id);
  }

  /** `DELETE /users/1/cache`: wipes the user's partition; answers how many entries went. */
  @Delete(':id/cache')
  async forget(@Param('id', ParseIntPipe) id: number): Promise<{ deleted: number }> {
    return { deleted: await this.users.forget(id) };
  }
}
