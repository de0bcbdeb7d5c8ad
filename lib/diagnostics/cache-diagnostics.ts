import {
  Inject,
  Injectable,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { CACHE_MODULE_OPTIONS } from '../config/cache.constants';
import type { ResolvedCacheOptions } from '../config/cache-options.resolver';
import { CacheStack } from '../core/cache-stack';
import { startCacheMetrics } from './cache-metrics';
import { findEventEmitter, type EventEmitterLike } from './event-emitter.bridge';
import { EventForwarder } from './event-forwarder';

type Emitting = EventEmitterLike & Required<Pick<EventEmitterLike, 'emit'>>;

/**
 * Starts what reports on the cache beyond its own events and stats: the OpenTelemetry
 * instruments (`metrics`, at module init: a missing `@opentelemetry/api` fails startup) and the
 * forwarding of events to `@nestjs/event-emitter` (at bootstrap, once the application's
 * listeners are subscribed). Stops both at shutdown. @internal
 */
@Injectable()
export class CacheDiagnostics
  implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown
{
  private metrics: { stop(): void } | undefined;
  private forwarder: EventForwarder | undefined;

  constructor(
    private readonly stack: CacheStack,
    @Inject(CACHE_MODULE_OPTIONS) private readonly options: ResolvedCacheOptions,
    private readonly moduleRef: ModuleRef,
  ) {}

  onModuleInit(): void {
    if (this.options.metrics && !this.metrics) {
      this.metrics = startCacheMetrics(this.stack, this.options.metrics);
    }
  }

  onApplicationBootstrap(): void {
    if (!this.options.eventEmitter || this.forwarder) return;
    const emitter = findEventEmitter(this.moduleRef);
    if (!emitter || typeof emitter.emit !== 'function') return;
    this.forwarder = new EventForwarder(this.stack.events, emitter as Emitting);
    this.forwarder.start();
  }

  onApplicationShutdown(): void {
    this.metrics?.stop();
    this.metrics = undefined;
    this.forwarder?.stop();
    this.forwarder = undefined;
  }
}
