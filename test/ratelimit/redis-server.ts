/**
 * A throw-away redis-server on a spare port, for tests that kill Redis
 * (never the machine's own Redis). No persistence: a restart starts empty.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import Redis from 'ioredis';
import { freePort } from '../helpers/gateway';
import { until } from '../harness/until';

export class TestRedisServer {
  private child: ChildProcess | null = null;
  private constructor(readonly port: number) {}

  static async start(extraArgs: string[] = []): Promise<TestRedisServer> {
    const server = new TestRedisServer(await freePort());
    await server.restart(extraArgs);
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}/0`;
  }

  /** Starts redis-server on the same port and resolves once it answers PING. */
  async restart(extraArgs: string[] = []): Promise<void> {
    const child = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', ...extraArgs], {
      stdio: 'ignore',
    });
    this.child = child;
    await until(
      `redis-server on port ${this.port} to answer PING`,
      async () => {
        const probe = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        try {
          await probe.connect();
          return await probe.ping();
        } finally {
          probe.disconnect();
        }
      },
      { accept: (pong) => pong === 'PONG', failIf: () => (child.exitCode === null ? undefined : `redis-server exited with ${child.exitCode}`) },
    );
  }

  /** SIGKILL: Redis vanishes as in a crash. Resolves when the process is gone. */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }
}
