#!/usr/bin/env node
// Response cache benchmark (issue #25 item 4), side by side in one run on one
// gateway: single-item OIP binary requests to fashion-cnn with
// `response_cache: { enable: true }`, (i) every request the same (all hits
// after the first), (ii) every request a different input (all misses: they
// hash, look up, run and store), (iii) the same model without the opt-in
// (no cache at all). Reports the gateway's own CPU time per request
// (utime+stime of its process, all threads, from /proc/<pid>/stat: robust to
// other load on the machine) and items/s, p50/p99 per round. Cells alternate
// in rounds so drift in the machine's load hits each alike. Target: a hit
// ≤ 0.3 ms CPU.
// Usage: npm run build:ts && node bench/response-cache.mjs  (needs wrk;
// BENCH_SECONDS=4 per cell, BENCH_ROUNDS=2, BENCH_CONCURRENCY=16,
// BENCH_DATABASE_URL, BENCH_REDIS_URL, BENCH_BILLED_FRACTION=0.1)
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, bootstrapKey, cpuSeconds, embeddedEnv, fixtureImages, freePort, log, startGateway, writeResultsSection } from './lib.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);

const image = Float32Array.from(fixtureImages().subarray(0, 784), (v) => v / 255);
const imageBytes = Buffer.from(image.buffer);

async function settle(pid) {
  for (let i = 0; i < 100; i += 1) {
    const before = cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, 300));
    if (cpuSeconds(pid) - before < 0.03) return;
  }
  log('gateway did not go idle within 30 s');
}

/**
 * wrk with the body file; `vary` rewrites the body's last 4 bytes (the last
 * pixel, as an FP32 with exponent byte 0x3c: a small finite value) from the
 * run's seed, the thread id and a per-thread counter (65,536 per thread and
 * run), so no two requests are the same input.
 */
