export * from './memory.adapter';
export * from './redis.adapter';
export * from '../tiers/circuit-breaker';
export * from './failover.adapter';
