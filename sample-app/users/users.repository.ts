import { Injectable, NotFoundException } from '@nestjs/common';
import { CacheInvalidator } from '../../lib';
import { User } from './user';

/**
 * An in-memory stand-in for an ORM repository, so the sample runs without a database. Like the
 * TypeORM subscriber would, it publishes the saved entity once the write is done; every
 * `invalidateOn` rule listening to `User` then drops the stale entries.
 */
@Injectable()
export class UsersRepository {
  private readonly rows = new Map<number, User>([
    [1, new User(1, 'Ada Lovelace', 'ada@example.com')],
    [2, new User(2, 'Alan Turing', 'alan@example.com')],
    [3, new User(3, 'Grace Hopper', 'grace@example.com')],
  ]);
  /** How many times the "database" was read, so the cache's effect is visible. */
  reads = 0;

  constructor(private readonly invalidator: CacheInvalidator) {}

  async findOne(id: number): Promise<User> {
    this.reads++;
    await new Promise((resolve) => setTimeout(resolve, 50)); // a slow query
    const row = this.rows.get(id);
    if (!row) throw new NotFoundException(`User ${id} not found`);
    return new User(row.id, row.name, row.email);
  }

  async save(user: User): Promise<User> {
    this.rows.set(user.id, new User(user.id, user.name, user.email));
    // The "entity saved" event (with TypeORM: attachTypeOrmInvalidation does this after commit).
    await this.invalidator.publish(User, user);
    return user;
  }
}
