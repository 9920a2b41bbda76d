// A new version rolled out under load (issue #23): three production replicas
// on one PostgreSQL database serve fashion-cnn v1 (published through A with
// Triton's load) to BENCH_ROLLOUT_CLIENTS closed-loop clients spread over the
// three replicas (OIP JSON infer, one image, no version named). Mid-run v2
// (the same weights) is published through B with `PUT …?wait=fleet` while a
// split keeps v1 at 100 %, then the split moves to 50/50 through C and then
// to v2 alone through A. Per phase: requests/s, p50/p99, failed requests
// (anything but 200: must be 0) and which versions answered.
//
//   npm run build:ts && node bench/rollout-load.mjs
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { fixtureImages, log, writeResultsSection } from './lib.mjs';
import { CNN, CNN_CONFIG, percentile, startReplicas } from './replicas.mjs';

const CLIENTS = Number(process.env.BENCH_ROLLOUT_CLIENTS ?? 6);
const PHASE_S = Number(process.env.BENCH_ROLLOUT_PHASE_S ?? 10);
const MODEL = 'rollout-bench';

const images = fixtureImages();
const bodies = Array.from({ length: 50 }, (_, i) => JSON.stringify({
  inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], data: Array.from(images.subarray(i * 784, (i + 1) * 784), (v) => v / 255) }],
}));

const fleet = await startReplicas(['A', 'B', 'C']);
const [A, B, C] = fleet.replicas;
const config = { ...CNN_CONFIG(), name: MODEL };
delete config.model_warmup;
try {
  const published = await fetch(`${A.url}/v2/repository/models/${MODEL}/load?wait=fleet&timeout_ms=120000`, {
    method: 'POST', headers: { ...fleet.auth, 'content-type': 'application/json' },
    body: JSON.stringify({ parameters: { config: JSON.stringify(config), 'file:1/model.onnx': CNN().toString('base64') } }),
  });
  if (published.status !== 200) throw new Error(`publish v1: ${published.status} ${await published.text()}`);
  // A split before v2 exists: its publish then moves no traffic until the split does.
  await fleet.graphql(C.url, `mutation { setModelTraffic(model: "${MODEL}", weights: [{version: "1", percent: 100}], wait: FLEET) { version } }`);
  log(`3 replicas serve ${MODEL} v1; ${CLIENTS} clients, ${PHASE_S} s per phase`);

  let phase = 'v1 only';
  const stats = new Map();
  const phaseStats = (name) => {
    if (!stats.has(name)) stats.set(name, { started: performance.now(), ended: 0, latencies: [], failed: 0, failures: new Map(), versions: new Map() });
    return stats.get(name);
  };
  phaseStats(phase);
  let running = true;
  const clients = Array.from({ length: CLIENTS }, async (_, c) => {
    const replica = fleet.replicas[c % 3];
    for (let i = c; running; i += CLIENTS) {
      const s = phaseStats(phase);
      const t0 = performance.now();
      let status = 0;
      let version = null;
      try {
        const res = await fetch(`${replica.url}/v2/models/${MODEL}/infer`, { method: 'POST', headers: { ...fleet.auth, 'content-type': 'application/json' }, body: bodies[i % bodies.length] });
        status = res.status;
        const body = await res.json();
        version = body.model_version ?? null;
        if (status !== 200) s.failures.set(`${status} ${body.code ?? ''}`, (s.failures.get(`${status} ${body.code ?? ''}`) ?? 0) + 1);
      } catch (error) {
        s.failures.set(String(error.code ?? error.message), (s.failures.get(String(error.code ?? error.message)) ?? 0) + 1);
      }
      if (status === 200) {
        s.latencies.push(performance.now() - t0);
        s.versions.set(version, (s.versions.get(version) ?? 0) + 1);
      } else s.failed += 1;
    }
  });
  const next = (name) => {
    phaseStats(phase).ended = performance.now();
    phase = name;
    phaseStats(name);
    log(`phase: ${name}`);
  };
  const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));

  await sleep(PHASE_S);
  next('publishing v2 (PUT through B, ?wait=fleet)');
  const t0 = performance.now();
  const put = await fetch(`${B.url}/v2/repository/models/${MODEL}/versions/2/model.onnx?wait=fleet&timeout_ms=120000`, {
    method: 'PUT', headers: { ...fleet.auth, 'content-type': 'application/octet-stream' }, body: CNN(),
  });
  const publishMs = performance.now() - t0;
  if (put.status !== 200) throw new Error(`publish v2: ${put.status} ${await put.text()}`);
  log(`v2 fleet-ready in ${Math.round(publishMs)} ms under load`);
  next('v2 published, split still v1 100 %');
  await sleep(PHASE_S / 2);
  next('split 50/50 (set through C)');
  await fleet.graphql(C.url, `mutation { setModelTraffic(model: "${MODEL}", weights: [{version: "1", percent: 50}, {version: "2", percent: 50}], wait: FLEET) { version } }`);
  await sleep(PHASE_S);
  next('split v2 100 % (set through A)');
  await fleet.graphql(A.url, `mutation { setModelTraffic(model: "${MODEL}", weights: [{version: "1", percent: 0}, {version: "2", percent: 100}], wait: FLEET) { version } }`);
  await sleep(PHASE_S);
  phaseStats(phase).ended = performance.now();
  running = false;
  await Promise.all(clients);

  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  const rows = [...stats].map(([name, s]) => {
    const sorted = [...s.latencies].sort((a, b) => a - b);
    const seconds = (s.ended - s.started) / 1000;
    const versions = [...s.versions].sort().map(([v, n]) => `v${v} ${n}`).join(', ');
    const failures = [...s.failures].map(([k, n]) => `${k}: ${n}`).join(', ');
    return { name, seconds, ok: s.latencies.length, failed: s.failed, rps: s.latencies.length / seconds, p50: percentile(sorted, 50), p99: percentile(sorted, 99), versions, failures };
  });
  const total = rows.reduce((a, r) => ({ ok: a.ok + r.ok, failed: a.failed + r.failed }), { ok: 0, failed: 0 });
  const lines = [
    `\`node bench/rollout-load.mjs\` (after \`npm run build:ts\`), ${new Date().toISOString().slice(0, 16)}Z, ${os.cpus().length} cores, load average ${load} at the end.`,
    `Three production replicas (1 inference worker each) on one PostgreSQL database; ${CLIENTS} closed-loop clients spread over them`,
    '(OIP JSON infer of one fashion-cnn image, no version named); v2 (same weights) published through B with',
    `\`PUT …?wait=fleet\` under load (fleet-ready in ${Math.round(publishMs)} ms), the split moved through C and A with \`wait: FLEET\`.`,
    '',
    '| phase | seconds | requests/s | p50 ms | p99 ms | failed | answered by |',
    '|---|---|---|---|---|---|---|',
    ...rows.map((r) => `| ${r.name} | ${r.seconds.toFixed(1)} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.failed}${r.failures ? ` (${r.failures})` : ''} | ${r.versions} |`),
    '',
    `Total: ${total.ok} requests answered 200, **${total.failed} failed**.`,
  ];
  console.log(lines.join('\n'));
  if (process.env.BENCH_WRITE_RESULTS !== 'false') writeResultsSection('rollout-load', 'A version rolled out under load on 3 replicas (issue #23)', lines.join('\n'));
  if (total.failed > 0) process.exitCode = 1;
} finally {
  await fleet.stop();
}
