#!/usr/bin/env node
// Front-door benchmark (issue #13), side by side in one run on one gateway:
// single-item requests at one concurrency over (i) OIP REST with binary
// tensors in and out, (ii) OIP REST with JSON tensors, (iii) GraphQL `infer`
// with dataBase64 in and out. Reports items/s, p50/p99 and the gateway's own
// CPU time per request (utime+stime of its process, all threads, from
// /proc/<pid>/stat before and after each cell: robust to other load on the
// machine, unlike wall-clock throughput). Cells run in rounds (i, ii, iii,
// i, ii, iii, …) so drift in the machine's load hits every protocol alike.
// Usage: npm run bench:oip  (needs wrk; BENCH_SECONDS=4 per cell, BENCH_ROUNDS=2,
// BENCH_CONCURRENCY=64, BENCH_MODELS=fashion-cnn,fashion-hybrid, BENCH_DATABASE_URL, BENCH_REDIS_URL)
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, writeFileSync, rmSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, bootstrapKey, cpuSeconds, embeddedEnv, fixtureImages, freePort, log, startGateway } from './lib.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 64);
const MODELS = (process.env.BENCH_MODELS ?? 'fashion-cnn,fashion-hybrid').split(',');
const images = fixtureImages();

const image = Float32Array.from(images.subarray(0, 784), (v) => v / 255);
const imageBytes = Buffer.from(image.buffer);

/**
 * One cell with wrk (C, so the client is not the bottleneck a Node load
 * generator is on 2 cores): `-c CONCURRENCY` connections, a Lua script that
 * sends the body file as is. Correctness is checked once per cell beforehand
 * (wrk counts an HTTP 200 carrying GraphQL errors as a success).
 */
/**
 * Waits until the gateway is idle (under 10% of a core over 300 ms, at most
 * 30 s): the work a cell leaves behind (usage records still being written)
 * must not be billed to the next cell.
 */
async function settle(pid) {
  for (let i = 0; i < 100; i += 1) {
    const before = cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, 300));
    if (cpuSeconds(pid) - before < 0.03) return;
  }
  log('gateway did not go idle within 30 s');
}

