import {
  BadRequestException,
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
/** The most ids `GET /products/batch` takes (a bound on the work one request can ask for). */
const MAX_BATCH = 100;

@Controller('products')
@UseInterceptors(CacheStatusInterceptor)
export class ProductsController {
  constructor(private readonly products: ProductsService) {}

  @Get()
  list(@Query('category') category?: string): Promise<Product[]> {
    return category ? this.products.listByCategory(category) : this.products.list();
  }

  /** `GET /products/batch?ids=p1,p2,p9`: the products in that order, `null` for unknown ids. */
  @Get('batch')
  batch(@Query('ids') ids = ''): Promise<Array<Product | null>> {
    const list = ids.split(',').filter((id) => id !== '');
    if (list.length === 0)
      throw new BadRequestException('ids: give one or more product ids, comma-separated');
    if (list.length > MAX_BATCH)
      throw new BadRequestException(`ids: at most ${MAX_BATCH} per request`);
    return this.products.getMany(list);
  }

  /** `POST /products/import` with an array of products: stores them and caches each one. */
  @Post('import')
  async import(@Body() products: Product[]): Promise<{ imported: number }> {
    if (!Array.isArray(products)) throw new BadRequestException('expected an array of products');
    return { imported: await this.products.importMany(products) };
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
