/**
 * The production harness: runs the built gateway exactly as production starts
 * it (`node dist/main.js`, NODE_ENV=production, real Postgres and Redis) as a
 * child process and drives it over HTTP. Every test that claims shutdown,
 * crash, outage, recovery or load behaviour goes through here: libraries
 * behave differently under NODE_ENV=test (Apollo installs no signal handlers
 * there), so an in-process test of such a property proves nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from '../helpers/capture';
import { testEnv } from '../helpers/env';
import { READY_TIMEOUT_MS, until, WAIT_TIMEOUT_MS } from './until';

export const REPO_ROOT = path.resolve(__dirname, '..', '..');
export const MAIN_JS = path.join(REPO_ROOT, 'dist', 'main.js');
export const CLI_JS = path.join(REPO_ROOT, 'dist', 'cli', 'main.js');

export interface ProductionEnvOptions {
  /** Database URL (default: the run's test database on the machine's Postgres). */
  databaseUrl?: string;
  /** Redis URL; null runs without Redis (default: the run's Redis). */
  redisUrl?: string | null;
  /** Redis key prefix (default: the run's prefix, so keys are cleaned up after the run). */
  redisKeyPrefix?: string;
}

/**
 * The environment a production deployment sets, pointed at test services.
 * A fresh spool directory per call: each replica owns its own.
 */
export function productionEnv(options: ProductionEnvOptions = {}): Record<string, string> {
  const env: Record<string, string> = {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    LOG_PRETTY: 'false',
    MODEL_REPOSITORY: path.join(REPO_ROOT, 'models'),
    DATABASE_URL: options.databaseUrl ?? testEnv.databaseUrl,
    DATABASE_POOL_SIZE: '4',
    DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'mg-prod-data-')),
    // Tests make their own keys on a shared database; test/first-run turns the first-start bootstrap on.
    BOOTSTRAP_ADMIN: 'false',
  };
  const redisUrl = options.redisUrl === undefined ? testEnv.redisUrl : options.redisUrl;
  if (redisUrl) {
    env['REDIS_URL'] = redisUrl;
    env['REDIS_KEY_PREFIX'] = options.redisKeyPrefix ?? testEnv.redisPrefix;
  }
  return env;
}

export interface HttpResult<T = unknown> {
  status: number;
  headers: Headers;
  /** Parsed JSON body, or null when the body was not JSON. */
  body: T | null;
  text: string;
}

export interface GraphQLBody<T = Record<string, unknown>> {
  data?: T | null;
  errors?: { message: string; extensions?: Record<string, unknown>; path?: unknown[] }[];
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartOptions {
  /** Wait until /readyz answers 200 (default true). */
  waitReady?: boolean;
  /** Liveness guard on the readiness wait (default READY_TIMEOUT_MS). */
  readyTimeoutMs?: number;
  /** Port to listen on (default: a free one). A restart keeps the port. */
  port?: number;
  /** A label for error messages when several replicas run. */
  name?: string;
}

/** One `node dist/main.js` process. */
export class ProductionGateway {
  private out = '';
  private readonly exited: Promise<Exit>;

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly env: Record<string, string>,
    readonly name: string,
  ) {
    child.stdout?.on('data', (d: Buffer) => (this.out += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (this.out += d.toString()));
    this.exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  }

  static async start(env: Record<string, string>, options: StartOptions = {}): Promise<ProductionGateway> {
    const port = options.port ?? (await freePort());
    // No gRPC listener unless a test asks for one (GRPC_PORT in env): parallel tests would collide on 8001.
    const fullEnv = { PATH: process.env['PATH'] ?? '', GRPC_PORT: '0', ...env, PORT: String(port) };
    const child = spawn(process.execPath, [MAIN_JS], { env: fullEnv, cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const gateway = new ProductionGateway(child, port, fullEnv, options.name ?? `gateway:${port}`);
    if (options.waitReady !== false) {
      try {
        await gateway.waitReady(options.readyTimeoutMs ?? READY_TIMEOUT_MS);
      } catch (error) {
        await gateway.kill();
        throw new Error(`${gateway.name}: ${String(error)}\n--- process output ---\n${gateway.output}`);
      }
    }
    return gateway;
  }

  /** Starts a new process with the same environment and port (what a supervisor does after a crash). */
  restart(options: Omit<StartOptions, 'port'> = {}): Promise<ProductionGateway> {
    return ProductionGateway.start(this.env, { ...options, port: this.port, name: this.name });
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** Everything the process wrote to stdout and stderr so far. */
  get output(): string {
    return this.out;
  }

  /** The JSON log lines written so far (non-JSON lines are skipped). */
  logLines(): Record<string, unknown>[] {
    const lines: Record<string, unknown>[] = [];
    for (const line of this.out.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a partial line still being written
      }
    }
    return lines;
  }

  /** Resolves when a log line's msg contains `text`. */
  async waitForLog(text: string, timeoutMs = WAIT_TIMEOUT_MS): Promise<void> {
    try {
      await until(`a log line with "${text}"`, () => this.out.includes(text), {
        timeoutMs,
        everyMs: 25,
        failIf: () => (this.running ? undefined : `exited (${this.child.exitCode ?? this.child.signalCode})`),
      });
    } catch (error) {
      throw new Error(`${this.name}: ${(error as Error).message}\n${this.out}`);
    }
  }

  /** Resolves once /readyz answers 200; prints how long it took (a figure, not a bound). */
  async waitReady(timeoutMs = READY_TIMEOUT_MS): Promise<void> {
    await until(
      `${this.name} /readyz 200`,
      async () => {
        const res = await fetch(`${this.url}/readyz`);
        return { status: res.status, body: await res.text() };
      },
      {
        accept: (r) => r.status === 200,
        timeoutMs,
        everyMs: 100,
        failIf: () => (this.running ? undefined : `exited (${this.child.exitCode ?? this.child.signalCode}) before ready`),
        onArrived: (ms) => process.stdout.write(`${this.name}: ready ${Math.round(ms)} ms after spawn\n`),
      },
    );
  }

  async request<T = unknown>(method: string, route: string, init: { headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<HttpResult<T>> {
    const res = await fetch(`${this.url}${route}`, { method, headers: init.headers, body: init.body });
    const text = await res.text();
    let body: T | null = null;
    try {
      body = JSON.parse(text) as T;
    } catch {
      body = null;
    }
    return { status: res.status, headers: res.headers, body, text };
  }

  graphql<T = Record<string, unknown>>(
    query: string,
    variables: Record<string, unknown> = {},
    headers: Record<string, string> = {},
  ): Promise<HttpResult<GraphQLBody<T>>> {
    return this.request<GraphQLBody<T>>('POST', '/graphql', {
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ query, variables }),
    });
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Resolves with the exit; rejects when the process is still running after `timeoutMs`. */
  async waitExit(timeoutMs = 30_000): Promise<Exit> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${this.name}: still running ${timeoutMs} ms later\n${this.out}`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGTERM and wait for the exit. */
  async stop(timeoutMs = 30_000): Promise<Exit> {
    this.signal('SIGTERM');
    return this.waitExit(timeoutMs);
  }

  /** SIGKILL (an OOM kill or a crashed node) and wait for the exit. */
  async kill(): Promise<Exit> {
    this.signal('SIGKILL');
    return this.exited;
  }
}

/** Runs the built CLI (`node dist/cli/main.js`) with the given environment. */
export function runCli(args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI_JS, ...args], {
      env: { PATH: process.env['PATH'] ?? '', ...env },
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`CLI ${args.join(' ')} still running after ${timeoutMs} ms\n${stdout}${stderr}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
