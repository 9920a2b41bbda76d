#!/usr/bin/env node
// JSON-bomb latency (issue #28 item 1): BENCH_BOMBS (8) concurrent gzip'd OIP
// JSON bodies (~19.5 KB each, 10 million zeros inside) sent to
// /v2/models/fashion-cnn/infer with a valid key, and one cheap GraphQL
// `{ health { status } }` query sent just after them; reports the health
// query's latency, each bomb's status and code, the whole run's wall time
// and the gateway's CPU seconds. Production build (node dist/main.js,
// NODE_ENV=production, embedded database, limits off).
// Usage: npm run build:ts && node bench/json-bomb.mjs   (BENCH_DIST=<other dist> to measure another build,
// BENCH_ROUNDS=3)
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { ROOT, bootstrapKey, cpuSeconds, embeddedEnv, freePort, log, startGateway } from './lib.mjs';

const BOMBS = Number(process.env.BENCH_BOMBS ?? 8);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const dist = process.env.BENCH_DIST ? path.resolve(process.env.BENCH_DIST) : path.join(ROOT, 'dist');

const bomb = gzipSync(Buffer.from(`{"inputs":[{"name":"image","datatype":"FP32","shape":[1,1,28,28],"data":[${'0,'.repeat(9_999_999)}0]}]}`), { level: 9 });

const port = await freePort();
const env = embeddedEnv(port, mkdtempSync(path.join(os.tmpdir(), 'modelgate-bomb-')), { RATE_LIMITS_ENABLED: 'false' });
const key = bootstrapKey(env, dist);
const { child, url } = await startGateway(env, { dist });
log(`gateway ${dist} on ${url}; bomb ${bomb.length} bytes gzip`);

async function round() {
  const cpu0 = cpuSeconds(child.pid);
  const t0 = performance.now();
  const bombs = Array.from({ length: BOMBS }, async () => {
    const res = await fetch(`${url}/v2/models/fashion-cnn/infer`, {
      method: 'POST',
      headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-encoding': 'gzip' },
      body: bomb,
    });
    const body = await res.json().catch(() => ({}));
    return `${res.status} ${body.code ?? '?'}`;
  });
  // Sent once the bombs are on their way, as a client of another tenant would.
  await new Promise((r) => setTimeout(r, 20));
  const h0 = performance.now();
  const health = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ health { status } }' }) });
  const healthMs = performance.now() - h0;
  const healthOk = health.status === 200 && (await health.json()).data?.health?.status !== undefined;
  const answers = await Promise.all(bombs);
  const wallMs = performance.now() - t0;
  return { healthMs: Math.round(healthMs), healthOk, wallMs: Math.round(wallMs), cpuS: Number((cpuSeconds(child.pid) - cpu0).toFixed(2)), answers: [...new Set(answers)].join(', ') };
}

try {
  const rows = [];
  for (let i = 0; i < ROUNDS; i += 1) rows.push(await round());
  console.log(`| round | health latency (ms) | health answered | all bombs answered (ms) | gateway CPU (s) | bomb answers |`);
  console.log(`|---|---|---|---|---|---|`);
  rows.forEach((r, i) => console.log(`| ${i + 1} | ${r.healthMs} | ${r.healthOk} | ${r.wallMs} | ${r.cpuS} | ${r.answers} |`));
} finally {
  child.kill('SIGTERM');
}
