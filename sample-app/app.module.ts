import { Module } from '@nestjs/common';
// The sample app imports the library from source; an application imports 'nestjs-cachekit'.
import { CacheModule } from '../lib';
import { ModelsModule } from './models/models.module';
import { meterProvider } from './ops/metrics';
import { OpsModule } from './ops/ops.module';
import { ProductsModule } from './products/products.module';
import { RatesModule } from './rates/rates.module';
import { SessionsModule } from './sessions/sessions.module';
import { SESSIONS_CACHE } from './sessions/sessions.service';
import { UsersModule } from './users/users.module';

/**
 * In-memory cache by default. Switch to Redis with environment variables only:
 * `CACHE_PROVIDER=redis CACHE_REDIS_URL=redis://127.0.0.1:6379 npm start`.
 */
@Module({
  imports: [
    // OpenTelemetry metrics on the sample app's own meter provider (served at GET /metrics).
    // A named cache for sessions: half an hour, Dates and Sets stored as they are.
    CacheModule.forRoot({
      isGlobal: true,
      metrics: { meterProvider },
      caches: { [SESSIONS_CACHE]: { ttl: 1800, serializer: 'rich' } },
    }),
    ProductsModule,
    ModelsModule,
    UsersModule,
    RatesModule,
    SessionsModule,
    OpsModule,
  ],
})
export class AppModule {}
