import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const INSTALL_HINT =
  'redis-server was not found on PATH. The Redis tests need a real server: install it with ' +
  '`apt-get install redis-server` (Debian/Ubuntu), `brew install redis` (macOS) or `dnf install redis`.';

/** Throws with an install hint when `redis-server` is not installed. Never skips silently. */
export function assertRedisInstalled(): void {
  const probe = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) throw new Error(INSTALL_HINT);
}

/** A free TCP port on 127.0.0.1 (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/**
 * A real `redis-server` child process on a loopback port, owned by one test file (or the
 * whole run). It can be killed, restarted on the same port, frozen (SIGSTOP keeps its data)
 * and thawed, so tests inject real faults. Stopped by pid, never by name.
 */
export class RedisServer {
  private child: ChildProcess | undefined;
  private readonly dir = mkdtempSync(join(tmpdir(), 'cachekit-redis-'));

  private constructor(
    readonly port: number,
    private readonly extraArgs: string[],
  ) {}

  /** Starts a server on a free port (or `port`) and waits until it answers PING. */
  static async start(options: { port?: number; args?: string[] } = {}): Promise<RedisServer> {
    assertRedisInstalled();
    for (let attempt = 0; ; attempt++) {
      const server = new RedisServer(options.port ?? (await freePort()), options.args ?? []);
      try {
        await server.boot();
        return server;
      } catch (error) {
        await server.stop();
        if (options.port !== undefined || attempt >= 4) throw error;
      }
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return (
      this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null
    );
  }

  /** Sends `command` through a raw RESP connection and resolves the raw reply text. */
  async command(...args: string[]): Promise<string> {
    return rawCommand(this.port, args);
  }

  /** SIGKILL: the process dies at once and loses its (in-memory) data. */
  async kill(): Promise<void> {
    await this.signalAndWait('SIGKILL');
  }

  /** Starts the server again on the same port. */
  async restart(): Promise<void> {
    if (this.running) await this.kill();
    await this.boot();
  }

  /** SIGSTOP: the process stops answering but keeps its connections and data. */
  freeze(): void {
    this.child?.kill('SIGSTOP');
  }

  /** SIGCONT: a frozen server answers again. */
  thaw(): void {
    this.child?.kill('SIGCONT');
  }

  /** Stops the server (thawing it first if frozen) and removes its working directory. */
  async stop(): Promise<void> {
    if (this.running) {
      this.thaw();
      await this.signalAndWait('SIGKILL');
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async boot(): Promise<void> {
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--appendonly',
      'no',
      '--dir',
      this.dir,
      '--daemonize',
      'no',
      '--loglevel',
      'warning',
      ...this.extraArgs,
    ];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    let output = '';
    child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (!this.running) {
        throw new Error(`redis-server on port ${this.port} exited at startup: ${output.trim()}`);
      }
      try {
        if ((await rawCommand(this.port, ['PING'])).startsWith('+PONG')) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(
      `redis-server on port ${this.port} did not answer PING within 10 s: ${output.trim()}`,
    );
  }

  private async signalAndWait(signal: NodeJS.Signals): Promise<void> {
    const child = this.child;
    if (!child || !this.running) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill(signal);
    await exited;
  }
}

/** One RESP command over a fresh socket; resolves the first reply chunk as text. */
export function rawCommand(port: number, args: string[], timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = new Socket();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`redis on port ${port} did not answer ${args[0]} in ${timeoutMs} ms`));
    }, timeoutMs);
    let reply = '';
    socket.on('data', (chunk) => {
      reply += chunk.toString();
      clearTimeout(timer);
      socket.end();
      resolve(reply);
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.connect(port, '127.0.0.1', () => {
      const body = args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
      socket.write(`*${args.length}\r\n${body}`);
    });
  });
}
