import { Body, Controller, Get, Post } from '@nestjs/common';
import { ModelsService } from './models.service';

@Controller('models')
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
