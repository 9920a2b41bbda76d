#!/usr/bin/env node
// `npm run bench:webhooks`: what webhooks cost and how fast they arrive.
// 1. Delivery latency: event committed to the outbox → the receiver (this
//    process) has it, over BENCH_EVENTS key revocations (key.revoked), (a) on
//    the replica that committed it (its dispatcher is woken at commit) and
//    (b) committed on a replica that delivers nothing, so another replica's
//    poll (WEBHOOK_POLL_INTERVAL_MS, default 1000) finds it.
// 2. Request-path cost: BENCH_REQUESTS inference requests (1 item, 8 at a
//    time) as a tenant with a webhook endpoint (every event, a quota, so each
//    usage batch runs the threshold check in its transaction) and as one
//    without, alternating blocks of 250 (and which goes first) so drift hits both alike; p50/p99
//    latency and process CPU per request (client included, same for both).
// 3. The usage batch insert (1000 records) where the threshold check runs:
//    without the hook, with it for a tenant without an endpoint, and with one.
//   BENCH_EVENTS (default 200), BENCH_REQUESTS (default 4000), TEST_ADMIN_DATABASE_URL, TEST_REDIS_URL
import http from 'node:http';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { createRequire } from 'node:module';
import pg from 'pg';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
require('reflect-metadata');
const { loadConfig } = require(path.join(root, 'dist/config'));
const { createGateway } = require(path.join(root, 'dist/app/gateway'));
const { createLogger } = require(path.join(root, 'dist/log/logger'));
const { applyMigrations } = require(path.join(root, 'dist/db/migrate'));
const { UsageService } = require(path.join(root, 'dist/usage/usage.service'));
const { UsageAlerts } = require(path.join(root, 'dist/webhooks/usage-alerts'));

const EVENTS = Number(process.env.BENCH_EVENTS ?? 200);
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 4000);
const adminUrl = process.env.TEST_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const runId = randomBytes(4).toString('hex');
const dbName = `modelgate_bench_${runId}`;
const loadAtStart = os.loadavg()[0];

const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE "${dbName}"`);
const dbUrl = new URL(adminUrl);
dbUrl.pathname = `/${dbName}`;

// The receiver: arrival time per event id.
const arrivals = new Map();
const receiver = http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString());
    if (!arrivals.has(body.id)) arrivals.set(body.id, { at: Date.now(), createdAt: Date.parse(body.createdAt) });
    res.writeHead(200).end();
  });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
const receiverUrl = `http://127.0.0.1:${receiver.address().port}/hook`;