let runs = 0;
function wrk(url, bodyFile, headers, vary) {
  runs += 1;
  const script = `${bodyFile}.${vary ? 'vary' : 'same'}.lua`;
  writeFileSync(script, [
    'local counter = 0',
    'local thread_id = 0',
    'local threads = {}',
    'function setup(thread) thread:set("id", #threads) table.insert(threads, thread) end',
    // args[1]: a seed per run, so a later run never repeats an earlier run's inputs.
    'local seed = 0',
    'function init(args) thread_id = id or 0 seed = tonumber(args[1]) or 0 end',
    'wrk.method = "POST"',
    `local f = io.open(${JSON.stringify(bodyFile)}, "rb")`,
    'local body = f:read("*a")',
    'f:close()',
    'wrk.body = body',
    ...Object.entries(headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`),
    ...(vary
      ? [
          'local prefix = body:sub(1, #body - 4)',
          'function request()',
          '  counter = counter + 1',
          '  local tail = string.char(counter % 256, math.floor(counter / 256) % 256, (seed * 4 + thread_id) % 256, 60)',
          '  return wrk.format(nil, nil, nil, prefix .. tail)',
          'end',
        ]
      : []),
  ].join('\n'));
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', ['-t2', `-c${CONCURRENCY}`, `-d${SECONDS}s`, '--latency', '-s', script, url, '--', String(runs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`wrk exited ${code}`));
      const ms = (label) => {
        const m = new RegExp(`${label}\\s+([\\d.]+)(us|ms|s)`).exec(out);
        return m ? Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2]] : NaN;
      };
      const completed = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
      const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) + Number(/Socket errors:.*?(\d+)/.exec(out)?.[1] ?? 0);
      resolve({ completed, requests: completed - errors, errors, p50: ms('50%'), p99: ms('99%') });
    });
  });
}

async function metric(base, name) {
  const text = await (await fetch(`${base}/metrics`)).text();
  return Number(new RegExp(`^${name}\\{model="fashion-cnn"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
}

const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-bench-cache-'));
const repo = path.join(work, 'models');
cpSync(path.join(ROOT, 'models', 'fashion-cnn'), path.join(repo, 'fashion-cnn'), { recursive: true });
const configFile = path.join(repo, 'fashion-cnn', 'config.json');
writeFileSync(configFile, JSON.stringify({ ...JSON.parse(readFileSync(configFile, 'utf8')), response_cache: { enable: true } }));
// The same model without the opt-in, under its own name.
cpSync(path.join(ROOT, 'models', 'fashion-cnn'), path.join(repo, 'fashion-cnn-plain'), { recursive: true });
const plainConfig = path.join(repo, 'fashion-cnn-plain', 'config.json');
writeFileSync(plainConfig, JSON.stringify({ ...JSON.parse(readFileSync(plainConfig, 'utf8')), name: 'fashion-cnn-plain' }));

const binJson = JSON.stringify({
  inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], parameters: { binary_data_size: imageBytes.length } }],
  outputs: [{ name: 'probabilities', parameters: { binary_data: true } }],
});
const bodyFile = path.join(work, 'body.bin');
writeFileSync(bodyFile, Buffer.concat([Buffer.from(binJson), imageBytes]));

const port = await freePort();
const env = embeddedEnv(port, path.join(work, 'data'), {
  MODEL_REPOSITORY: repo, DEFAULT_REQUESTS_PER_MINUTE: '100000000', DEFAULT_COMPUTE_UNITS_PER_MINUTE: '100000000',
  RESPONSE_CACHE_BILLED_FRACTION: process.env.BENCH_BILLED_FRACTION ?? '0.1',
  DATABASE_URL: process.env.BENCH_DATABASE_URL,
  ...(process.env.BENCH_REDIS_URL ? { REDIS_URL: process.env.BENCH_REDIS_URL, REDIS_KEY_PREFIX: `bench-cache-${Date.now()}:` } : {}),
});
const mode = `${env.DATABASE_URL ? 'PostgreSQL' : 'embedded PGlite'}, limits ${env.REDIS_URL ? 'on Redis' : 'in-process'}`;
const auth = { authorization: `Bearer ${bootstrapKey(env)}` };
log(`starting gateway on :${port} (${os.availableParallelism()} cores)`);
const { child: gateway } = await startGateway(env);
const base = `http://127.0.0.1:${port}`;
const headers = { ...auth, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(Buffer.byteLength(binJson)) };

const cells = {
  'hit (same input)': () => wrk(`${base}/v2/models/fashion-cnn/infer`, bodyFile, headers, false),
  'miss (new input each)': () => wrk(`${base}/v2/models/fashion-cnn/infer`, bodyFile, headers, true),
  'no cache (model without opt-in)': () => wrk(`${base}/v2/models/fashion-cnn-plain/infer`, bodyFile, headers, false),
};
const sums = Object.fromEntries(Object.keys(cells).map((k) => [k, { requests: 0, completed: 0, cpu: 0, seconds: 0, p50: [], p99: [], errors: 0, hits: 0, misses: 0 }]));
try {
  const res = await fetch(`${base}/v2/models/fashion-cnn/infer`, { method: 'POST', headers, body: readFileSync(bodyFile) });
  if (res.status !== 200) throw new Error(`check: ${res.status} ${await res.text()}`);
  for (const [name, run] of Object.entries(cells)) {
    log(`warm-up: ${name}`);
    await run();
  }
  for (let round = 1; round <= ROUNDS; round += 1) {
    for (const [name, run] of Object.entries(cells)) {
      await settle(gateway.pid);
      log(`round ${round}: ${name}`);
      const hits = await metric(base, 'modelgate_response_cache_hits_total');
      const misses = await metric(base, 'modelgate_response_cache_misses_total');
      const before = cpuSeconds(gateway.pid);
      const r = await run();
      await settle(gateway.pid);
      const cpu = cpuSeconds(gateway.pid) - before;
      const s = sums[name];
      s.hits += (await metric(base, 'modelgate_response_cache_hits_total')) - hits;
      s.misses += (await metric(base, 'modelgate_response_cache_misses_total')) - misses;
      s.requests += r.requests; s.completed += r.completed; s.cpu += cpu; s.seconds += SECONDS; s.errors += r.errors;
      s.p50.push(r.p50); s.p99.push(r.p99);
    }
  }
} finally {
  const exited = new Promise((resolve) => gateway.once('exit', resolve));
  gateway.kill('SIGTERM');
  await exited;
  rmSync(work, { recursive: true, force: true });
}

const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const loadavg = os.loadavg().map((l) => l.toFixed(1)).join(', ');
const section = [
  `Measured ${new Date().toISOString().slice(0, 16)}Z on ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? 'cpu'}; load average at the end ${loadavg}), fashion-cnn, OIP binary, single items, concurrency ${CONCURRENCY}, ${ROUNDS} rounds × ${SECONDS} s per cell, wrk -t2, ${mode}, usage records written (hits billed at ${env.RESPONSE_CACHE_BILLED_FRACTION}). Gateway CPU includes its inference worker threads. Hits and misses are the cache's own counters over the measured rounds.`,
  '',
  '| cell | requests/s | gateway CPU ms / request | p50 ms (per round) | p99 ms (per round) | cache hits | cache misses | errors |',
  '|---|---|---|---|---|---|---|---|',
  ...Object.entries(sums).map(([name, s]) => `| ${name} | ${f0(s.requests / s.seconds)} | ${f3((s.cpu * 1000) / s.completed)} | ${s.p50.map(f1).join(' / ')} | ${s.p99.map(f1).join(' / ')} | ${s.hits} | ${s.misses} | ${s.errors} |`),
].join('\n');
console.log(section);
writeResultsSection(env.DATABASE_URL ? 'response-cache-servers' : 'response-cache-embedded', `Response cache: hits vs misses (\`node bench/response-cache.mjs\`, ${mode})`, section);
