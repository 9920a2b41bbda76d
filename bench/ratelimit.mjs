#!/usr/bin/env node
// `npm run bench:limits`: what authentication + rate limits cost per request.
// Two gateways in this process on the local PostgreSQL and Redis, identical
// but for RATE_LIMITS_ENABLED, receive the same authenticated cheap query
// (`{ health { status } }` with an API key) one request at a time,
// alternating between them so drift hits both alike. A third column is the
// same query without a key (no authentication, no limits). Also times
// RateLimitService.check() alone (one Redis round trip).
//   BENCH_REQUESTS (default 3000 per gateway), TEST_ADMIN_DATABASE_URL, TEST_REDIS_URL
import http from 'node:http';
import os from 'node:os';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import pg from 'pg';
import Redis from 'ioredis';

const require = createRequire(import.meta.url);
const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
require('reflect-metadata');
const { loadConfig } = require(path.join(root, 'dist/config'));
const { createGateway } = require(path.join(root, 'dist/app/gateway'));
const { createLogger } = require(path.join(root, 'dist/log/logger'));
const { applyMigrations } = require(path.join(root, 'dist/db/migrate'));

const loadAtStart = os.loadavg()[0];
const REQUESTS = Number(process.env.BENCH_REQUESTS ?? 3000);
const WARMUP = 300;
const adminUrl = process.env.TEST_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const redisUrl = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const runId = randomBytes(4).toString('hex');
const dbName = `modelgate_bench_${runId}`;
const prefix = `mgbench:${runId}:`;

const admin = new pg.Client({ connectionString: adminUrl });
await admin.connect();
await admin.query(`CREATE DATABASE "${dbName}"`);
const dbUrl = new URL(adminUrl);
dbUrl.pathname = `/${dbName}`;

