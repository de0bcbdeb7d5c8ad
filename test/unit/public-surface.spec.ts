import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as lib from '../../lib';

// The surface itself is recorded in etc/nestjs-cachekit.api.md (API Extractor, checked by CI);
// this spec keeps internals from reaching it at run time too.
describe('public surface (lib/index.ts)', () => {
  it('names its exports explicitly: no export * in the entry point', () => {
    const source = readFileSync(join(__dirname, '../../lib/index.ts'), 'utf8');
    expect(source).not.toMatch(/^export \*/m);
  });

  it.each([
    'CircuitBreaker',
    'FAILOVER_DEFAULTS',
    'escapeGlob',
    'redisKey',
    'CacheMetadataAccessor',
    'registerInvalidation',
    'resolveCacheOptions',
    'CacheStack',
    'ttlProblem',
  ])('does not export the internal %s', (name) => {
    expect(name in lib).toBe(false);
  });

  it.each([
    'CacheModule',
    'CacheService',
    'CacheAdapter',
    'MemoryCacheAdapter',
    'RedisCacheAdapter',
    'FailoverCacheAdapter',
    'Cacheable',
    'CachePut',
    'CacheEvict',
    'CacheInterceptor',
    'CacheStatusInterceptor',
    'CacheKey',
    'CacheTTL',
    'CachePerUser',
    'KeyConstructor',
    'argField',
    'constField',
    'cacheResult',
    'InvalidationRule',
    'InlineDispatcher',
    'DeferredDispatcher',
    'BullMqDispatcher',
    'CacheInvalidator',
    'attachTypeOrmInvalidation',
    'typeOrmInvalidationProvider',
    'CacheConfigError',
  ])('exports %s', (name) => {
    expect(lib[name as keyof typeof lib]).toBeDefined();
  });
});
