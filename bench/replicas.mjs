// Production gateways (`node dist/main.js`) on one fresh PostgreSQL database
// for the model-lifecycle benches: each with its own empty seed repository
// and DATA_DIR (as bench/model-publish.mjs starts them), an admin key from
// `modelgate admin bootstrap`, and a stop that drops the database.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ROOT, freePort, waitReady } from './lib.mjs';

const ADMIN_DB = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';

/** Starts `names.length` replicas; `extra` adds environment variables to each. */
export async function startReplicas(names, extra = {}) {
  const runId = Date.now().toString(36);
  const dbName = `modelgate_lifecycle_${runId}`;
  const admin = new pg.Client({ connectionString: ADMIN_DB });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${dbName}"`);
  const dbUrl = new URL(ADMIN_DB);
  dbUrl.pathname = `/${dbName}`;
  const work = mkdtempSync(path.join(os.tmpdir(), 'mg-lifecycle-bench-'));
  const base = {
    PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', LOG_LEVEL: 'warn', LOG_PRETTY: 'false', GRPC_PORT: '0',
    DATABASE_URL: dbUrl.toString(), INFERENCE_WORKERS: '1', MODEL_REPLICA_HEARTBEAT_MS: '500', SHUTDOWN_READINESS_GRACE_MS: '0',
    // The benches measure serving, not the limiter.
    RATE_LIMITS_ENABLED: 'false',
    ...extra,
  };
  const replicas = [];
  let key;
  const stop = async () => {
    for (const r of replicas) r.child.kill('SIGTERM');
    await Promise.all(replicas.map((r) => new Promise((resolve) => (r.child.exitCode !== null ? resolve() : r.child.on('exit', resolve)))));
    await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => undefined);
    await admin.end();
    rmSync(work, { recursive: true, force: true });
  };
  try {
    for (const name of names) {
      const env = { ...base, DATA_DIR: path.join(work, `data-${name}`), MODEL_REPOSITORY: mkdtempSync(path.join(work, `seed-${name}-`)) };
      if (!key) {
        const boot = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'admin', 'bootstrap', '--json'], { env, encoding: 'utf8' });
        key = /mg_(live|test)_[A-Za-z0-9]+/.exec(boot.stdout + boot.stderr)?.[0];
        if (!key) throw new Error(`admin bootstrap failed: ${boot.stdout}${boot.stderr}`);
      }
      const port = await freePort();
      const child = spawn(process.execPath, [path.join(ROOT, 'dist/main.js')], { env: { ...env, PORT: String(port) }, stdio: ['ignore', 'inherit', 'inherit'] });
      replicas.push({ name, child, url: `http://127.0.0.1:${port}` });
    }
    await Promise.all(replicas.map((r) => waitReady(`${r.url}/readyz`, r.child, r.name, 1800)));
    for (;;) {
      const detail = (await (await fetch(`${replicas[0].url}/readyz`)).json()).components.modelCatalog.detail;
      if (detail.replicas.length === names.length) break;
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  const auth = { authorization: `Bearer ${key}` };
  const graphql = async (url, query) => {
    const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ query }) });
    const body = await res.json();
    if (body.errors) throw new Error(`${query}: ${JSON.stringify(body.errors)}`);
    return body.data;
  };
  return { replicas, auth, graphql, stop };
}

export const CNN = () => readFileSync(path.join(ROOT, 'models/fashion-cnn/1/model.onnx'));
export const CNN_CONFIG = () => JSON.parse(readFileSync(path.join(ROOT, 'models/fashion-cnn/config.json'), 'utf8'));

/** Resident memory of a process in bytes (VmRSS). */
export function rssBytes(pid) {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : NaN;
}

export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}
