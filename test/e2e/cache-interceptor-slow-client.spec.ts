import { Controller, Get, UseInterceptors, type INestApplication } from '@nestjs/common';
import { connect, type Socket } from 'node:net';
import request from 'supertest';
import { CacheInterceptor, CacheModule } from '../../lib';
import { createHttpApp, PLATFORMS } from '../support/http-platforms';

/**
 * Whether a response is stored is decided when its headers are written, not when its body has
 * been flushed: a client that never reads its (large) response must not hold up the other
 * requests for the same URL, which join the first one's run.
 */

// Far more than the socket buffers hold, so the paused client's response never finishes.
const BIG = 'x'.repeat(30 * 1024 * 1024);

let runs = 0;

@Controller('big')
@UseInterceptors(CacheInterceptor)
class BigController {
  @Get()
  get(): { n: number; data: string } {
    return { n: ++runs, data: BIG };
  }
}

describe.each(PLATFORMS)('CacheInterceptor with a client that does not read (%s)', (platform) => {
  let app: INestApplication;
  let stalled: Socket | undefined;

  beforeEach(async () => {
    runs = 0;
    app = await createHttpApp(platform, {
      imports: [CacheModule.forRoot()],
      controllers: [BigController],
    });
    await app.listen(0, '127.0.0.1');
  });

  afterEach(async () => {
    stalled?.destroy();
    await app.close();
  });

  it('answers the next request for the URL from the entry, without waiting for the first client', async () => {
    const { port } = app.getHttpServer().address() as { port: number };
    stalled = connect({ port, host: '127.0.0.1' });
    await new Promise((resolve) => stalled!.once('connect', resolve));
    stalled.pause(); // reads nothing: its response never finishes
    stalled.write('GET /big HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n');
    while (runs === 0) await new Promise((resolve) => setTimeout(resolve, 10));

    const second = await request(`http://127.0.0.1:${port}`).get('/big').timeout(15_000);
    expect(second.status).toBe(200);
    expect(second.headers['x-cache']).toBe('HIT');
    expect((second.body as { n: number }).n).toBe(1);
    expect(runs).toBe(1);
  }, 30_000);
});
