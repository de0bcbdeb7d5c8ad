import { Injectable, NotFoundException } from '@nestjs/common';
// The sample app imports the library from source; an application imports 'nestjs-cachekit'.
import { CacheEvict, CachePut, CacheService, Cacheable } from '../../lib';
import type { Product } from './product';

const PRODUCT_TTL = 900; // 15 minutes
const CATEGORY_TTL = 300; // 5 minutes

/** What the catalog holds when the sample app starts, so the first `curl` shows something. */
export const SEED: readonly Product[] = [
  { productId: 'p1', name: 'Widget', price: 29.99, category: 'gadgets' },
  { productId: 'p2', name: 'Lamp', price: 15, category: 'home' },
  { productId: 'p3', name: 'Gizmo', price: 9.5, category: 'gadgets' },
];

/**
 * The PyFly seed's "Complete Example: Product Catalog Service", with declarative caching:
 * lookups are cached, writes refresh the product's entry (`@CachePut`) and drop the cached
 * lists (`@CacheEvict` on the `products:` prefix), deletes evict, clearing the catalog clears
 * the cache. No CacheService in sight: the decorators find this application's cache.
 */
@Injectable()
export class ProductsService {
  /** Simulated database, with a few products to start from. */
  private readonly db = new Map<string, Product>(
    SEED.map((product) => [product.productId, { ...product }]),
  );
  /** How many times the "database" was read, so the cache's effect is visible. */
  dbReads = 0;

  constructor(private readonly cache: CacheService) {}

  /** Fetch a product by id; cached for 15 minutes. A missing product is not cached. */
  @Cacheable('product:{productId}', { ttl: PRODUCT_TTL, unless: (p: Product | null) => p === null })
  async get(productId: string): Promise<Product | null> {
    return this.read(() => this.copy(this.db.get(productId)) ?? null);
  }

  /**
   * Several products by id (`GET /products/batch?ids=p1,p2`), in the order asked, `null` for an
   * unknown one: the batch form. Each product is cached under the same key as {@link get}, so a
   * product read either way is a hit for both; the method runs once, with only the ids that
   * missed (one "database" read for them all). Unknown products are not cached.
   */
  @Cacheable('product:{productIds}', {
    ttl: PRODUCT_TTL,
    batch: true,
    unless: (p: Product | null) => p === null,
  })
  async getMany(productIds: string[]): Promise<Array<Product | null>> {
    return this.read(() => productIds.map((id) => this.copy(this.db.get(id)) ?? null));
  }

  /**
   * Imports products (`POST /products/import`): stores them, then writes all their cache entries
   * in one call (`setMany`: one round trip to Redis) and drops the cached lists.
   */
  async importMany(products: Product[]): Promise<number> {
    for (const product of products) this.db.set(product.productId, { ...product });
    await this.cache.setMany(
      products.map((product) => ({
        key: `product:${product.productId}`,
        value: product,
        ttl: PRODUCT_TTL,
      })),
    );
    await this.cache.deleteByPrefix('products:');
    return products.length;
  }

  /** Every product; cached for 5 minutes. */
  @Cacheable('products:all', { ttl: CATEGORY_TTL })
  async list(): Promise<Product[]> {
    return this.read(() => [...this.db.values()].map((p) => ({ ...p })));
  }

  /** Products of one category; cached for 5 minutes. */
  @Cacheable('products:category:{category}', { ttl: CATEGORY_TTL })
  async listByCategory(category: string): Promise<Product[]> {
    return this.read(() =>
      [...this.db.values()].filter((p) => p.category === category).map((p) => ({ ...p })),
    );
  }

  /** Create a product: always runs, caches the result, drops the cached lists. */
  @CachePut('product:{product.productId}', { ttl: PRODUCT_TTL })
  @CacheEvict({ prefix: 'products:' })
  async create(product: Product): Promise<Product> {
    this.db.set(product.productId, { ...product });
    return { ...product };
  }

  /** Update a product: always runs, then refreshes its cache entry and drops the lists. */
  @CachePut('product:{productId}', { ttl: PRODUCT_TTL })
  @CacheEvict({ prefix: 'products:' })
  async update(productId: string, data: Partial<Omit<Product, 'productId'>>): Promise<Product> {
    const existing = this.db.get(productId);
    if (!existing) throw new NotFoundException(`Product ${productId} not found`);
    Object.assign(existing, data, { productId });
    return { ...existing };
  }

  /** Delete a product and evict its entry (and the lists). */
  @CacheEvict({ key: 'product:{productId}' })
  @CacheEvict({ prefix: 'products:' })
  async delete(productId: string): Promise<void> {
    this.db.delete(productId);
  }

  /** Remove all products and clear the cache. */
  @CacheEvict({ allEntries: true })
  async clearCatalog(): Promise<void> {
    this.db.clear();
  }

  private read<T>(query: () => T): T {
    this.dbReads++;
    return query();
  }

  /** The "database" hands out copies, as a real one would. */
  private copy(product: Product | undefined): Product | undefined {
    return product && { ...product };
  }
}
