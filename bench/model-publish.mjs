// Time from publish to fleet-ready (issue #23): three production gateways
// (`node dist/main.js`) on one fresh PostgreSQL database, each with its own
// empty seed repository and its own DATA_DIR (no shared model directory).
// A generated graph (Y = X + ReduceSum(W), W an initializer of the given
// size) is uploaded to A with `PUT …/model.onnx?wait=fleet`, which answers
// once every live replica reached the change's generation. Measured per
// publish: the answer (= fleet-ready), the fleet wait inside it (after A
// applied), and when B and C first answered ready (polled every 20 ms from
// the call). Sizes: 1 MB and 200 MB (BENCH_PUBLISH_SIZES_MB overrides).
//
//   npm run build:ts && node bench/model-publish.mjs
import { spawn, spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { ROOT, freePort, log, waitReady, writeResultsSection } from './lib.mjs';

const require = createRequire(import.meta.url);
const { Root } = require('protobufjs');

const ADMIN_DB = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const SIZES_MB = (process.env.BENCH_PUBLISH_SIZES_MB ?? '1,200').split(',').map(Number);
const RUNS = { small: Number(process.env.BENCH_PUBLISH_RUNS_SMALL ?? 3), large: Number(process.env.BENCH_PUBLISH_RUNS_LARGE ?? 2) };
const dist = path.join(ROOT, 'dist');

// ---- the generated graph -----------------------------------------------------------------------
const ModelProto = new Root().loadSync(path.join(ROOT, 'proto/onnx/onnx.proto'), { keepCase: true }).lookupType('onnx.ModelProto');
function graph(bytes, fill) {
  const floats = Math.max(1, Math.floor(bytes / 4));
  const raw = Buffer.alloc(floats * 4);
  for (let i = 0; i < floats; i++) raw.writeFloatLE(fill, i * 4);
  const info = (name) => ({ name, type: { tensor_type: { elem_type: 1, shape: { dim: [{ dim_param: 'batch' }, { dim_value: 4 }] } } } });
  return Buffer.from(ModelProto.encode(ModelProto.fromObject({
    ir_version: 8, producer_name: 'modelgate-bench', opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'publish-bench',
      node: [
        { op_type: 'ReduceSum', input: ['W'], output: ['S'], name: 'sum', attribute: [{ name: 'keepdims', type: 2, i: 1 }] },
        { op_type: 'Add', input: ['X', 'S'], output: ['Y'], name: 'add' },
      ],
      initializer: [{ name: 'W', data_type: 1, dims: [floats], raw_data: raw }],
      input: [info('X')], output: [info('Y')],
    },
  })).finish());
}