function wrk(url, bodyFile, headers) {
  const script = `${bodyFile}.lua`;
  writeFileSync(script, [
    'wrk.method = "POST"',
    `local f = io.open(${JSON.stringify(bodyFile)}, "rb")`,
    'wrk.body = f:read("*a")',
    'f:close()',
    ...Object.entries(headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`),
  ].join('\n'));
  return new Promise((resolve, reject) => {
    const child = spawn('wrk', [`-t${Math.min(2, CONCURRENCY)}`, `-c${CONCURRENCY}`, `-d${SECONDS}s`, '--latency', '-s', script, url], { stdio: ['ignore', 'pipe', 'inherit'] });
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

/** One request of the cell, checked: 200 and no GraphQL errors. */
async function check(url, bodyFile, headers, name) {
  const res = await fetch(url, { method: 'POST', headers, body: readFileSync(bodyFile) });
  const text = Buffer.from(await res.arrayBuffer()).toString('latin1');
  if (res.status !== 200 || text.includes('"errors"')) throw new Error(`${name}: ${res.status} ${text.slice(0, 300)}`);
}

const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-bench-oip-'));
const repo = path.join(work, 'models');
for (const name of MODELS) cpSync(path.join(ROOT, 'models', name), path.join(repo, name), { recursive: true });

/** The three request bodies of one model, each a file the load generator sends as is. */
function bodies(model) {
  const binJson = JSON.stringify({
    inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], parameters: { binary_data_size: imageBytes.length } }],
    outputs: [{ name: 'probabilities', parameters: { binary_data: true } }],
  });
  const files = {
    binary: path.join(work, `${model}.bin`),
    json: path.join(work, `${model}.oip.json`),
    graphql: path.join(work, `${model}.graphql.json`),
  };
  writeFileSync(files.binary, Buffer.concat([Buffer.from(binJson), imageBytes]));
  writeFileSync(files.json, JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], data: Array.from(image) }], outputs: [{ name: 'probabilities' }] }));
  writeFileSync(files.graphql, JSON.stringify({
    query: 'mutation($input: InferInput!) { infer(input: $input) { outputs { name dataBase64 } } }',
    variables: { input: { model, inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], dataBase64: imageBytes.toString('base64') }], outputs: ['probabilities'] } },
  }));
  return { files, binHeaderLength: Buffer.byteLength(binJson) };
}

// Limits on with room for the whole run, usage records written. Embedded
// (PGlite in the gateway process, in-process limiter) unless BENCH_DATABASE_URL
// / BENCH_REDIS_URL name real servers, which moves that work out of the process measured.
const port = await freePort();
const env = embeddedEnv(port, path.join(work, 'data'), {
  MODEL_REPOSITORY: repo, DEFAULT_REQUESTS_PER_MINUTE: '100000000', DEFAULT_COMPUTE_UNITS_PER_MINUTE: '100000000',
  DATABASE_URL: process.env.BENCH_DATABASE_URL,
  ...(process.env.BENCH_REDIS_URL ? { REDIS_URL: process.env.BENCH_REDIS_URL, REDIS_KEY_PREFIX: `bench-oip-${Date.now()}:` } : {}),
});
const mode = `${env.DATABASE_URL ? 'PostgreSQL' : 'embedded PGlite'}, limits ${env.REDIS_URL ? 'on Redis' : 'in-process'}`;
const auth = { authorization: `Bearer ${bootstrapKey(env)}` };
log(`starting gateway on :${port} (${os.availableParallelism()} cores)`);
const { child: gateway } = await startGateway(env);

const base = `http://127.0.0.1:${port}`;
const results = [];
try {
  for (const model of MODELS) {
    const { files, binHeaderLength } = bodies(model);
    const targets = {
      'OIP binary': [`${base}/v2/models/${model}/infer`, files.binary, { ...auth, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(binHeaderLength) }],
      'OIP JSON': [`${base}/v2/models/${model}/infer`, files.json, { ...auth, 'content-type': 'application/json' }],
      'GraphQL dataBase64': [`${base}/graphql`, files.graphql, { ...auth, 'content-type': 'application/json' }],
    };
    for (const [name, [url, file, headers]] of Object.entries(targets)) await check(url, file, headers, name);
    const cells = Object.fromEntries(Object.entries(targets).map(([name, [url, file, headers]]) => [name, () => wrk(url, file, headers)]));
    const sums = Object.fromEntries(Object.keys(cells).map((k) => [k, { requests: 0, completed: 0, cpu: 0, seconds: 0, p50: [], p99: [], errors: 0 }]));
    // Warm-up, not counted: JIT, first usage-record batches, sockets.
    for (const [name, run] of Object.entries(cells)) {
      log(`${model} warm-up: ${name}`);
      await run();
    }
    for (let round = 1; round <= ROUNDS; round += 1) {
      for (const [name, run] of Object.entries(cells)) {
        await settle(gateway.pid);
        log(`${model} round ${round}: ${name}`);
        const before = cpuSeconds(gateway.pid);
        const r = await run();
        // The cell's whole cost: what it queued (usage records) is written before the next one starts.
        await settle(gateway.pid);
        const cpu = cpuSeconds(gateway.pid) - before;
        if (r.errors) log(`  ${r.errors} errors, first: ${r.firstError}`);
        const s = sums[name];
        s.requests += r.requests; s.completed += r.completed; s.cpu += cpu; s.seconds += SECONDS; s.errors += r.errors;
        s.p50.push(r.p50); s.p99.push(r.p99);
      }
    }
    for (const [name, s] of Object.entries(sums)) {
      results.push({ model, name, itemsPerSecond: s.requests / s.seconds, cpuMsPerRequest: (s.cpu * 1000) / s.completed, p50: s.p50, p99: s.p99, errors: s.errors });
    }
  }
} finally {
  // Let it drain and flush usage records before its data directory goes.
  const exited = new Promise((resolve) => gateway.once('exit', resolve));
  gateway.kill('SIGTERM');
  await exited;
  rmSync(work, { recursive: true, force: true });
}

const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const f1 = (x) => (Number.isFinite(x) ? x.toFixed(1) : 'n/a');
const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const loadavg = os.loadavg().map((l) => l.toFixed(1)).join(', ');
const lines = [
  `Measured ${new Date().toISOString().slice(0, 16)}Z on ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? 'cpu'}; load average at the end ${loadavg}), concurrency ${CONCURRENCY}, ${ROUNDS} rounds × ${SECONDS} s per cell, single-image requests, wrk -t2, ${mode}, usage records written. Gateway CPU includes its inference worker threads (the model's compute, the same for every front door).`,
  '',
  '| model | front door | items/s | gateway CPU ms / request | p50 ms (per round) | p99 ms (per round) | items/s vs GraphQL | CPU vs GraphQL | errors |',
  '|---|---|---|---|---|---|---|---|---|',
  ...results.map((r) => {
    const g = results.find((x) => x.model === r.model && x.name === 'GraphQL dataBase64');
    return `| ${r.model} | ${r.name} | ${f0(r.itemsPerSecond)} | ${f3(r.cpuMsPerRequest)} | ${r.p50.map(f1).join(' / ')} | ${r.p99.map(f1).join(' / ')} | ${f2(r.itemsPerSecond / g.itemsPerSecond)} | ${f2(r.cpuMsPerRequest / g.cpuMsPerRequest)} | ${r.errors} |`;
  }),
];
const section = lines.join('\n');
console.log(section);
const resultsFile = path.join(ROOT, 'bench/RESULTS.md');
let text = existsSync(resultsFile) ? readFileSync(resultsFile, 'utf8') : '# Benchmark results\n';
// One section per mode (embedded, or real servers), each replaced by its own next run.
const tag = env.DATABASE_URL ? 'oip-servers' : 'oip-embedded';
const begin = `<!-- ${tag}:begin -->`;
const end = `<!-- ${tag}:end -->`;
const block = `${begin}\n## Front doors: OIP binary, OIP JSON, GraphQL (\`npm run bench:oip\`, ${mode})\n\n${section}\n${end}`;
text = text.includes(begin) ? text.replace(new RegExp(`${begin}[\\s\\S]*${end}`), block) : `${text.trimEnd()}\n\n${block}\n`;
writeFileSync(resultsFile, text);
log(`wrote ${path.relative(process.cwd(), resultsFile)}`);
