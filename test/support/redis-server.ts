import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
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
    private readonly tls: TlsFiles | undefined,
  ) {}

  /**
   * Starts a server on a free port (or `port`) and waits until it answers PING. With `tls`,
   * the port speaks TLS only (`rediss://`).
   */
  static async start(
    options: { port?: number; args?: string[]; tls?: TlsFiles } = {},
  ): Promise<RedisServer> {
    assertRedisInstalled();
    for (let attempt = 0; ; attempt++) {
      const server = new RedisServer(
        options.port ?? (await freePort()),
        options.args ?? [],
        options.tls,
      );
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
    return `${this.tls ? 'rediss' : 'redis'}://127.0.0.1:${this.port}`;
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
    return rawCommand(this.port, args, 2000, this.tls !== undefined, this.password);
  }

  private get password(): string | undefined {
    const index = this.extraArgs.indexOf('--requirepass');
    return index >= 0 ? this.extraArgs[index + 1] : undefined;
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
    const tls = this.tls;
    const listen = tls
      ? ['--port', '0', '--tls-port', String(this.port), '--tls-auth-clients', 'no'].concat([
          '--tls-cert-file',
          tls.cert,
          '--tls-key-file',
          tls.key,
          '--tls-ca-cert-file',
          tls.ca,
        ])
      : ['--port', String(this.port)];
    const args = listen.concat(
      ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir],
      ['--daemonize', 'no', '--loglevel', 'warning', ...this.extraArgs],
    );
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
        const reply = await this.command('PING');
        if (reply.startsWith('+PONG') || reply.startsWith('-NOAUTH')) return;
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

/** Certificate files for a TLS test server (see `makeTlsFiles`). */
export interface TlsFiles {
  cert: string;
  key: string;
  ca: string;
}

/** One RESP command over a fresh socket; resolves the first reply chunk as text. */
export function rawCommand(
  port: number,
  args: string[],
  timeoutMs = 2000,
  tls = false,
  password?: string,
): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls
      ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false })
      : new Socket();
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`redis on port ${port} did not answer ${args[0]} in ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('error', (error: Error) => {
      clearTimeout(timer);
      reject(error);
    });
    const send = () => {
      // With a password, AUTH goes first and only the reply to `args` is kept.
      const commands = password ? [['AUTH', password], args] : [args];
      let skip = commands.length - 1;
      socket.on('data', (chunk: Buffer) => {
        const text = chunk.toString();
        if (skip > 0) {
          const lines = text.split('\r\n');
          skip--;
          if (lines.length > 2 && lines[1] !== '') return settle(lines.slice(1).join('\r\n'));
          return;
        }
        settle(text);
      });
      for (const command of commands) {
        const body = command.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('');
        socket.write(`*${command.length}\r\n${body}`);
      }
    };
    const settle = (text: string) => {
      clearTimeout(timer);
      socket.end();
      resolve(text);
    };
    if (tls) socket.once('secureConnect', send);
    else socket.connect(port, '127.0.0.1', send);
  });
}

/** Generates a throw-away self-signed CA and server certificate for 127.0.0.1 with openssl. */
export function makeTlsFiles(dir: string): TlsFiles {
  writeFileSync(join(dir, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  const run = (args: string[]) => {
    const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (result.status !== 0) throw new Error(`openssl ${args[0]} failed: ${result.stderr}`);
  };
  run([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=cachekit-test-ca',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
  ]);
  run([
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
  ]);
  run([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '1',
    '-out',
    'server.crt',
    '-extfile',
    'san.ext',
  ]);
  return { cert: join(dir, 'server.crt'), key: join(dir, 'server.key'), ca: join(dir, 'ca.crt') };
}
