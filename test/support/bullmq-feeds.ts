import { Injectable } from '@nestjs/common';
import { InvalidationRule, KeyConstructor, argField } from '../../lib';
import { registerInvalidation } from '../../lib/invalidation/invalidation.registry';

/**
 * The fixture of the BullMQ invalidation suites: a feed cached per user and page, dropped for
 * a user (their partition) when `post.created` is published with their `authorId`, through the
 * dispatcher named `bullmq`.
 */
export const FeedKey = KeyConstructor.define({
  namespace: 'feeds',
  fields: [argField('userId', { partition: true }), argField('page')],
});

@Injectable()
export class Feeds {
  get(userId: number, page: number) {
    return `${userId}:${page}`;
  }
}
registerInvalidation(Feeds, 'get', FeedKey, [
  InvalidationRule({
    event: 'post.created',
    fieldMapping: { userId: 'authorId' },
    dispatcher: 'bullmq',
  }),
]);

/** The key of one user's feed page. */
export const keyOf = (userId: number, page: number) => FeedKey.render({ userId, page });
