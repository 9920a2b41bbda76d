/**
 * SIGTERM under load: a gateway process (dist/, real lifecycle) records usage
 * as fast as it can, gets SIGTERM, and exits 0; every record it accepted is
 * then in the database (none left in memory, none left in the spool).
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { testEnv } from '../helpers/env';
import { storedTotals } from './helpers';
import { READY_TIMEOUT_MS, STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

it('flushes every buffered record before exit on SIGTERM', async () => {
  const tenant = randomUUID();
  const spoolDir = mkdtempSync(path.join(os.tmpdir(), 'mg-usage-sigterm-'));
  const child = spawn(process.execPath, [path.join(__dirname, 'fixtures', 'gateway-under-load.js')], {
    env: {
      PATH: process.env['PATH'] ?? '',
      NODE_ENV: 'test',
      PORT: '0',
      GRPC_PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'warn',
      LOG_PRETTY: 'false',
      DATABASE_URL: testEnv.databaseUrl,
      DATABASE_POOL_SIZE: '4',
      MODEL_REPOSITORY: path.resolve(__dirname, '..', '..', 'models'),
      USAGE_SPOOL_DIR: spoolDir,
      // A long interval and a big batch: the buffer holds many records at SIGTERM time.
      USAGE_FLUSH_INTERVAL_MS: '5000',
      USAGE_FLUSH_BATCH_SIZE: '20000',
      LOAD_TENANT_ID: tenant,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  try {
    await until('the load child to print LOADING', () => out.includes('LOADING'), {
      timeoutMs: READY_TIMEOUT_MS,
      failIf: () => (child.exitCode === null ? undefined : `it exited with ${child.exitCode}:\n${out}`),
    });
    child.kill('SIGTERM');
    const code = await exited;
    expect({ code, out: code === 0 ? '' : out }).toEqual({ code: 0, out: '' });
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  const recorded = Number(/RECORDED (\d+)/.exec(out)?.[1]);
  expect(recorded).toBeGreaterThan(1_000);
  const stored = await storedTotals(testEnv.databaseUrl, tenant);
  expect(stored.rows).toBe(recorded);
  expect(stored.rollupRequests).toBe(recorded);
  expect(readdirSync(spoolDir)).toEqual([]);
});
