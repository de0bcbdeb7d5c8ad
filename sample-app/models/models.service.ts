import { Injectable } from '@nestjs/common';
import { CacheService } from '../../lib';

/**
 * The webfluid seed's "model count": counting is expensive, so the count is cached for a
 * minute and dropped whenever a model is created.
 */
@Injectable()
export class ModelsService {
  private readonly models: Array<{ id: number; name: string }> = [];
  /** How many times the (expensive) count really ran. */
  countQueries = 0;

  constructor(private readonly cache: CacheService) {}

  async count(): Promise<number> {
    const cached = await this.cache.get<number>('model:count');
    if (cached !== undefined) return cached;
    this.countQueries++;
    const total = this.models.length;
    // Keep it warm for a minute.
    await this.cache.set('model:count', total, 60);
    return total;
  }

  async create(name: string): Promise<{ id: number; name: string }> {
    const model = { id: this.models.length + 1, name };
    this.models.push(model);
    // Whenever a model is created, drop the stale count.
    await this.cache.delete('model:count');
    return model;
  }
}
