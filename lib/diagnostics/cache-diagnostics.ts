import {
  Inject,
  Injectable,
  type OnApplicationBootstrap,
  type OnApplicationShutdown,
  type OnModuleInit,
} from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { CACHE_MODULE_OPTIONS, CACHE_NAMED_STACKS } from '../config/cache.constants';
import type { NamedStacks } from '../core/named-stacks';
import type { ResolvedCacheOptions } from '../config/cache-options.resolver';
import { CacheStack } from '../core/cache-stack';
import { startCacheMetrics } from './cache-metrics';
import { findEventEmitter, type EventEmitterLike } from './event-emitter.bridge';
import { EventForwarder } from './event-forwarder';

type Emitting = EventEmitterLike & Required<Pick<EventEmitterLike, 'emit'>>;

/**
 * Starts what reports on the caches (the module's own and each named one) beyond its own events and stats: the OpenTelemetry
 * instruments (`metrics`, at module init: a missing `@opentelemetry/api` fails startup) and the
 * forwarding of events to `@nestjs/event-emitter` (at bootstrap, once the application's
 * listeners are subscribed). Stops both at shutdown. @internal
 */
@Injectable()
export class CacheDiagnostics
  implements OnModuleInit, OnApplicationBootstrap, OnApplicationShutdown
{
  private metrics: Array<{ stop(): void }> | undefined;
  private forwarders: EventForwarder[] | undefined;

  constructor(
    private readonly stack: CacheStack,
    @Inject(CACHE_MODULE_OPTIONS) private readonly options: ResolvedCacheOptions,
    private readonly moduleRef: ModuleRef,
    @Inject(CACHE_NAMED_STACKS) private readonly named: NamedStacks,
  ) {}

  /** The module's own stack, then each named cache's (each reports under its own name). */
  private stacks(): CacheStack[] {
    return [this.stack, ...this.named.all().map((cache) => cache.stack)];
  }

  onModuleInit(): void {
    const metrics = this.options.metrics;
    if (metrics && !this.metrics) {
      this.metrics = this.stacks().map((stack) => startCacheMetrics(stack, metrics));
    }
  }

  onApplicationBootstrap(): void {
    if (!this.options.eventEmitter || this.forwarders) return;
    const emitter = findEventEmitter(this.moduleRef);
    if (!emitter || typeof emitter.emit !== 'function') return;
    this.forwarders = this.stacks().map(
      (stack) => new EventForwarder(stack.events, emitter as Emitting),
    );
    for (const forwarder of this.forwarders) forwarder.start();
  }

  onApplicationShutdown(): void {
    for (const handle of this.metrics ?? []) handle.stop();
    this.metrics = undefined;
    for (const forwarder of this.forwarders ?? []) forwarder.stop();
    this.forwarders = undefined;
  }
}
