/**
 * The one place that imports Nest's private paths. They are stable in practice (other official
 * modules use them), but if Nest moves them, this is the only file to change.
 */
import type { Module } from '@nestjs/core/injector/module';

export type { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper';
export type { Module as NestModule } from '@nestjs/core/injector/module';
export {
  INTERCEPTORS_METADATA,
  METHOD_METADATA,
  PATH_METADATA,
  RESPONSE_PASSTHROUGH_METADATA,
  ROUTE_ARGS_METADATA,
  SSE_METADATA,
} from '@nestjs/common/constants';
export { RouteParamtypes } from '@nestjs/common/enums/route-paramtypes.enum';

/**
 * The application's root module: the one Nest itself takes as the root when it measures module
 * distances (the first module it registers after its own `InternalCoreModule`).
 */
export function rootModuleOf(modules: Iterable<Module>): Module | undefined {
  for (const module of modules) {
    if (module.metatype?.name !== 'InternalCoreModule') return module;
  }
  return undefined;
}
