import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { appModule, callEverything } from './default-keys-app';

/**
 * Run as its own process (`node -r ts-node/register/transpile-only default-keys-child.ts <url>
 * <namespace>`): boots the default-keys application on Redis, calls every cached method once
 * and exits, so the test process can check it computes the very same default keys.
 */
async function main(): Promise<void> {
  const [url, namespace] = process.argv.slice(2);
  const app = await NestFactory.createApplicationContext(
    appModule({ provider: 'redis', redis: { url }, namespace }),
    { logger: false },
  );
  await app.init();
  const { calls } = await callEverything(app);
  await app.close();
  process.stdout.write(JSON.stringify({ calls }));
}

main().catch((error: unknown) => {
  process.stderr.write(String((error as Error)?.stack ?? error));
  process.exitCode = 1;
});
