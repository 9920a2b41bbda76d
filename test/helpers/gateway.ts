/**
 * Starts real gateways for tests: in-process (createGateway on port 0) or as
 * separate OS processes (node dist/main.js), against the run's Postgres
 * database and Redis prefix unless told otherwise.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../src/config';
import { createGateway, type Gateway } from '../../src/app/gateway';
import { createLogger } from '../../src/log/logger';
import { testEnv } from './env';
import { LogCapture, freePort } from './capture';
import { READY_TIMEOUT_MS, until } from '../harness/until';

export { LogCapture, freePort };

export const REPO_ROOT = path.resolve(__dirname, '..', '..');

export interface GraphQLResponse<T = Record<string, unknown>> {
  status: number;
  headers: Headers;
  body: { data?: T | null; errors?: { message: string; extensions?: Record<string, unknown>; path?: unknown[] }[] };
}

export async function graphql<T = Record<string, unknown>>(
  baseUrl: string,
  query: string,
  variables: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<GraphQLResponse<T>> {
  const res = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const text = await res.text();
  let body: GraphQLResponse<T>['body'];
  try {
    body = JSON.parse(text) as GraphQLResponse<T>['body'];
  } catch {
    throw new Error(`non-JSON response ${res.status}: ${text.slice(0, 300)}`);
  }
  return { status: res.status, headers: res.headers, body };
}


export type TestMode = 'postgres' | 'embedded';

export function baseEnv(mode: TestMode = 'postgres'): Record<string, string> {
  const common = {
    NODE_ENV: 'test',
    PORT: '0',
    // No gRPC listener unless a test asks for one: parallel tests would collide on 8001.
    GRPC_PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    LOG_PRETTY: 'false',
    MODEL_REPOSITORY: path.join(REPO_ROOT, 'models'),
    SHUTDOWN_DRAIN_TIMEOUT_MS: '5000',
    // Tests make their own keys; test/first-run turns the first-start bootstrap on.
    BOOTSTRAP_ADMIN: 'false',
  };
  if (mode === 'embedded') {
    return { ...common, DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'modelgate-embedded-')) };
  }
  return {
    ...common,
    DATABASE_URL: testEnv.databaseUrl,
    REDIS_URL: testEnv.redisUrl,
    REDIS_KEY_PREFIX: testEnv.redisPrefix,
    DATABASE_POOL_SIZE: '4',
  };
}

export interface TestGateway {
  url: string;
  gateway: Gateway;
  logs: LogCapture;
  close(): Promise<void>;
}

/** An in-process gateway on a random port; waits until /readyz says ready unless told not to. */
export async function startGateway(
  overrides: Record<string, string | undefined> = {},
  options: { mode?: TestMode; waitReady?: boolean } = {},
): Promise<TestGateway> {
  const env: Record<string, string | undefined> = { ...baseEnv(options.mode ?? 'postgres'), ...overrides };
  const config = loadConfig(env as NodeJS.ProcessEnv);
  const logs = new LogCapture();
  const logger = createLogger({ level: config.logLevel, pretty: false, destination: logs as unknown as pino.DestinationStream });
  const gateway = await createGateway(config, { logger });
  const url = await gateway.listen();
  if (options.waitReady !== false) await waitForReady(url);
  return { url, gateway, logs, close: () => gateway.close('test') };
}

/** Resolves once /readyz answers 200; prints how long it took (a figure, not a bound). */
export async function waitForReady(url: string, timeoutMs = READY_TIMEOUT_MS): Promise<void> {
  await until(
    `gateway at ${url}: /readyz 200`,
    async () => {
      const res = await fetch(`${url}/readyz`);
      return { status: res.status, body: await res.text() };
    },
    { accept: (r) => r.status === 200, timeoutMs, everyMs: 100, onArrived: (ms) => process.stdout.write(`gateway at ${url}: ready after ${Math.round(ms)} ms\n`) },
  );
}

export interface GatewayProcess {
  url: string;
  child: ChildProcess;
  output: () => string;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/**
 * Runs `node dist/main.js` (built by `npm run build:ts`, which `npm test` runs
 * first) as production does: NODE_ENV=production whatever `env` says, since
 * libraries (Apollo's signal handlers) behave differently under test. The
 * readiness grace is short unless `env` sets it. For fault tests prefer the
 * fuller harness in test/harness.
 */
export async function spawnGateway(env: Record<string, string>, options: { waitReady?: boolean } = {}): Promise<GatewayProcess> {
  const port = await freePort();
  const child = spawn(process.execPath, [path.join(REPO_ROOT, 'dist', 'main.js')], {
    env: { PATH: process.env['PATH'] ?? '', SHUTDOWN_READINESS_GRACE_MS: '200', GRPC_PORT: '0', ...env, NODE_ENV: 'production', PORT: String(port) },
    cwd: REPO_ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  const handle: GatewayProcess = {
    url,
    child,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
  if (options.waitReady !== false) {
    try {
      await waitForReady(url);
    } catch (error) {
      await handle.stop('SIGKILL');
      throw new Error(`${String(error)}\n--- process output ---\n${out}`);
    }
  }
  return handle;
}

