export * from './memory.adapter';
export * from './redis.adapter';
export * from './circuit-breaker';
export * from './failover.adapter';
