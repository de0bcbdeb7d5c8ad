import { Injectable } from '@nestjs/common';
import { CacheInvalidator, Cacheable, InvalidationRule } from '../../lib';
import { User } from './user';
import { UserPayloadKey } from './users.keys';
import { UsersRepository } from './users.repository';

/** What `GET /users/:id` returns. */
export interface UserPayload {
  id: number;
  name: string;
  email?: string;
  view: string;
  renderedAt: string;
}

@Injectable()
export class UsersService {
  constructor(
    private readonly users: UsersRepository,
    private readonly invalidator: CacheInvalidator,
  ) {}

  /**
   * Cached per user and view. Saving the user (any view) drops all of that user's payloads:
   * the rule maps only the partition field, so the whole partition is wiped.
   */
  @Cacheable({
    key: UserPayloadKey,
    ttl: 300,
    invalidateOn: [InvalidationRule({ event: User, fieldMapping: { userId: 'id' } })],
  })
  async payload(userId: number, view = 'summary'): Promise<UserPayload> {
    const user = await this.users.findOne(userId);
    return {
      id: user.id,
      name: user.name,
      ...(view === 'full' ? { email: user.email } : {}),
      view,
      renderedAt: new Date().toISOString(),
    };
  }

  async rename(userId: number, name: string): Promise<User> {
    const user = await this.users.findOne(userId);
    user.name = name;
    return this.users.save(user);
  }

  /** Drops every cached payload of one user, whatever the view. */
  forget(userId: number): Promise<number> {
    return this.invalidator.wipePartition(UserPayloadKey, { userId });
  }

  get databaseReads(): number {
    return this.users.reads;
  }
}
