import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module';

async function bootstrap(): Promise<void> {
  const app = await NestFactory.create(AppModule);
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port);
  Logger.log(
    `Sample app listening on http://localhost:${port} (try GET /products, GET /products/batch?ids=p1,p2, POST /sessions, GET /rates/EUR, GET /health, GET /metrics, GET /cache/stats)`,
    'Bootstrap',
  );
}

void bootstrap();