const gateways = [];
try {
  await applyMigrations({ kind: 'postgres', url: dbUrl.toString() });
  const env = (withKey) => ({
    NODE_ENV: 'production', PORT: '0', GRPC_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', LOG_PRETTY: 'false',
    DATABASE_URL: dbUrl.toString(), REDIS_URL: redisUrl, REDIS_KEY_PREFIX: `mgbench:${runId}:`, MODEL_REPOSITORY: path.join(root, 'models'),
    MIGRATE_ON_START: 'false', BOOTSTRAP_ADMIN: 'false', DEFAULT_REQUESTS_PER_MINUTE: '100000000', DEFAULT_COMPUTE_UNITS_PER_MINUTE: '1000000000',
    WEBHOOK_ALLOW_PRIVATE_ADDRESSES: 'true', DATA_DIR: path.join(os.tmpdir(), `mgbench-${runId}-${withKey}`),
    // Without the key a replica delivers nothing: the second one only commits events.
    ...(withKey ? { WEBHOOK_SECRET_ENCRYPTION_KEY: randomBytes(32).toString('hex') } : {}),
  });
  const logger = createLogger({ level: 'silent', pretty: false });
  for (const withKey of [true, false]) {
    const gw = await createGateway(loadConfig(env(withKey)), { logger });
    gateways.push({ gw, url: await gw.listen() });
  }
  for (const { url } of gateways) await waitReady(url);
  const [deliverer, silent] = gateways;
  const caller = { principal: null, actor: 'bench' };
  const { keys, webhooks } = deliverer.gw.services;

  // ---- 1. delivery latency ----
  const latency = {};
  for (const [label, via] of [['same replica (woken at commit)', deliverer], ['other replica (found by poll)', silent]]) {
    const tenant = await keys.createTenant(caller, { name: `bench-${label.split(' ')[0]}-${runId}` });
    await webhooks.create(caller, tenant.id, { url: receiverUrl, events: ['key.revoked'] });
    const ids = [];
    for (let i = 0; i < EVENTS; i++) ids.push((await keys.createApiKey(caller, { tenant: tenant.id, name: `k${i}`, scopes: ['inference'] })).apiKey.id);
    const before = arrivals.size;
    for (const id of ids) {
      await via.gw.services.keys.revokeApiKey(caller, id);
      await new Promise((r) => setTimeout(r, 5)); // a stream of events, not one burst
    }
    while (arrivals.size < before + EVENTS) await new Promise((r) => setTimeout(r, 20));
    const ms = [...arrivals.values()].slice(before).map((a) => a.at - a.createdAt).sort((a, b) => a - b);
    latency[label] = { p50: pct(ms, 50), p99: pct(ms, 99), max: ms[ms.length - 1] };
  }

  // ---- 2. request-path cost ----
  const withHook = await keys.createTenant(caller, { name: `bench-with-${runId}`, monthlyComputeUnitQuota: 2_000_000_000 });
  await webhooks.create(caller, withHook.id, { url: receiverUrl });
  const without = await keys.createTenant(caller, { name: `bench-without-${runId}`, monthlyComputeUnitQuota: 2_000_000_000 });
  const keyOf = async (t) => (await keys.createApiKey(caller, { tenant: t.id, name: 'bench', scopes: ['inference'] })).plaintext;
  const sides = { with: { key: await keyOf(withHook), ms: [], cpuUs: 0, n: 0 }, without: { key: await keyOf(without), ms: [], cpuUs: 0, n: 0 } };
  const body = JSON.stringify({ query: `mutation { infer(input: {model: "fashion-cnn", inputs: [{name: "image", datatype: FP32, shape: [1,1,28,28], dataBase64: "${Buffer.alloc(784 * 4).toString('base64')}"}]}) { modelName } }` });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  for (const side of Object.values(sides)) await run(side, 200, false); // warm-up
  // Alternating blocks, and which side goes first alternates too (the first of a pair ran slower in early runs).
  for (let done = 0, round = 0; done < REQUESTS; done += 250, round += 1) {
    const order = round % 2 === 0 ? [sides.with, sides.without] : [sides.without, sides.with];
    for (const side of order) await run(side, 250, true);
  }
  async function run(side, n, count) {
    const cpu = process.cpuUsage();
    let next = 0;
    await Promise.all(Array.from({ length: 8 }, async () => {
      while (next < n) {
        next += 1;
        const t = performance.now();
        const res = await post(deliverer.url, body, { authorization: `Bearer ${side.key}` }, agent);
        if (res.status !== 200) throw new Error(`infer answered ${res.status}: ${res.text}`);
        if (count) side.ms.push(performance.now() - t);
      }
    }));
    await deliverer.gw.services.usage.flush(); // the batch transaction (and the hook) counted with its requests
    const used = process.cpuUsage(cpu);
    if (count) {
      side.cpuUs += used.user + used.system;
      side.n += n;
    }
  }
  const rows = Object.entries(sides).map(([name, s]) => {
    const ms = s.ms.sort((a, b) => a - b);
    return { endpoint: name, requests: s.n, p50Ms: pct(ms, 50).toFixed(3), p99Ms: pct(ms, 99).toFixed(3), cpuMsPerRequest: (s.cpuUs / s.n / 1000).toFixed(3) };
  });
  // ---- 3. the usage batch insert alone: no hook, hook for a tenant without an endpoint, with one ----
  const batch = {};
  for (const [label, tenant, hook] of [['no hook', without, false], ['hook, no endpoint', without, true], ['hook, endpoint', withHook, true]]) {
    const cfg = loadConfig({ ...env(true), USAGE_SPOOL_DIR: path.join(os.tmpdir(), `mgbench-${runId}-spool-${label.replace(/\W/g, '')}`), USAGE_FLUSH_INTERVAL_MS: '60000' });
    const usage = new UsageService({ config: cfg.usage, db: deliverer.gw.services.db, log: createLogger({ level: 'silent', pretty: false }),
      ...(hook ? { commitHook: new UsageAlerts({ defaultMonthlyQuota: null, rateLimitBurst: 100, onEvents: () => undefined }) } : {}) });
    await usage.start();
    const ms = [];
    for (let b = 0; b < 12; b++) {
      const records = Array.from({ length: 1000 }, (_, i) => ({ id: `${runId}-${label}-${b}-${i}`, tenantId: tenant.id, apiKeyId: null, model: 'fashion-cnn', modelVersion: '1', items: 1, computeUnits: 1, status: 'OK', latencyMs: 1, queueMs: 0, computeMs: 1, executionProvider: 'cpu', protocol: 'GRAPHQL', createdAt: new Date() }));
      await Promise.all(records.map((r) => usage.record(r)));
      const t = performance.now();
      await usage.flush();
      if (b >= 2) ms.push(performance.now() - t);
    }
    await usage.close();
    ms.sort((a, b) => a - b);
    batch[label] = { batches: ms.length, recordsPerBatch: 1000, medianMs: pct(ms, 50).toFixed(2), maxMs: ms[ms.length - 1].toFixed(2) };
  }

  const events = await new pg.Client({ connectionString: dbUrl.toString() });
  await events.connect();
  const outbox = (await events.query('SELECT count(*)::int AS n FROM "WebhookEvent"')).rows[0].n;
  await events.end();
  console.log(JSON.stringify({ cpus: os.cpus().length, loadAtStart, loadAtEnd: os.loadavg()[0], events: EVENTS, latencyMs: latency, requestPath: rows, usageBatchInsert: batch, outboxEvents: outbox }, null, 2));
} finally {
  for (const { gw } of gateways) await gw.close('bench');
  receiver.close();
  await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await admin.end();
}

function pct(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
}

function post(url, body, headers, agent) {
  const target = new URL('/graphql', url);
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode, text: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function waitReady(url) {
  for (let i = 0; i < 600; i += 1) {
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready`);
}
