#!/usr/bin/env node
// Hostile-input latency benchmark (issue #12): the p99 of a cheap query
// (`{ health { status } }`, one client, closed loop) while 12 clients send the
// largest bodies the gateway allows (or the hostile ones it must refuse
// cheaply), against the production build (node dist/main.js,
// NODE_ENV=production, embedded database, limits off). Prints a Markdown table.
// Usage: npm run bench:hostile   (BENCH_SECONDS=5 per row, BENCH_CLIENTS=12)
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { ROOT, bootstrapKey, embeddedEnv, fixtureImages, freePort, log, startGateway } from './lib.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 12);
const images = fixtureImages();

function loadgen(url, bodyFile, concurrency, seconds, headers) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'bench/loadgen.mjs'), url, bodyFile, String(concurrency), String(seconds), '1', JSON.stringify(headers)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`loadgen exited ${code}`))));
  });
}

/** Counts every answer of the flood (loadgen counts only 200s without errors as requests). */
function floodCounted(stats) {
  return stats.requests + stats.errors;
}

const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-hostile-bench-'));
const file = (name, value) => {
  const p = path.join(work, `${name}.json`);
  writeFileSync(p, typeof value === 'string' ? value : JSON.stringify(value));
  return p;
};
const floats = (n) => {
  const f = new Float32Array(n * 784);
  for (let i = 0; i < f.length; i += 1) f[i] = images[i % images.length] / 255;
  return f;
};
const INFER = 'mutation($input: InferInput!) { infer(input: $input) { outputs { name dataBase64 } } }';
const CLASSIFY = 'mutation($images: [ImageInput!]!) { classify(model: "fashion-cnn", images: $images, topK: 1) { results { predictions { label } } } }';

// The largest legitimate bodies per form, and the hostile ones of the issue.
// fashion-cnn's max_batch_size is 64; JSON is also bounded by GRAPHQL_MAX_LIST_ELEMENTS (default 16,384).
const MAX_BATCH = 64;
const listLimit = Number(process.env.GRAPHQL_MAX_LIST_ELEMENTS ?? 16_384);
const maxJsonItems = Math.min(MAX_BATCH, Math.floor(listLimit / 784));
const png1024 = (await sharp(images.subarray(0, 784), { raw: { width: 28, height: 28, channels: 1 } }).resize(1024, 1024, { kernel: 'nearest' }).png().toBuffer()).toString('base64');
const rows = [
  { name: 'baseline (no flood)', body: null },
  { name: `infer, JSON data at the list limit (${maxJsonItems} × 784 values)`, body: file('json-max', { query: INFER, variables: { input: { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [maxJsonItems, 1, 28, 28], data: Array.from(floats(maxJsonItems), (v) => Math.round(v * 1000) / 1000) }] } } }) },
  { name: `infer, dataBase64 at the batch limit (${MAX_BATCH} × 784 FP32)`, body: file('b64-max', { query: INFER, variables: { input: { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [MAX_BATCH, 1, 28, 28], dataBase64: Buffer.from(floats(MAX_BATCH).buffer).toString('base64') }] } } }) },
  { name: 'classify, 16 PNGs of 1024×1024', body: file('png-max', { query: CLASSIFY, variables: { images: Array.from({ length: 16 }, () => ({ image: png1024 })) } }) },
  { name: 'hostile: 4 M-value pixels list (refused, 400)', body: file('pixels-4m', { query: CLASSIFY, variables: { images: [{ pixels: new Array(1024 * 1024 * 4).fill(7), width: 1024, height: 1024, channels: 4 }] } }) },
  { name: 'hostile: 40 k-value data list (refused before parsing, 400)', body: file('data-40k', { query: INFER, variables: { input: { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], data: new Array(40_000).fill(0.5) }] } } }) },
  { name: 'hostile: 19 MB string variable (just under BODY_LIMIT_BYTES)', body: file('string-19m', { query: '{ health { status } }', variables: { pad: 'A'.repeat(19 * 1024 * 1024) } }) },
];

const port = await freePort();
const env = embeddedEnv(port, path.join(work, 'data'), { RATE_LIMITS_ENABLED: 'false' });
const key = bootstrapKey(env);
const headers = { authorization: `Bearer ${key}` };
log(`gateway on :${port}, ${os.availableParallelism()} cores, load average ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}`);
const { child: gateway, url } = await startGateway(env);
const health = file('health', { query: '{ health { status } }' });

const loopMax = async () => {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith('modelgate_event_loop_delay_max_seconds '));
  return line ? Number(line.split(' ')[1]) * 1000 : NaN;
};

const results = [];
try {
  for (const row of rows) {
    log(row.name);
    const [probe, flood] = await Promise.all([
      loadgen(`${url}/graphql`, health, 1, SECONDS, {}),
      row.body ? loadgen(`${url}/graphql`, row.body, CLIENTS, SECONDS, headers) : Promise.resolve(null),
    ]);
    const bodyBytes = row.body ? readFileSync(row.body).length : 0;
    results.push({ ...row, bodyBytes, probe, flood, loopMaxMs: await loopMax() });
  }
} finally {
  gateway.kill('SIGTERM');
}

console.log(`\nHostile-input latency, ${new Date().toISOString().slice(0, 16)}Z, ${os.availableParallelism()} cores, GRAPHQL_MAX_LIST_ELEMENTS=${listLimit}, ${SECONDS} s per row, ${CLIENTS} flood clients, load average at end ${os.loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);
console.log('| flood (12 clients) | body | flood answers/s | health p50 | health p99 | p99 < 50 ms | loop delay max since start |');
console.log('|---|---|---|---|---|---|---|');
for (const r of results) {
  const rate = r.flood ? (floodCounted(r.flood) / SECONDS).toFixed(1) : '–';
  const mb = r.bodyBytes ? `${(r.bodyBytes / 1024 / 1024).toFixed(2)} MB` : '–';
  console.log(`| ${r.name} | ${mb} | ${rate} | ${r.probe.p50.toFixed(2)} ms | ${r.probe.p99.toFixed(2)} ms | ${r.probe.p99 < 50 ? 'yes' : 'no'} | ${r.loopMaxMs.toFixed(1)} ms |`);
}
for (const r of results) if (r.flood?.firstError) console.log(`\n${r.name}: first non-200 answer: ${r.flood.firstError.slice(0, 160)}`);
