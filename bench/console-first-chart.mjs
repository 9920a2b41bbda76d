// Time to first chart in the web console for a tenant with N usage records
// (default 1,000,000, all in the last 24 hours: the console's default view
// reads every one of them through usageSummary). Builds nothing: run
// `npm run build:ts` first. Uses the local PostgreSQL (a fresh database,
// dropped after) and Debian's chromium; no Redis (limits in-process).
//   node bench/console-first-chart.mjs [records] [runs]
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import pg from 'pg';
import { chromium } from 'playwright-core';
import { freePort, waitReady } from './lib.mjs';

const require = createRequire(import.meta.url);
const { perBucketSql, rollupUpsert } = require('../dist/usage/usage.service.js');

const RECORDS = Number(process.argv[2] ?? 1_000_000);
const RUNS = Number(process.argv[3] ?? 3);
const CHUNK = 250_000;
const ADMIN_URL = process.env.TEST_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const dbName = `modelgate_console_bench_${Date.now().toString(36)}`;
const dbUrl = new URL(ADMIN_URL);
dbUrl.pathname = `/${dbName}`;
const env = { PATH: process.env.PATH, DATABASE_URL: dbUrl.toString(), NODE_ENV: 'production', LOG_LEVEL: 'warn', HOST: '127.0.0.1' };

const port = await freePort();
const admin = new pg.Client({ connectionString: ADMIN_URL });
await admin.connect();
await admin.query(`CREATE DATABASE "${dbName}"`);
let gateway;
try {
  gateway = spawn(process.execPath, ['dist/main.js'], { env: { GRPC_PORT: '0', ...env, PORT: String(port) }, stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  await waitReady(`${url}/readyz`, gateway);
  const cli = (...args) => execFileSync(process.execPath, ['dist/cli/main.js', ...args], { env, encoding: 'utf8' }).trim();
  cli('tenants', 'create', 'bench-tenant');
  const key = cli('keys', 'create', '--tenant', 'bench-tenant', '--scopes', 'usage:read', '--name', 'reader');
  const keyIds = [cli('keys', 'create', '--tenant', 'bench-tenant', '--scopes', 'inference', '--name', 'a'), cli('keys', 'create', '--tenant', 'bench-tenant', '--scopes', 'inference', '--name', 'b')];

  const db = new pg.Client({ connectionString: dbUrl.toString() });
  // The cleanup's DROP DATABASE … WITH (FORCE) ends this connection: that must not hide the error that led there.
  db.on('error', () => undefined);
  await db.connect();
  const { rows: [tenant] } = await db.query(`SELECT id FROM "Tenant" WHERE name = 'bench-tenant'`);
  const { rows: keys } = await db.query(`SELECT id FROM "ApiKey" WHERE "tenantId" = $1 AND name IN ('a', 'b')`, [tenant.id]);
  if (keys.length !== keyIds.length) throw new Error('keys not found');
  const cols = `"id","tenantId","apiKeyId","model","modelVersion","items","computeUnits","status","latencyMs","queueMs","computeMs","executionProvider","protocol","createdAt"`;
  const fillStarted = performance.now();
  for (let from = 0; from < RECORDS; from += CHUNK) {
    const to = Math.min(RECORDS, from + CHUNK);
    await db.query('BEGIN');
    await db.query(`CREATE TEMP TABLE IF NOT EXISTS stage (LIKE "UsageRecord" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`);
    // Same shape as live traffic: 4 models, 2 keys, 90 % OK, log-spread latency, uniformly over the 24 hours the default view shows.
    await db.query(`INSERT INTO stage (${cols})
      SELECT 'bench-' || i, $1::uuid, (ARRAY[$2, $3]::uuid[])[1 + (i % 2)],
             (ARRAY['fashion-cnn','fashion-lstm','fashion-attention','fashion-hybrid'])[1 + (i % 4)], '1',
             CASE WHEN st = 'OK' THEN 1 ELSE 0 END, CASE WHEN st = 'OK' THEN 2 ELSE 0 END, st::"UsageStatus",
             lat, lat * 0.1, lat * 0.8, 'cpu', (ARRAY['GRAPHQL','REST','GRPC']::"UsageProtocol"[])[1 + (i % 3)], v.start + random() * (now() - v.start)
      FROM (SELECT i, exp(ln(2) + random() * 4) AS lat,
                   CASE WHEN random() < 0.9 THEN 'OK' WHEN random() < 0.5 THEN 'RATE_LIMITED' ELSE 'BAD_INPUT' END AS st
            FROM generate_series(${from}, ${to - 1}) AS i) g,
           (SELECT date_trunc('hour', now()) + interval '1 hour' - interval '24 hours' AS start) v`, [tenant.id, keys[0].id, keys[1].id]);
    await db.query(`INSERT INTO "UsageRecord" (${cols}) SELECT ${cols} FROM stage ON CONFLICT ("id", "createdAt") DO NOTHING`);
    await db.query(`WITH per_bucket AS (${perBucketSql('stage')}), hourly AS (${rollupUpsert('UsageHourly', 'hour')}), daily AS (${rollupUpsert('UsageDaily', 'day')}) SELECT 1`);
    await db.query('COMMIT');
  }
  await db.query('ANALYZE');
  const { rows: [{ n }] } = await db.query(`SELECT count(*)::int AS n FROM "UsageRecord" WHERE "tenantId" = $1`, [tenant.id]);
  await db.end();
  console.log(`${n} usage records for the tenant, written in ${((performance.now() - fillStarted) / 1000).toFixed(1)} s`);

  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const results = [];
  for (let run = 0; run < RUNS; run++) {
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
    const page = await context.newPage();
    await page.goto(`${url}/console`);
    await page.getByLabel('API key').fill(key);
    const started = Date.now();
    await page.keyboard.press('Enter');
    await page.waitForSelector('[data-testid="traffic-chart"][data-drawn="true"]', { timeout: 120000 });
    const ms = Date.now() - started;
    const shown = await page.getByTestId('tile-requests').textContent();
    const usageQueryMs = await page.evaluate(`Math.max(...performance.getEntriesByType('resource').filter((e) => e.name.endsWith('/graphql')).map((e) => e.duration))`);
    results.push({ run: run + 1, signInToFirstChartMs: ms, slowestGraphqlMs: Math.round(usageQueryMs), requestsShown: shown });
    await context.close();
  }
  await browser.close();
  console.table(results);
} finally {
  gateway?.kill('SIGTERM');
  await new Promise((r) => (gateway ? gateway.on('exit', r) : r()));
  await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await admin.end();
}
