import { KeyConstructor, argField, constField } from '../../lib';

/**
 * `users:userId=42:view=full:v=1`. `userId` is the partition, so every cached payload of one
 * user can be wiped at once; bump `v` when the payload's shape changes.
 */
export const UserPayloadKey = KeyConstructor.define({
  namespace: 'users',
  fields: [argField('userId', { partition: true }), argField('view'), constField('v', 1)],
});

/** `user-stats:userId=42:v=1`, used by the function-level cache in `users.queries.ts`. */
export const UserStatsKey = KeyConstructor.define({
  namespace: 'user-stats',
  fields: [argField('userId', { partition: true }), constField('v', 1)],
});
