import { Controller, Get, Header } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
// The sample app imports the library from source; an application imports 'nestjs-cachekit'.
import { CacheHealthIndicator, CacheService, type CacheStats } from '../../lib';
import { prometheusText } from './metrics';

/** What an operator looks at: health (Terminus), metrics (Prometheus text) and cache stats. */
@Controller()
export class OpsController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly cacheHealth: CacheHealthIndicator,
    private readonly cache: CacheService,
  ) {}

  /** 200 while the cache serves (degraded included), 503 when it is down. */
  @Get('health')
  @HealthCheck()
  check() {
    return this.health.check([() => this.cacheHealth.isHealthy('cache', { timeout: 500 })]);
  }

  /** Every instrument of the app's meter provider, for Prometheus to scrape. */
  @Get('metrics')
  @Header('Content-Type', 'text/plain; version=0.0.4; charset=utf-8')
  metrics(): Promise<string> {
    return prometheusText();
  }

  /** The cache's counters and the state of its tiers. */
  @Get('cache/stats')
  stats(): CacheStats {
    return this.cache.stats();
  }
}
