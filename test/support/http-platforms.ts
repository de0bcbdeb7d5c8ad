import type { INestApplication, LoggerService, ModuleMetadata } from '@nestjs/common';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { Test } from '@nestjs/testing';

/** The HTTP platforms every HTTP e2e suite runs on. */
export const PLATFORMS = ['express', 'fastify'] as const;
export type Platform = (typeof PLATFORMS)[number];

/** Compiles `metadata` into an initialised HTTP application on `platform`. */
export async function createHttpApp(
  platform: Platform,
  metadata: ModuleMetadata,
  logger: LoggerService | false = false,
): Promise<INestApplication> {
  const moduleRef = await Test.createTestingModule(metadata).compile();
  if (platform === 'express') {
    const app = moduleRef.createNestApplication({ logger });
    await app.init();
    return app;
  }
  const app = moduleRef.createNestApplication<NestFastifyApplication>(new FastifyAdapter(), {
    logger,
  });
  await app.init();
  await app.getHttpAdapter().getInstance().ready();
  return app;
}
