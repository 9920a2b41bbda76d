#!/usr/bin/env node
// Where a lone request's time goes (issue #25, "a lone request does not wait"): one production
// gateway (`node dist/main.js`, NODE_ENV=production, Postgres + Redis limits + durable usage),
// fashion-cnn over OIP binary at concurrency 1 (one request after another from this process,
// keep-alive), every span exported over OTLP/HTTP to a sink in this process. Prints the client's
// p50/p99 and, per step span (authenticate, admit, validate, queue, run, record, …), the median
// duration over the same requests, and what the server span holds beyond its steps (HTTP parse,
// the door's decode/encode, hooks). Spans are exported in batches off the request path, but their
// bookkeeping is not free: read the step split, not the absolute p50, from this bench
// (`npm run bench:guard` gives the untraced p50 side by side with a base).
//   npm run build:ts && node bench/lone-request.mjs [requests=500]
//   BENCH_DIST=<other dist> measures another build; BENCH_MODEL=fashion-hybrid another model.
import http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ROOT, bootstrapKey, fixtureImages, fullPathGateway, log, oipImageRequest, startGateway } from './lib.mjs';

const REQUESTS = Number(process.argv[2] ?? 500);
const MODEL = process.env.BENCH_MODEL ?? 'fashion-cnn';
const DIST = path.resolve(process.env.BENCH_DIST ?? path.join(ROOT, 'dist'));
const ADMIN_DB = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const WARMUP = 100;

// ---- the span sink: OTLP/HTTP JSON, durations per span name ---------------------------------
const spans = []; // { traceId, spanId, parentSpanId, name, ms }
const sink = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      for (const rs of body.resourceSpans ?? []) {
        for (const ss of rs.scopeSpans ?? []) {
          for (const s of ss.spans ?? []) {
            spans.push({ traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId || null, name: s.name, ms: Number(BigInt(s.endTimeUnixNano) - BigInt(s.startTimeUnixNano)) / 1e6 });
          }
        }
      }
    } catch {
      // a protobuf export would land here: the gateway is configured for JSON below
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
await new Promise((resolve) => sink.listen(0, '127.0.0.1', resolve));
const sinkUrl = `http://127.0.0.1:${sink.address().port}/v1/traces`;

// ---- the gateway ----------------------------------------------------------------------------
const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-lone-'));
const admin = new pg.Client({ connectionString: ADMIN_DB });
await admin.connect();
const databases = [];
const { env, port } = await fullPathGateway(admin, databases, {
  adminUrl: ADMIN_DB, redisUrl: REDIS_URL, name: `lone_${process.pid}`, dataDir: path.join(work, 'data'),
  extra: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: sinkUrl, OTEL_TRACES_SAMPLER: 'always_on' },
});
let gateway;
try {
  const key = bootstrapKey(env, DIST);
  gateway = await startGateway(env, { dist: DIST, what: 'gateway' });

  const { body, headerLength } = oipImageRequest(Float32Array.from(fixtureImages().subarray(16, 16 + 784), (b) => b / 255));
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const once = () => new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const req = http.request({ host: '127.0.0.1', port, path: `/v2/models/${MODEL}/infer`, method: 'POST', agent, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(headerLength), 'content-length': String(body.length) } }, (res) => {
      res.resume();
      res.on('end', () => (res.statusCode === 200 ? resolve(Number(process.hrtime.bigint() - started) / 1e6) : reject(new Error(`HTTP ${res.statusCode}`))));
    });
    req.on('error', reject);
    req.end(body);
  });
  log(`${MODEL}, OIP binary, c=1: ${WARMUP} warm-up requests, then ${REQUESTS}; ${os.availableParallelism()} cores, load ${os.loadavg()[0].toFixed(2)}`);
  for (let i = 0; i < WARMUP; i += 1) await once();
  await new Promise((r) => setTimeout(r, 1500)); // let the warm-up's spans export, then forget them
  spans.length = 0;
  const latencies = [];
  for (let i = 0; i < REQUESTS; i += 1) {
    latencies.push(await once());
    if ((i + 1) % 100 === 0) log(`${i + 1}/${REQUESTS} requests`);
  }
  await new Promise((r) => setTimeout(r, 2500)); // the batch span processor's scheduled export

  const median = (xs) => {
    if (xs.length === 0) return NaN;
    const s = [...xs].sort((a, b) => a - b);
    const mid = Math.floor(s.length / 2);
    return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
  };
  const pct = (xs, p) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
  const roots = spans.filter((s) => s.parentSpanId === null);
  const byName = new Map();
  for (const s of spans) if (s.parentSpanId !== null) byName.set(s.name, [...(byName.get(s.name) ?? []), s.ms]);
  // Per trace: the server span minus the sum of its direct children = the door's own time.
  const childrenOf = new Map();
  for (const s of spans) if (s.parentSpanId) childrenOf.set(s.parentSpanId, [...(childrenOf.get(s.parentSpanId) ?? []), s]);
  const doorOwn = roots.map((r) => r.ms - (childrenOf.get(r.spanId) ?? []).reduce((a, c) => a + c.ms, 0));

  const rows = [
    ['client round trip', median(latencies), pct(latencies, 99), latencies.length],
    ['server span (HTTP request in the gateway)', median(roots.map((r) => r.ms)), pct(roots.map((r) => r.ms), 99), roots.length],
    ...[...byName].sort((a, b) => median(b[1]) - median(a[1])).map(([name, xs]) => [`  step: ${name}`, median(xs), pct(xs, 99), xs.length]),
    ['  server span beyond its steps (body read, decode, encode, hooks)', median(doorOwn), pct(doorOwn, 99), doorOwn.length],
  ];
  console.log(`\nbench:lone-request ${new Date().toISOString().slice(0, 16)}Z, ${path.relative(ROOT, DIST) || DIST}, ${MODEL} over OIP binary, c=1, ${REQUESTS} requests, load ${os.loadavg()[0].toFixed(2)} at the end\n`);
  console.log('| what | p50 ms | p99 ms | n |\n|---|---|---|---|');
  for (const [what, p50, p99, n] of rows) console.log(`| ${what} | ${p50.toFixed(3)} | ${p99.toFixed(3)} | ${n} |`);
  console.log('\nSteps can overlap (record runs beside run since the provisional usage record); step spans nest under `infer` where the door has one.');
} finally {
  if (gateway) {
    gateway.child.kill('SIGTERM');
    await new Promise((r) => gateway.child.once('exit', r));
  }
  sink.close();
  for (const db of databases) await admin.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() => undefined);
  await admin.end();
  rmSync(work, { recursive: true, force: true });
}
