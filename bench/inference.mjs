#!/usr/bin/env node
// Inference benchmark (issue #4), every row measured side by side in one run:
//  (a) onnxruntime-node in-process at its best batch size: the compute limit
//  (b) the gateway over HTTP with dynamic batching
//  (c) the gateway with batching off (max_batch_size 0)
//  (d) a bare node:http server calling onnxruntime-node directly: the HTTP limit
// plus the p99 of a cheap `health` query while (b) saturates the machine.
// Usage: npm run bench:inference  (BENCH_SECONDS=3 per cell; BENCH_MODELS=fashion-cnn,fashion-hybrid)
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import net from 'node:net';
import * as ort from 'onnxruntime-node';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const MODELS = (process.env.BENCH_MODELS ?? 'fashion-cnn,fashion-hybrid').split(',');
const CONCURRENCY = (process.env.BENCH_CONCURRENCY ?? '1,16,64').split(',').map(Number);
const images = readFileSync(path.join(ROOT, 'test/fixtures/fashion-mnist-test-1000.bin'));
const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

function floats(n) {
  const f = new Float32Array(n * 784);
  for (let i = 0; i < f.length; i += 1) f[i] = images[i % images.length] / 255;
  return f;
}

function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

async function waitReady(url, what, child) {
  for (let i = 0; i < 600; i += 1) {
    try { if ((await fetch(url)).status === 200) return; } catch { /* not up yet */ }
    if (child.exitCode !== null) throw new Error(`${what} exited`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready`);
}

function loadgen(url, bodyFile, concurrency, seconds, items = 1, headers = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bench/loadgen.mjs'), url, bodyFile, String(concurrency), String(seconds), String(items), JSON.stringify(headers)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`loadgen exited ${code}`))));
  });
}

// Row (a): in-process onnxruntime at its best batch size.
async function inProcessLimit(modelPath) {
  const session = await ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'], intraOpNumThreads: os.availableParallelism() });
  let best = { batch: 0, itemsPerSecond: 0 };
  for (const batch of [1, 16, 32, 64]) {
    const feeds = { image: new ort.Tensor('float32', floats(batch), [batch, 1, 28, 28]) };
    for (let i = 0; i < 5; i += 1) await session.run(feeds);
    let n = 0;
    const start = performance.now();
    while (performance.now() - start < SECONDS * 1000 / 2) { await session.run(feeds); n += 1; }
    const ips = (n * batch) / ((performance.now() - start) / 1000);
    if (ips > best.itemsPerSecond) best = { batch, itemsPerSecond: ips };
  }
  await session.release();
  return best;
}

const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-bench-'));
const repo = path.join(work, 'models');
for (const name of MODELS) {
  cpSync(path.join(ROOT, 'models', name), path.join(repo, name), { recursive: true });
  const config = JSON.parse(readFileSync(path.join(ROOT, 'models', name, 'config.json'), 'utf8'));
  // The same graph with batching off: the client's [1,1,28,28] is the full shape.
  cpSync(path.join(ROOT, 'models', name, '1'), path.join(repo, `${name}-nobatch`, '1'), { recursive: true });
  const { dynamic_batching: _unused, ...rest } = config;
  writeFileSync(path.join(repo, `${name}-nobatch`, 'config.json'), JSON.stringify({
    ...rest, name: `${name}-nobatch`, max_batch_size: 0,
    inputs: config.inputs.map((t) => ({ ...t, dims: [1, ...t.dims] })),
    outputs: config.outputs.map((t) => ({ ...t, dims: [1, ...t.dims] })),
  }));
}
const bodyFor = (model) => {
  const file = path.join(work, `${model}.json`);
  const data = Buffer.from(floats(1).buffer).toString('base64');
  writeFileSync(file, JSON.stringify({
    query: 'mutation($input: InferInput!) { infer(input: $input) { outputs { name dataBase64 } } }',
    variables: { input: { model, inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], dataBase64: data }] } },
  }));
  return file;
};
const healthBody = path.join(work, 'health.json');
writeFileSync(healthBody, JSON.stringify({ query: '{ health { status } }' }));

// Gateway, embedded mode, limits as configured; an admin key when the keys domain exists.
const gwPort = await freePort();
const gwEnv = { ...process.env, NODE_ENV: 'production', PORT: String(gwPort), HOST: '127.0.0.1', LOG_LEVEL: 'warn', MODEL_REPOSITORY: repo, DATA_DIR: path.join(work, 'data'), RATE_LIMITS_ENABLED: 'false' };
delete gwEnv.DATABASE_URL; delete gwEnv.REDIS_URL;
let headers = {};
if (existsSync(path.join(ROOT, 'dist/cli/main.js'))) {
  const boot = spawnSync(process.execPath, [path.join(ROOT, 'dist/cli/main.js'), 'admin', 'bootstrap'], { env: gwEnv, encoding: 'utf8' });
  const key = /mg_(live|test)_[A-Za-z0-9]+/.exec(boot.stdout + boot.stderr)?.[0];
  if (key) headers = { authorization: `Bearer ${key}` };
}
log(`starting gateway on :${gwPort} (${os.availableParallelism()} cores)`);
const gateway = spawn(process.execPath, [path.join(ROOT, 'dist/main.js')], { env: gwEnv, stdio: ['ignore', 'inherit', 'inherit'] });
await waitReady(`http://127.0.0.1:${gwPort}/readyz`, 'gateway', gateway);

const rows = [];
let healthUnderLoad = null;
try {
  for (const model of MODELS) {
    const modelPath = path.join(ROOT, 'models', model, '1', 'model.onnx');
    // (a) runs while the gateway idles (its workers sleep; nothing else competes).
    log(`${model}: (a) in-process onnxruntime`);
    const limit = await inProcessLimit(modelPath);
    const barePort = await freePort();
    const bare = spawn(process.execPath, [path.join(ROOT, 'bench/bare-server.mjs'), modelPath, String(barePort)], { stdio: ['ignore', 'ignore', 'inherit'] });
    await new Promise((r) => setTimeout(r, 1500));
    for (const c of CONCURRENCY) {
      log(`${model}: concurrency ${c}: (b) batching`);
      const b = await loadgen(`http://127.0.0.1:${gwPort}/graphql`, bodyFor(model), c, SECONDS, 1, headers);
      log(`${model}: concurrency ${c}: (c) batching off`);
      const cc = await loadgen(`http://127.0.0.1:${gwPort}/graphql`, bodyFor(`${model}-nobatch`), c, SECONDS, 1, headers);
      log(`${model}: concurrency ${c}: (d) bare node:http + onnxruntime`);
      const d = await loadgen(`http://127.0.0.1:${barePort}/graphql`, bodyFor(model), c, SECONDS);
      for (const [name, r] of [['b', b], ['c', cc], ['d', d]]) if (r.errors) log(`  ${name}: ${r.errors} errors, first: ${r.firstError}`);
      rows.push({ model, concurrency: c, a: limit, b, c: cc, d });
    }
    bare.kill();
    if (model === MODELS[MODELS.length - 1]) {
      log(`${model}: health p99 while (b) runs at concurrency 64`);
      const [, health] = await Promise.all([
        loadgen(`http://127.0.0.1:${gwPort}/graphql`, bodyFor(model), 64, SECONDS, 1, headers),
        loadgen(`http://127.0.0.1:${gwPort}/graphql`, healthBody, 1, SECONDS, 1, headers),
      ]);
      healthUnderLoad = { model, ...health };
    }
  }
} finally {
  gateway.kill('SIGTERM');
  rmSync(work, { recursive: true, force: true });
}

const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const lines = [
  `Measured ${new Date().toISOString().slice(0, 16)}Z on ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? 'cpu'}), ${SECONDS} s per cell, one closed-loop load generator process (bench/loadgen.mjs) for every HTTP row, single-image requests (dataBase64).`,
  '',
  '| model | conc | (a) in-process items/s [batch] | (b) gateway batching items/s, p50/p99 ms | (c) no batching items/s, p50/p99 | (d) bare http items/s, p50/p99 | b/a | b/c | b/d |',
  '|---|---|---|---|---|---|---|---|---|',
  ...rows.map((r) => `| ${r.model} | ${r.concurrency} | ${f0(r.a.itemsPerSecond)} [${r.a.batch}] | ${f0(r.b.itemsPerSecond)}, ${f1(r.b.p50)}/${f1(r.b.p99)} | ${f0(r.c.itemsPerSecond)}, ${f1(r.c.p50)}/${f1(r.c.p99)} | ${f0(r.d.itemsPerSecond)}, ${f1(r.d.p50)}/${f1(r.d.p99)} | ${f2(r.b.itemsPerSecond / r.a.itemsPerSecond)} | ${f2(r.b.itemsPerSecond / r.c.itemsPerSecond)} | ${f2(r.b.itemsPerSecond / r.d.itemsPerSecond)} |`),
  '',
  healthUnderLoad ? `Cheap query (\`health\`) while ${healthUnderLoad.model} runs at concurrency 64 through (b): p50 ${f1(healthUnderLoad.p50)} ms, p99 ${f1(healthUnderLoad.p99)} ms over ${healthUnderLoad.requests} queries.` : '',
];
const section = lines.join('\n');
console.log(section);
const resultsFile = path.join(ROOT, 'bench/RESULTS.md');
let results = existsSync(resultsFile) ? readFileSync(resultsFile, 'utf8') : '# Benchmark results\n\nEach section is written by its benchmark script; numbers are from the last run on the machine named in it.\n';
const begin = '<!-- inference:begin -->';
const end = '<!-- inference:end -->';
const block = `${begin}\n## Inference (\`npm run bench:inference\`)\n\n${section}\n${end}`;
results = results.includes(begin) ? results.replace(new RegExp(`${begin}[\\s\\S]*${end}`), block) : `${results.trimEnd()}\n\n${block}\n`;
writeFileSync(resultsFile, results);
log(`wrote ${path.relative(process.cwd(), resultsFile)}`);
