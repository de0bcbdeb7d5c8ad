import { Injectable } from '@nestjs/common';
import { CacheService, Cacheable } from '../../lib';

/**
 * The webfluid seed's "model count": counting is expensive, so the count is cached for a
 * minute (`@Cacheable`) and dropped by hand, with `CacheService`, whenever a model is created.
 */
@Injectable()
export class ModelsService {
  /** A few models to start from. */
  private readonly models: Array<{ id: number; name: string }> = [
    { id: 1, name: 'resnet' },
    { id: 2, name: 'bert' },
    { id: 3, name: 'whisper' },
  ];
  /** How many times the (expensive) count really ran. */
  countQueries = 0;

  constructor(private readonly cache: CacheService) {}

  /** Kept warm for a minute. */
  @Cacheable('model:count', { ttl: 60 })
  async count(): Promise<number> {
    this.countQueries++;
    return this.models.length;
  }

  async create(name: string): Promise<{ id: number; name: string }> {
    const model = { id: this.models.length + 1, name };
    this.models.push(model);
    // Whenever a model is created, drop the stale count.
    await this.cache.delete('model:count');
    return model;
  }
}
