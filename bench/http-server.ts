/**
 * One HTTP server per benchmark contender, in its own process so the load generator does not
 * share its event loop. Usage: http-server.ts <mode> <port>; prints "ready" when listening.
 * Modes: constant | cacheable | interceptor | nest-cache-manager | interceptor-floor.
 */
import 'reflect-metadata';
import {
  Controller,
  Get,
  Module,
  Param,
  UseInterceptors,
  type NestInterceptor,
  type Type,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  CacheInterceptor as NestCacheInterceptor,
  CacheModule as NestCacheModule,
} from '@nestjs/cache-manager';
import { of } from 'rxjs';
import { Cacheable, CacheInterceptor, CacheModule } from '../lib';

const [mode = 'constant', portArg = '3100'] = process.argv.slice(2);
const stats = { runs: 0 };
const payload = (id: string) => ({ id, name: `Product ${id}`, price: 9.99, tags: ['a', 'b'] });

@Controller()
class StatsController {
  @Get('stats')
  stats() {
    return stats;
  }
}

@Controller('item')
class ConstantController {
  @Get(':id')
  get(@Param('id') id: string) {
    stats.runs++;
    return payload(id);
  }
}

@Controller('item')
class CacheableController {
  @Get(':id')
  @Cacheable('item:{id}', { ttl: 600 })
  get(@Param('id') id: string) {
    stats.runs++;
    return payload(id);
  }
}

@Controller('item')
@UseInterceptors(CacheInterceptor)
class InterceptorController {
  @Get(':id')
  get(@Param('id') id: string) {
    stats.runs++;
    return payload(id);
  }
}

@Controller('item')
@UseInterceptors(NestCacheInterceptor)
class NestCacheManagerController {
  @Get(':id')
  get(@Param('id') id: string) {
    stats.runs++;
    return payload(id);
  }
}

/**
 * The fastest answer any interceptor-based cache can give: a constant, without calling the
 * handler or looking anything up. Only Nest's interceptor pipeline is left.
 */
class ConstantInterceptor implements NestInterceptor {
  intercept() {
    return of(payload('hot'));
  }
}

@Controller('item')
@UseInterceptors(ConstantInterceptor)
class InterceptorFloorController {
  @Get(':id')
  get(@Param('id') id: string) {
    stats.runs++;
    return payload(id);
  }
}

const setups: Record<string, { controller: Type; imports: unknown[] }> = {
  constant: { controller: ConstantController, imports: [] },
  cacheable: { controller: CacheableController, imports: [CacheModule.forRoot({ ttl: 600 })] },
  interceptor: { controller: InterceptorController, imports: [CacheModule.forRoot({ ttl: 600 })] },
  'nest-cache-manager': {
    controller: NestCacheManagerController,
    imports: [NestCacheModule.register({ ttl: 600_000 })],
  },
  'interceptor-floor': { controller: InterceptorFloorController, imports: [] },
};

async function main(): Promise<void> {
  const setup = setups[mode];
  if (!setup) throw new Error(`unknown mode ${mode}`);
  @Module({ imports: setup.imports as never[], controllers: [StatsController, setup.controller] })
  class BenchModule {}
  const app = await NestFactory.create(BenchModule, { logger: false });
  await app.listen(Number(portArg), '127.0.0.1');
  process.stdout.write('ready\n');
  process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
}

void main();
