#!/usr/bin/env node
// What the gateway asks of Postgres per request (bench/PROFILE.md, issue #25): one production gateway
// (`node dist/main.js`, its own database, Redis limits, durable usage) under fashion-cnn × 1 GraphQL
// load from wrk at c=64, with the database's own counters (pg_stat_database: commits, rows inserted,
// updated, returned) read over an idle window and over the load window, per 1,000 requests. The usage
// writer's batching shows here: one insert transaction per USAGE_FLUSH_INTERVAL_MS, not per round trip.
//   npm run build:ts && node bench/db-load.mjs [seconds=6]      (BENCH_DIST=/other/dist for another build)
import path from 'node:path';
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import pg from 'pg';
import { ROOT, bootstrapKey, fixturePixels, fullPathGateway, graphqlImageInfer, log, startGateway } from './lib.mjs';

const SECONDS = Number(process.argv[2] ?? 6);
const DIST = path.resolve(process.env.BENCH_DIST ?? path.join(ROOT, 'dist'));
const ADMIN_DB = process.env.BENCH_ADMIN_DATABASE_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/0';

const admin = new pg.Client({ connectionString: ADMIN_DB });
await admin.connect();
const databases = [];
const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-db-load-'));
let child;
try {
  const { env, port } = await fullPathGateway(admin, databases, { adminUrl: ADMIN_DB, redisUrl: REDIS_URL, name: `db_load_${process.pid}`, dataDir: path.join(work, 'data') });
  const key = bootstrapKey(env, DIST);
  ({ child } = await startGateway(env, { dist: DIST }));
  writeFileSync(path.join(work, 'body.json'), graphqlImageInfer('fashion-cnn', fixturePixels(1)));
  writeFileSync(path.join(work, 'wrk.lua'), [
    'wrk.method = "POST"',
    `local f = io.open(${JSON.stringify(path.join(work, 'body.json'))}, "rb")`,
    'wrk.body = f:read("*a")',
    'f:close()',
    `wrk.headers["authorization"] = "Bearer ${key}"`,
    'wrk.headers["content-type"] = "application/json"',
  ].join('\n'));
  const wrk = (seconds) => spawnSync('wrk', ['-t1', '-c64', `-d${seconds}s`, '-s', path.join(work, 'wrk.lua'), `http://127.0.0.1:${port}/graphql`], { encoding: 'utf8' });
  const counters = async () =>
    (await admin.query('SELECT xact_commit::bigint AS commits, tup_inserted::bigint AS inserted, tup_updated::bigint AS updated, tup_returned::bigint AS returned FROM pg_stat_database WHERE datname = $1', [databases[0]])).rows[0];
  const delta = (a, b) => Object.fromEntries(Object.keys(a).map((k) => [k, Number(b[k]) - Number(a[k])]));
  // The statistics collector reports with a delay: wait after each window before reading.
  const settle = () => new Promise((r) => setTimeout(r, 2500));

  log(`warm-up (3 s of load), then ${SECONDS} s idle and ${SECONDS} s of fashion-cnn × 1 GraphQL at c=64; ${DIST}`);
  wrk(3);
  await settle();
  const idleStart = await counters();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const idle = delta(idleStart, await counters());
  const loadStart = await counters();
  const out = wrk(SECONDS);
  await settle();
  const load = delta(loadStart, await counters());
  const requests = Number(/(\d+) requests in/.exec(out.stdout)?.[1] ?? 0);
  const failed = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out.stdout)?.[1] ?? 0);
  if (requests === 0 || failed > 0) throw new Error(`wrk: ${requests} requests, ${failed} failed`);
  const per1000 = (n) => ((1000 * n) / requests).toFixed(1);
  console.log(`\nbench:db-load ${new Date().toISOString().slice(0, 16)}Z, ${DIST}, node ${process.version}, load ${os.loadavg().map((l) => l.toFixed(2)).join(' / ')}\n`);
  console.log('| window | requests | commits | rows inserted | rows updated | rows returned |\n|---|---|---|---|---|---|');
  console.log(`| idle ${SECONDS} s (totals) | 0 | ${idle.commits} | ${idle.inserted} | ${idle.updated} | ${idle.returned} |`);
  console.log(`| load ${SECONDS} s (per 1,000 requests) | ${requests} | ${per1000(load.commits)} | ${per1000(load.inserted)} | ${per1000(load.updated)} | ${per1000(load.returned)} |`);
} finally {
  if (child) {
    child.kill('SIGTERM');
    await new Promise((r) => (child.exitCode !== null ? r() : child.once('exit', r)));
  }
  for (const db of databases) await admin.query(`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`).catch(() => undefined);
  await admin.end();
  rmSync(work, { recursive: true, force: true });
}