// ---- three replicas on one database ------------------------------------------------------------
const runId = Date.now().toString(36);
const dbName = `modelgate_publish_${runId}`;
const admin = new pg.Client({ connectionString: ADMIN_DB });
await admin.connect();
await admin.query(`CREATE DATABASE "${dbName}"`);
const dbUrl = new URL(ADMIN_DB);
dbUrl.pathname = `/${dbName}`;
const work = mkdtempSync(path.join(os.tmpdir(), 'mg-publish-bench-'));
const base = {
  PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', LOG_LEVEL: 'warn', LOG_PRETTY: 'false', GRPC_PORT: '0',
  DATABASE_URL: dbUrl.toString(), INFERENCE_WORKERS: '1', MODEL_REPLICA_HEARTBEAT_MS: '500', MODEL_UPLOAD_MAX_BYTES: String(256 * 1024 * 1024),
  SHUTDOWN_READINESS_GRACE_MS: '0',
};
const replicas = [];
let key;
try {
  for (const name of ['A', 'B', 'C']) {
    const env = { ...base, DATA_DIR: path.join(work, `data-${name}`), MODEL_REPOSITORY: mkdtempSync(path.join(work, `seed-${name}-`)) };
    if (!key) {
      const boot = spawnSync(process.execPath, [path.join(dist, 'cli/main.js'), 'admin', 'bootstrap', '--json'], { env, encoding: 'utf8' });
      key = /mg_(live|test)_[A-Za-z0-9]+/.exec(boot.stdout + boot.stderr)?.[0];
      if (!key) throw new Error(`admin bootstrap failed: ${boot.stdout}${boot.stderr}`);
    }
    const port = await freePort();
    const child = spawn(process.execPath, [path.join(dist, 'main.js')], { env: { ...env, PORT: String(port) }, stdio: ['ignore', 'inherit', 'inherit'] });
    replicas.push({ name, child, url: `http://127.0.0.1:${port}` });
  }
  await Promise.all(replicas.map((r) => waitReady(`${r.url}/readyz`, r.child, r.name, 1800)));
  const auth = { authorization: `Bearer ${key}` };
  for (;;) {
    const detail = (await (await fetch(`${replicas[0].url}/readyz`)).json()).components.modelCatalog.detail;
    if (detail.replicas.length === 3) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  log('3 replicas ready and reporting');

  const rows = [];
  let version = 0;
  for (const mb of SIZES_MB) {
    const runs = mb >= 50 ? RUNS.large : RUNS.small;
    for (let run = 0; run < runs; run++) {
      version += 1;
      const body = graph(mb * 1_000_000, version);
      const model = `publish-bench-${mb}mb`;
      const firstReady = new Map();
      let polling = true;
      const started = performance.now();
      const pollers = replicas.slice(1).map(async (r) => {
        while (polling) {
          const res = await fetch(`${r.url}/v2/models/${model}/versions/${version}/ready`, { headers: auth }).catch(() => null);
          if (res?.status === 200) { firstReady.set(r.name, performance.now() - started); return; }
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      });
      const res = await fetch(`${replicas[0].url}/v2/repository/models/${model}/versions/${version}/model.onnx?wait=fleet&timeout_ms=600000`, {
        method: 'PUT', headers: { ...auth, 'content-type': 'application/octet-stream' }, body,
      });
      const answered = performance.now() - started;
      const answer = await res.json();
      if (res.status !== 200 || !answer.fleet?.converged) throw new Error(`publish ${mb} MB: ${res.status} ${JSON.stringify(answer)}`);
      await Promise.race([Promise.all(pollers), new Promise((r) => setTimeout(r, 10_000))]);
      polling = false;
      const row = { mb, bytes: body.length, fleetReadyMs: answered, fleetWaitMs: answer.fleet.waited_ms, bReadyMs: firstReady.get('B'), cReadyMs: firstReady.get('C') };
      rows.push(row);
      log(`${mb} MB (${body.length} bytes) run ${run + 1}: fleet-ready ${Math.round(answered)} ms (A's fleet wait ${answer.fleet.waited_ms} ms; B ready at ${Math.round(row.bReadyMs)} ms, C at ${Math.round(row.cReadyMs)} ms)`);
    }
  }

  const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = Math.floor(s.length / 2); return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
  const load = os.loadavg()[0].toFixed(1);
  const lines = [
    `\`node bench/model-publish.mjs\` (after \`npm run build:ts\`), ${new Date().toISOString().slice(0, 16)}Z, ${os.cpus().length} cores, load average ${load} at the end.`,
    'Three production gateways on one fresh PostgreSQL database, each with its own empty seed repository and DATA_DIR;',
    'a generated graph (Y = X + ReduceSum(W), W an FP32 initializer of the given size) uploaded to A with',
    '`PUT …/model.onnx?wait=fleet`. Fleet-ready = A\'s answer (it answers once every live replica reached the change\'s',
    'generation); it includes the streamed upload into Postgres, A\'s fetch back into its cache (digest verified), the',
    'inspection child (static checks, onnxruntime open, a warm-up run), the commit, A\'s load and warm-up, and B\'s and C\'s',
    'fetch, verify, load and warm-up. B/C ready: first 200 from their ready route, polled every 20 ms from the call.',
    '',
    '| size | runs | fleet-ready median (ms) | min–max | fleet wait after A applied, median (ms) | B ready median (ms) | C ready median (ms) |',
    '|---|---|---|---|---|---|---|',
  ];
  for (const mb of SIZES_MB) {
    const r = rows.filter((x) => x.mb === mb);
    const ready = r.map((x) => x.fleetReadyMs);
    lines.push(`| ${mb} MB | ${r.length} | ${Math.round(median(ready))} | ${Math.round(Math.min(...ready))}–${Math.round(Math.max(...ready))} | ${Math.round(median(r.map((x) => x.fleetWaitMs)))} | ${Math.round(median(r.map((x) => x.bReadyMs ?? NaN)))} | ${Math.round(median(r.map((x) => x.cReadyMs ?? NaN)))} |`);
  }
  console.log(lines.join('\n'));
  if (process.env.BENCH_WRITE_RESULTS !== 'false') writeResultsSection('model-publish', 'Model publish to fleet-ready (issue #23)', lines.join('\n'));
} finally {
  for (const r of replicas) r.child.kill('SIGTERM');
  await Promise.all(replicas.map((r) => new Promise((resolve) => (r.child.exitCode !== null ? resolve() : r.child.on('exit', resolve)))));
  await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`).catch(() => undefined);
  await admin.end();
  rmSync(work, { recursive: true, force: true });
}
