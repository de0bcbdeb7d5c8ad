/** A signed-in user's session, as the sessions cache stores it (`serializer: 'rich'`). */
export interface Session {
  id: string;
  user: string;
  /** Kept as a `Set`: the rich serializer stores it as one and reads it back as one. */
  roles: Set<string>;
  /** Kept as `Date`s: read back as `Date`s, from memory and from Redis alike. */
  createdAt: Date;
  lastSeenAt: Date;
}
