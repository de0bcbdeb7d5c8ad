import { randomBytes } from 'node:crypto';
import { format } from 'node:util';
import {
  Injectable,
  Module,
  type DynamicModule,
  type INestApplicationContext,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import {
  BullMqDispatcher,
  CacheInvalidator,
  CacheModule,
  CacheService,
  InvalidationRule,
  KeyConstructor,
  argField,
  type CacheModuleOptions,
} from '../../lib';
import { registerInvalidation } from '../../lib/invalidation/invalidation.registry';
import { CapturingLogger } from '../support/logs';
import { freePort, rawCommand, RedisServer } from '../support/redis-server';

/**
 * Issue 10, item 9: a Redis password is never printed — not in config errors, connection
 * errors, driver errors relayed in our warnings, startup failures, `strict` errors, cluster or
 * sentinel descriptions — whatever characters it holds. Each password ends with a random
 * marker right after its awkward character; the test captures everything the application
 * writes (Nest's logger, every console method, stdout and stderr, and the errors it throws,
 * inspected with their stacks and properties) and checks that no marker appears.
 */

// The most telling first: the slower scenarios take only the first few.
const SPECIALS = [
  ' ',
  '\u00e4\u00f6\u00fc \u2713',
  '#',
  '%20',
  '@',
  '/',
  ':',
  '"\\',
  '?',
  '%',
  '  two spaces ',
  '%40',
  '%2F',
  '\ud83d\ude00',
  "'",
  '+',
  '&=',
  ';,',
  '[]',
  '\t',
];

interface Secret {
  /** The password as written in the URL's userinfo. */
  readonly raw: string;
  /** Text that appears nowhere unless (part of) the password leaked. */
  readonly marker: string;
}

/** One password per awkward character (`limit`: the first ones, for the slower scenarios). */
function secrets(limit = SPECIALS.length): Secret[] {
  return SPECIALS.slice(0, limit).map((special) => {
    // Letters only: a hex marker after '%' would be read as an escape.
    const marker = `mk${randomBytes(8)
      .toString('hex')
      .replace(/[0-9]/g, (d) => 'ghijklmnop'[Number(d)])}`;
    return { raw: `pw${special}${marker}`, marker };
  });
}

/** `true` when `new URL` accepts the password raw in a userinfo (and ioredis can decode it). */
function parses(raw: string): boolean {
  try {
    decodeURIComponent(new URL(`redis://u:${raw}@127.0.0.1:1/0`).password);
    return true;
  } catch {
    return false;
  }
}

/** Everything an application prints while `run` runs, plus the errors it throws. */
async function captureAll(
  run: (logger: CapturingLogger) => Promise<void>,
): Promise<{ text: string; logger: CapturingLogger }> {
  const logger = new CapturingLogger();
  const printed: string[] = [];
  const spies = [
    ...(['log', 'info', 'warn', 'error', 'debug', 'trace'] as const).map((method) =>
      jest.spyOn(console, method).mockImplementation((...args: unknown[]) => {
        printed.push(format(...args));
      }),
    ),
    ...([process.stdout, process.stderr] as const).map((stream) =>
      jest.spyOn(stream, 'write').mockImplementation((chunk: unknown) => {
        printed.push(String(chunk));
        return true;
      }),
    ),
  ];
  try {
    await run(logger);
  } catch (error) {
    printed.push(format('%O', error), String((error as Error)?.stack));
  } finally {
    // Late connection errors land after close; give them a moment to be captured too.
    await new Promise((resolve) => setTimeout(resolve, 20));
    for (const spy of spies) spy.mockRestore();
  }
  const logged = logger.lines.map((l) => `${l.level} ${l.context ?? ''} ${l.message}`);
  return { text: [...logged, ...printed].join('\n'), logger };
}

const FeedKey = KeyConstructor.define({
  namespace: 'feeds',
  fields: [argField('userId', { partition: true })],
});

@Injectable()
class Feeds {
  get(userId: number) {
    return userId;
  }
}
registerInvalidation(Feeds, 'get', FeedKey, [
  InvalidationRule({ event: 'post.created', fieldMapping: { userId: 'id' }, dispatcher: 'bullmq' }),
]);

function appModule(cache: DynamicModule, providers: unknown[] = []): DynamicModule {
  @Module({})
  class SecretsTestModule {}
  return { module: SecretsTestModule, imports: [cache], providers: providers as never[] };
}

/** Boots an application context (Nest logs startup failures itself), uses the cache, closes. */
async function exercise(logger: CapturingLogger, options: CacheModuleOptions): Promise<void> {
  const app: INestApplicationContext = await NestFactory.createApplicationContext(
    appModule(CacheModule.forRoot(options)),
    { logger, abortOnError: false },
  );
  try {
    await app.init();
    const cache = app.get(CacheService);
    await cache.set('k', 1);
    await cache.get('k');
    await cache.has('k');
    await cache.wrap('w', () => 2);
    await cache.deleteByPrefix('p');
    await cache.delete('k');
  } finally {
    await app.close();
  }
}

function expectNoLeak(text: string, secret: Secret, scenario: string): void {
  if (text.includes(secret.marker)) {
    throw new Error(
      `${scenario}: the password ${JSON.stringify(secret.raw)} leaked:\n` +
        text
          .split('\n')
          .filter((line) => line.includes(secret.marker))
          .slice(0, 5)
          .join('\n'),
    );
  }
}

describe('passwords never reach the logs or errors', () => {
  let closedPort: number;
  beforeAll(async () => {
    closedPort = await freePort();
  });

  it.each(['raw', 'percent-encoded'] as const)(
    'Redis unreachable, %s password in redis.url: without failover, with failover, strict',
    async (form) => {
      for (const secret of secrets()) {
        const password = form === 'raw' ? secret.raw : encodeURIComponent(secret.raw);
        const url = `redis://user:${password}@127.0.0.1:${closedPort}/0`;
        for (const extra of [{}, { failover: true }, { strict: true }] as CacheModuleOptions[]) {
          const { text, logger } = await captureAll((log) =>
            exercise(log, { provider: 'redis', redis: { url }, ...extra }),
          );
          expectNoLeak(text, secret, `${form} ${JSON.stringify(extra)}`);
          // Something was said (the warnings or the error): this is not a silent pass.
          expect(text.length).toBeGreaterThan(0);
          if (form === 'percent-encoded' && !('strict' in extra)) {
            expect(logger.warnings().join('\n')).toMatch(/Cannot reach Redis at redis:\/\/127/);
          }
        }
      }
    },
  );

  it('config errors on a URL with a password show the URL without it', async () => {
    for (const secret of secrets(12)) {
      for (const password of [secret.raw, encodeURIComponent(secret.raw)]) {
        const urls = [
          `redis://user:${password}@127.0.0.1:${closedPort}/db9x`,
          `http://user:${password}@127.0.0.1:${closedPort}`,
          `redis://user:${password}@127.0.0.1:99999999`,
          `redis://user:${password}@/0`,
        ];
        for (const url of urls) {
          for (const viaEnv of [false, true]) {
            const before = process.env.CACHE_REDIS_URL;
            if (viaEnv) process.env.CACHE_REDIS_URL = url;
            const { text } = await captureAll((logger) =>
              exercise(logger, { provider: 'redis', ...(viaEnv ? {} : { redis: { url } }) }),
            ).finally(() => {
              if (before === undefined) delete process.env.CACHE_REDIS_URL;
              else process.env.CACHE_REDIS_URL = before;
            });
            expectNoLeak(
              text,
              secret,
              `config error for ${viaEnv ? 'CACHE_REDIS_URL' : 'redis.url'}`,
            );
            expect(text).toMatch(/CacheConfigError|Cannot reach/);
          }
        }
      }
    }
  });

  it('CACHE_REDIS_URL, ioredis options, cluster nodes and sentinels carry the password too', async () => {
    for (const secret of secrets(6)) {
      const encoded = encodeURIComponent(secret.raw);
      const envRun = async (logger: CapturingLogger) => {
        const before = process.env.CACHE_REDIS_URL;
        process.env.CACHE_REDIS_URL = `redis://:${secret.raw}@127.0.0.1:${closedPort}`;
        try {
          await exercise(logger, { provider: 'redis' });
        } finally {
          if (before === undefined) delete process.env.CACHE_REDIS_URL;
          else process.env.CACHE_REDIS_URL = before;
        }
      };
      const runs: Array<[string, (logger: CapturingLogger) => Promise<void>]> = [
        ['CACHE_REDIS_URL', envRun],
        [
          'ioredis options',
          (logger) =>
            exercise(logger, {
              provider: 'redis',
              redis: { host: '127.0.0.1', port: closedPort, username: 'u', password: secret.raw },
            }),
        ],
        [
          'cluster',
          (logger) =>
            exercise(logger, {
              provider: 'redis',
              redis: {
                cluster: [`redis://:${encoded}@127.0.0.1:${closedPort}`],
                clusterOptions: { redisOptions: { password: secret.raw } },
              },
            }),
        ],
        [
          'sentinels',
          (logger) =>
            exercise(logger, {
              provider: 'redis',
              redis: {
                sentinels: [{ host: '127.0.0.1', port: closedPort }],
                name: 'mymaster',
                password: secret.raw,
                sentinelPassword: secret.raw,
                sentinelRetryStrategy: () => null,
              },
            }),
        ],
        [
          'password in the query',
          (logger) =>
            exercise(logger, {
              provider: 'redis',
              redis: { url: `redis://127.0.0.1:${closedPort}/0?password=${encoded}` },
            }),
        ],
      ];
      for (const [name, run] of runs) {
        const { text } = await captureAll(run);
        expectNoLeak(text, secret, name);
      }
    }
  });

  it('BullMQ connection URLs, valid or not', async () => {
    for (const secret of secrets(8)) {
      const { text } = await captureAll(async (logger) => {
        const dispatcher = new BullMqDispatcher({
          connection: { url: `redis://:${secret.raw}@127.0.0.1:${closedPort}/0` },
          worker: false,
          addTimeout: 200,
        });
        const app = await NestFactory.createApplicationContext(
          appModule(
            CacheModule.forRoot({ invalidation: { dispatchers: { bullmq: dispatcher } } }),
            [Feeds],
          ),
          { logger, abortOnError: false },
        );
        try {
          await app.init();
          await app.get(CacheInvalidator).publish('post.created', { id: 1 });
        } finally {
          await app.close();
        }
      });
      expectNoLeak(text, secret, 'bullmq');
    }
  });

  describe('a real redis-server that requires the password', () => {
    let server: RedisServer;
    const admin = `admin-${randomBytes(8).toString('hex')}`;
    beforeAll(async () => {
      server = await RedisServer.start({ args: ['--requirepass', admin] });
    });
    afterAll(async () => {
      await server.stop();
    });

    it('connects with every password the URL parser accepts, and never prints it', async () => {
      for (const secret of secrets()) {
        const urls = [`redis://:${encodeURIComponent(secret.raw)}@127.0.0.1:${server.port}/0`];
        if (parses(secret.raw)) urls.push(`redis://:${secret.raw}@127.0.0.1:${server.port}/0`);
        for (const url of urls) {
          // What ioredis sends: the URL's password, percent-decoded.
          const password = decodeURIComponent(new URL(url).password);
          const added = await rawCommand(
            server.port,
            ['ACL', 'SETUSER', 'default', `>${password}`],
            2000,
            false,
            admin,
          );
          expect(added).toContain('+OK');
          let read: unknown;
          const { text } = await captureAll(async (logger) => {
            const app = await NestFactory.createApplicationContext(
              appModule(CacheModule.forRoot({ provider: 'redis', redis: { url }, strict: true })),
              { logger, abortOnError: false },
            );
            try {
              await app.init();
              const cache = app.get(CacheService);
              await cache.set('k', 'v');
              read = await cache.get('k');
            } finally {
              await app.close();
            }
          });
          if (read !== 'v') throw new Error(`${url}: ${text}`);
          expectNoLeak(text, secret, `correct password ${url.includes('%') ? 'encoded' : 'raw'}`);
        }
      }
    });

    it('a wrong password is reported without it, at startup and on every call', async () => {
      for (const secret of secrets()) {
        const url = `redis://:${encodeURIComponent(`wrong-${secret.raw}`)}@127.0.0.1:${server.port}`;
        for (const extra of [{}, { failover: true }, { strict: true }] as CacheModuleOptions[]) {
          const { text } = await captureAll((logger) =>
            exercise(logger, { provider: 'redis', redis: { url }, ...extra }),
          );
          expectNoLeak(text, secret, `wrong password ${JSON.stringify(extra)}`);
          expect(text).toMatch(/WRONGPASS|NOAUTH|Cannot reach/);
        }
      }
    });
  });
});
