#!/usr/bin/env node
// Syscalls and context switches per request at concurrency 1 (bench/PROFILE.md, issue #25): one full-path
// gateway (node dist/main.js, Postgres, Redis limits, durable usage) and the bare OIP server with the
// model in a worker, fashion-cnn over OIP binary from wrk -c1; `perf stat` (task-clock, context
// switches) over 5 s and `strace -c -f` over 3 s, each attached to the server process.
//   npm run build:ts && node bench/lone-syscalls.mjs      (needs wrk, perf, strace; run as root)
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync, readFileSync } from 'node:fs';
import pg from 'pg';
import { ROOT, startGateway, freePort, bootstrapKey, fixtureImages, oipImageRequest, waitReady } from './lib.mjs';
const admin = new pg.Client({ connectionString: 'postgresql://postgres@127.0.0.1:5432/postgres' }); await admin.connect();
const db = `mg_sc_${process.pid}`; await admin.query(`CREATE DATABASE "${db}"`);
const port = await freePort();
const env = { PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', GRPC_PORT: '0', MODEL_REPOSITORY: path.join(ROOT, 'models'), DATABASE_URL: `postgresql://postgres@127.0.0.1:5432/${db}`, DATA_DIR: `/tmp/${db}`, REDIS_URL: 'redis://127.0.0.1:6379/0', REDIS_KEY_PREFIX: `${db}:`, DEFAULT_REQUESTS_PER_MINUTE: '100000000', DEFAULT_COMPUTE_UNITS_PER_MINUTE: '1000000000', ...(process.env.EXTRA ? JSON.parse(process.env.EXTRA) : {}) };
const key = bootstrapKey(env);
const { child } = await startGateway(env);
const bport = await freePort();
const bare = spawn(process.execPath, [path.join(ROOT, 'bench/bare-oip-server.mjs'), path.join(ROOT, 'models/fashion-cnn/1/model.onnx'), String(bport), 'worker'], { stdio: 'ignore' });
await waitReady(`http://127.0.0.1:${bport}/v2/health/ready`, bare);
const { body, headerLength } = oipImageRequest(Float32Array.from(fixtureImages().subarray(0, 784), (v) => v / 255));
writeFileSync(`/tmp/${db}.bin`, body);
const lua = (auth) => { const f = `/tmp/${db}-${auth ? 'a' : 'b'}.lua`; writeFileSync(f, `wrk.method="POST"\nlocal f=io.open("/tmp/${db}.bin","rb")\nwrk.body=f:read("*a")\nf:close()\n${auth ? `wrk.headers["authorization"]="Bearer ${key}"\n` : ''}wrk.headers["inference-header-content-length"]="${headerLength}"\nwrk.headers["content-type"]="application/octet-stream"`); return f; };
for (const [name, pid, p, auth] of [['gateway', child.pid, port, true], ['bare-worker', bare.pid, bport, false]]) {
  spawnSync('wrk', ['-t1', '-c1', '-d2s', '-s', lua(auth), `http://127.0.0.1:${p}/v2/models/fashion-cnn/infer`]);
  const perf = spawn('perf', ['stat', '-e', 'task-clock,context-switches,cpu-migrations', '-p', String(pid), '-o', `/tmp/${db}-${name}.perf`]);
  const w = spawnSync('wrk', ['-t1', '-c1', '-d5s', '-s', lua(auth), `http://127.0.0.1:${p}/v2/models/fashion-cnn/infer`], { encoding: 'utf8' });
  perf.kill('SIGINT'); await new Promise((r) => perf.once('exit', r));
  const n = Number(/(\d+) requests in/.exec(w.stdout)?.[1]);
  const st = spawn('strace', ['-c', '-f', '-p', String(pid), '-o', `/tmp/${db}-${name}.strace`]);
  await new Promise((r) => setTimeout(r, 500));
  const w2 = spawnSync('wrk', ['-t1', '-c1', '-d3s', '-s', lua(auth), `http://127.0.0.1:${p}/v2/models/fashion-cnn/infer`], { encoding: 'utf8' });
  st.kill('SIGINT'); await new Promise((r) => st.once('exit', r));
  const n2 = Number(/(\d+) requests in/.exec(w2.stdout)?.[1]);
  const perfText = readFileSync(`/tmp/${db}-${name}.perf`, 'utf8');
  const num = (label) => Number((new RegExp(`([\\d.,]+)\\s+(?:msec\\s+)?${label}`).exec(perfText)?.[1] ?? 'NaN').replace(/,/g, ''));
  console.log(`\n== ${name}: ${n} requests in 5 s (p50 ${/50%\s+(\S+)/.exec(w.stdout)?.[1]}); per request: task-clock ${(num('task-clock') / n).toFixed(3)} ms, context switches ${(num('context-switches') / n).toFixed(2)}, migrations ${(num('cpu-migrations') / n).toFixed(2)}`);
  const lines = readFileSync(`/tmp/${db}-${name}.strace`, 'utf8').split('\n').filter((l) => /^\s*[\d.]+\s+[\d.]+/.test(l));
  let total = 0;
  const rows = lines.map((l) => { const f = l.trim().split(/\s+/); const calls = Number(f[3]); const name = f.at(-1); if (name !== 'total') total += calls; return [name, calls]; }).sort((a, b) => b[1] - a[1]);
  console.log(`   syscalls per request (strace, ${n2} requests): ${(total / n2).toFixed(1)} — ` + rows.filter(([s]) => s !== 'total').slice(0, 12).map(([s, c]) => `${s} ${(c / n2).toFixed(2)}`).join(', '));
}
child.kill('SIGTERM'); bare.kill('SIGTERM'); await new Promise((r) => child.once('exit', r));
await admin.query(`DROP DATABASE "${db}" WITH (FORCE)`); await admin.end();
