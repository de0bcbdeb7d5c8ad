import { randomUUID } from 'node:crypto';
import { Injectable } from '@nestjs/common';
// The sample app imports the library from source; an application imports 'nestjs-cachekit'.
import { CacheService, InjectCache } from '../../lib';
import type { Session } from './session';

/** The name of the sessions cache, as `caches` in `AppModule` declares it. */
export const SESSIONS_CACHE = 'sessions';

/**
 * Sessions in their own named cache (`caches: { sessions: { ttl: 1800, serializer: 'rich' } }`):
 * half an hour from the last request, in the namespace `cache.sessions` (a `clear()` of the
 * default cache never signs anyone out), with `Date`s and a `Set` stored as they are.
 */
@Injectable()
export class SessionsService {
  constructor(@InjectCache(SESSIONS_CACHE) private readonly sessions: CacheService) {}

  async create(user: string, roles: readonly string[]): Promise<Session> {
    const now = new Date();
    const session: Session = {
      id: randomUUID(),
      user,
      roles: new Set(roles),
      createdAt: now,
      lastSeenAt: now,
    };
    await this.sessions.set(this.key(session.id), session);
    return session;
  }

  /** The session, its idle time restarted; `undefined` when it expired or never was. */
  async touch(id: string): Promise<Session | undefined> {
    const session = await this.sessions.get<Session>(this.key(id));
    if (!session) return undefined;
    session.lastSeenAt = new Date();
    await this.sessions.set(this.key(id), session);
    return session;
  }

  async end(id: string): Promise<boolean> {
    return this.sessions.delete(this.key(id));
  }

  private key(id: string): string {
    return `session:${id}`;
  }
}
