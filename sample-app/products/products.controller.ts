import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  NotFoundException,
  Param,
  Patch,
  Post,
  Put,
  Query,
  UseInterceptors,
} from '@nestjs/common';
import { CacheStatusInterceptor } from '../../lib';
import type { Product } from './product';
import { ProductsService } from './products.service';

/**
 * HTTP face of the catalog. Caching lives in {@link ProductsService}; the status interceptor
 * only reports it: `X-Cache: HIT` when every cached call a request made was a hit.
 */
@Controller('products')
@UseInterceptors(CacheStatusInterceptor)
export class ProductsController {
  constructor(private readonly products: ProductsService) {}

  @Get()
  list(@Query('category') category?: string): Promise<Product[]> {
    return category ? this.products.listByCategory(category) : this.products.list();
  }

  @Get(':id')
  async get(@Param('id') id: string): Promise<Product> {
    const product = await this.products.get(id);
    if (!product) throw new NotFoundException(`Product ${id} not found`);
    return product;
  }

  @Post()
  create(@Body() product: Product): Promise<Product> {
    return this.products.create(product);
  }

  @Put(':id')
  replace(@Param('id') id: string, @Body() product: Omit<Product, 'productId'>): Promise<Product> {
    return this.products.update(id, product);
  }

  @Patch(':id')
  update(@Param('id') id: string, @Body() data: Partial<Product>): Promise<Product> {
    return this.products.update(id, data);
  }

  @Delete(':id')
  @HttpCode(204)
  delete(@Param('id') id: string): Promise<void> {
    return this.products.delete(id);
  }

  @Delete()
  @HttpCode(204)
  clear(): Promise<void> {
    return this.products.clearCatalog();
  }
}
