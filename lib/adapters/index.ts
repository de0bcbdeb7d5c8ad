export * from './memory.adapter';
export * from './redis.adapter';