const gateways = [];
try {
  await applyMigrations({ kind: 'postgres', url: dbUrl.toString() });
  const env = (enabled, redis = true) => ({
    NODE_ENV: 'production', PORT: '0', GRPC_PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', LOG_PRETTY: 'false',
    DATABASE_URL: dbUrl.toString(), ...(redis ? { REDIS_URL: redisUrl } : {}), REDIS_KEY_PREFIX: prefix, MODEL_REPOSITORY: path.join(root, 'models'),
    MIGRATE_ON_START: 'false', RATE_LIMITS_ENABLED: enabled ? 'true' : 'false',
    // The bench makes its own key; a first-run admin key would only be printed and thrown away.
    BOOTSTRAP_ADMIN: 'false',
    // High enough never to refuse: the bench measures the cost of checking, not refusals.
    DEFAULT_REQUESTS_PER_MINUTE: '100000000', DEFAULT_COMPUTE_UNITS_PER_MINUTE: '1000000000',
  });
  const logger = createLogger({ level: 'silent', pretty: false });
  for (const [enabled, redis] of [[true, true], [false, true], [true, false]]) {
    const gw = await createGateway(loadConfig(env(enabled, redis)), { logger });
    gateways.push({ enabled, gw, url: await gw.listen() });
  }
  for (const { url } of gateways) await waitReady(url);

  const { keys } = gateways[0].gw.services;
  const tenant = await keys.createTenant({ principal: null, actor: 'bench' }, { name: `bench-${runId}` });
  const created = await keys.createApiKey({ principal: null, actor: 'bench' }, { tenant: tenant.id, name: 'bench', scopes: ['inference'] });
  const key = created.plaintext;

  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const body = JSON.stringify({ query: '{ health { status } }' });
  const withKey = { authorization: `Bearer ${key}` };
  const columns = [
    { name: 'auth + limits', url: gateways[0].url, headers: withKey, samples: [] },
    { name: 'auth, limits disabled', url: gateways[1].url, headers: withKey, samples: [] },
    { name: 'no key (neither)', url: gateways[1].url, headers: {}, samples: [] },
    { name: 'auth + limits in-process (no REDIS_URL: the plugin without the round trip)', url: gateways[2].url, headers: withKey, samples: [] },
  ];
  const first = await post(columns[0].url, body, columns[0].headers, agent);
  if (!first.headers['ratelimit']) throw new Error('the limited gateway sent no RateLimit header: limits are not being checked');
  for (let i = 0; i < WARMUP + REQUESTS; i += 1) {
    for (const c of columns) {
      const started = performance.now();
      const res = await post(c.url, body, c.headers, agent);
      const ms = performance.now() - started;
      if (res.status !== 200) throw new Error(`${c.name}: HTTP ${res.status} ${res.text.slice(0, 200)}`);
      if (i >= WARMUP) c.samples.push(ms);
    }
  }

  // The service call alone (no HTTP): one EVALSHA per check. Interleaved with
  // the same check for a key whose tenant and key both have a money budget and
  // a credit balance (refilling daily) and whose model has a price: 9 limits
  // instead of 5 (8 shown: the tenant has no quota), plus the (cached) price lookup.
  const limits = gateways[0].gw.services.limits;
  const principal = await gateways[0].gw.services.auth.authenticate({ authorization: `Bearer ${key}` });
  const budget = { monthlyBudget: { amountMicros: '1000000000000000', currency: 'USD' }, credits: { refillAmount: 1000000000, refillInterval: 'DAILY' } };
  const richTenant = await keys.createTenant({ principal: null, actor: 'bench' }, { name: `bench-rich-${runId}`, ...budget });
  const rich = await keys.createApiKey({ principal: null, actor: 'bench' }, { tenant: richTenant.id, name: 'bench-rich', scopes: ['inference'], ...budget });
  await gateways[0].gw.services.db.prisma.price.create({
    data: { model: 'bench-model', tenantId: null, currency: 'USD', microsPerUnit: 1n, effectiveFrom: new Date(Date.UTC(2026, 0, 1)), createdBy: 'bench' },
  });
  const richPrincipal = await gateways[0].gw.services.auth.authenticate({ authorization: `Bearer ${rich.plaintext}` });
  const checkSamples = [];
  const richSamples = [];
  for (let i = 0; i < WARMUP + REQUESTS; i += 1) {
    let started = performance.now();
    const d = await limits.check(principal, { computeUnits: 3, model: 'bench-model' });
    if (!d.allowed || d.source !== 'redis') throw new Error(`check: ${JSON.stringify(d)}`);
    if (i >= WARMUP) checkSamples.push(performance.now() - started);
    started = performance.now();
    const r = await limits.check(richPrincipal, { computeUnits: 3, model: 'bench-model' });
    if (!r.allowed || r.source !== 'redis' || r.states.length !== 8) throw new Error(`check with budgets and credits: ${JSON.stringify(r)}`);
    if (i >= WARMUP) richSamples.push(performance.now() - started);
  }

  // The floor: one bare Redis round trip from this process.
  const client = gateways[0].gw.services.redis.client;
  const pingSamples = [];
  for (let i = 0; i < WARMUP + REQUESTS; i += 1) {
    const started = performance.now();
    await client.ping();
    if (i >= WARMUP) pingSamples.push(performance.now() - started);
  }

  const p = (xs, q) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(q * s.length))]; };
  const fmt = (x) => x.toFixed(3);
  const [on, off, anon, local] = columns;
  const added50 = p(on.samples, 0.5) - p(off.samples, 0.5);
  const added99 = p(on.samples, 0.99) - p(off.samples, 0.99);
  const lines = [
    `Measured ${new Date().toISOString().slice(0, 16)}Z, load average ${loadAtStart.toFixed(1)} at start, on ${os.availableParallelism()} cores (${os.cpus()[0]?.model.trim() ?? '?'}), ${REQUESTS} sequential requests per column after ${WARMUP} warm-up, columns interleaved, one keep-alive connection; query \`{ health { status } }\`; Redis and PostgreSQL local.`,
    '',
    '| column | p50 ms | p90 ms | p99 ms |',
    '|---|---|---|---|',
    ...columns.map((c) => `| ${c.name} | ${fmt(p(c.samples, 0.5))} | ${fmt(p(c.samples, 0.9))} | ${fmt(p(c.samples, 0.99))} |`),
    `| RateLimitService.check() alone (5 limits, one EVALSHA) | ${fmt(p(checkSamples, 0.5))} | ${fmt(p(checkSamples, 0.9))} | ${fmt(p(checkSamples, 0.99))} |`,
    `| RateLimitService.check() with key + tenant money budgets and credit balances (9 limits, cached price, one EVALSHA) | ${fmt(p(richSamples, 0.5))} | ${fmt(p(richSamples, 0.9))} | ${fmt(p(richSamples, 0.99))} |`,
    `| Redis PING round trip (the floor for any shared limit) | ${fmt(p(pingSamples, 0.5))} | ${fmt(p(pingSamples, 0.9))} | ${fmt(p(pingSamples, 0.99))} |`,
    '',
    `Limits add **${fmt(added50)} ms at p50** (${fmt(added99)} ms at p99) per authenticated request (target ≤ 0.3 ms at p50); authentication (cached key) adds ${fmt(p(off.samples, 0.5) - p(anon.samples, 0.5))} ms at p50 over an anonymous request; limits without Redis (in-process) add ${fmt(p(local.samples, 0.5) - p(off.samples, 0.5))} ms. Money budgets and credit balances on both key and tenant add ${fmt(p(richSamples, 0.5) - p(checkSamples, 0.5))} ms at p50 (${fmt(p(richSamples, 0.99) - p(checkSamples, 0.99))} ms at p99) to a check; without them configured a check runs exactly the 5 limits it did before.`,
  ];
  const text = lines.join('\n');
  process.stdout.write(`${text}\n`);
  const results = path.join(root, 'bench', 'RESULTS.md');
  if (existsSync(results)) {
    const section = `<!-- ratelimit:begin -->\n## Rate limits (\`npm run bench:limits\`)\n\n${text}\n<!-- ratelimit:end -->`;
    const current = readFileSync(results, 'utf8');
    const next = current.includes('<!-- ratelimit:begin -->')
      ? current.replace(/<!-- ratelimit:begin -->[\s\S]*<!-- ratelimit:end -->/, section)
      : `${current.trimEnd()}\n\n${section}\n`;
    writeFileSync(results, next);
  }
} finally {
  for (const { gw } of gateways) await gw.close('bench');
  await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await admin.end();
  const redis = new Redis(redisUrl);
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    if (found.length) await redis.del(...found);
  } while (cursor !== '0');
  await redis.quit();
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
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: Buffer.concat(chunks).toString() }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

async function waitReady(url) {
  for (let i = 0; i < 300; i += 1) {
    try {
      const res = await fetch(`${url}/readyz`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${url} not ready`);
}
