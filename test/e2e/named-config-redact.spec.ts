import { CacheModule, type CacheModuleOptions } from '../../lib';
import { Test } from '@nestjs/testing';

async function failure(options: unknown): Promise<string> {
  return Test.createTestingModule({ imports: [CacheModule.forRoot(options as CacheModuleOptions)] })
    .compile()
    .then(
      async (ref) => {
        await ref.close();
        return 'compiled';
      },
      (e: unknown) => (e as Error).message,
    );
}

describe('config errors of named caches never show a password', () => {
  it.each([
    ['caches as a URL', { caches: 'redis://u:s3cretPW@h:6379' }],
    ['a cache as a URL', { caches: { sessions: 'redis://u:s3cretPW@h:6379' } }],
    [
      'a cache redis as a URL',
      { caches: { sessions: { provider: 'redis', redis: 'redis://u:s3cretPW@h:6379' } } },
    ],
    ['a bad namespace', { caches: { sessions: { namespace: 'redis://u:s3cretPW@h' } } }],
    ['a bad option', { caches: { sessions: { ttl: 'redis://u:s3cretPW@h' } } }],
    ['a bad name', { caches: { 'redis://u:s3cretPW@h': {} } }],
  ])('%s', async (_label, options) => {
    const message = await failure(options);
    expect(message).not.toBe('compiled');
    expect(message).not.toContain('s3cretPW');
  });
});
