import { Body, Controller, Get, Post, UseInterceptors } from '@nestjs/common';
import { CacheStatusInterceptor } from '../../lib';
import { ModelsService } from './models.service';

/** `X-Cache` on `GET /models/count` reports the service's cached count. */
@Controller('models')
@UseInterceptors(CacheStatusInterceptor)
export class ModelsController {
  constructor(private readonly models: ModelsService) {}

  @Get('count')
  async count(): Promise<{ count: number }> {
    return { count: await this.models.count() };
  }

  @Post()
  create(@Body() body: { name?: string }): Promise<{ id: number; name: string }> {
    return this.models.create(body.name ?? 'unnamed');
  }
}
