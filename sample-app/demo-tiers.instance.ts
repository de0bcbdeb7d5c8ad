import 'reflect-metadata';
import { readFileSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Injectable, Module, NotFoundException, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
// The sample app imports the library from source; an application imports 'nestjs-cachekit'.
import { CacheModule } from '../lib';
import { User } from './users/user';
import { UsersController } from './users/users.controller';
import { UsersRepository } from './users/users.repository';
import { UsersService } from './users/users.service';

/**
 * One instance of the two-tier demo (`npm run demo:tiers`, see `demo-tiers.ts`), started by the
 * demo as its own Node process with an IPC channel. It is the sample app's users feature
 * (`GET /users/:id` cached with `@Cacheable`, `PATCH /users/:id` saving the user and dropping
 * its cached payloads through an invalidation rule) on
 * `CacheModule.forRoot({ provider: 'redis', l1: true })`, listening on a free loopback port.
 *
 * Environment: `DEMO_REDIS_URL`, `DEMO_NAMESPACE`, `DEMO_DB` (the JSON file both instances
 * use as their database) and `DEMO_NAME` (the instance's name in log lines).
 */

/** What an instance tells the demo once it listens. */
export interface DemoInstanceReady {
  ready: true;
  port: number;
}

/** Reads a required environment variable. */
function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: start this file through demo-tiers.ts`);
  return value;
}

/** A user row as stored in the shared JSON "database". */
interface UserRow {
  id: number;
  name: string;
  email: string;
}

/**
 * The sample's users repository over one JSON file shared by both instances, so that a save in
 * one instance is what the other loads, as with a real database. Saving still publishes the
 * `User` event, whose invalidation rule drops the user's cached payloads.
 */
@Injectable()
export class SharedUsersRepository extends UsersRepository {
  private readonly file = env('DEMO_DB');

  override async findOne(id: number): Promise<User> {
    this.reads++;
    await new Promise((resolve) => setTimeout(resolve, 50)); // a slow query
    const row = this.table().find((candidate) => candidate.id === id);
    if (!row) throw new NotFoundException(`User ${id} not found`);
    return new User(row.id, row.name, row.email);
  }

  override async save(user: User): Promise<User> {
    const rows = this.table().filter((row) => row.id !== user.id);
    rows.push({ id: user.id, name: user.name, email: user.email });
    writeFileSync(this.file, JSON.stringify(rows));
    return super.save(user); // publishes the "User saved" event
  }

  private table(): UserRow[] {
    return JSON.parse(readFileSync(this.file, 'utf8')) as UserRow[];
  }
}

/** The users feature on a two-tier cache: L1 in this process, L2 in Redis, a pub/sub bus. */
@Module({
  imports: [
    CacheModule.forRoot({
      isGlobal: true,
      provider: 'redis',
      redis: { url: env('DEMO_REDIS_URL') },
      namespace: env('DEMO_NAMESPACE'),
      l1: true,
    }),
  ],
  controllers: [UsersController],
  providers: [UsersService, { provide: UsersRepository, useClass: SharedUsersRepository }],
})
export class DemoInstanceModule {}

async function main(): Promise<void> {
  const app: INestApplication = await NestFactory.create(DemoInstanceModule, {
    logger: ['error', 'warn'],
  });
  app.enableShutdownHooks();
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  // Never outlive the demo: it closes the IPC channel when it ends, however it ends.
  process.once('disconnect', () => void app.close());
  const ready: DemoInstanceReady = { ready: true, port };
  process.send?.(ready);
}

main().catch((error: unknown) => {
  console.error(`[${process.env.DEMO_NAME ?? 'instance'}]`, error);
  process.exitCode = 1;
  process.disconnect?.();
});
