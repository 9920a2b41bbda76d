// What a 10 % shadow costs the gateway (issue #23): one production gateway
// on PostgreSQL serves fashion-cnn v1 (traffic 100 %) with v2 (the same
// weights) as the shadow candidate, under a paced load of BENCH_SHADOW_RATE
// OIP JSON requests/s (one image each, no version named). Phases alternate
// shadow 0 % and 10 %, BENCH_SHADOW_ROUNDS each, BENCH_SHADOW_PHASE_S long
// (after a warm-up phase), so drifts in the machine's load hit both alike.
// Per phase: gateway CPU per request (utime + stime of the process, every
// thread, from /proc/<pid>/stat: the shadow's own inference included), RSS
// (VmRSS sampled every 250 ms: mean and max), p50/p99 latency, and the
// shadow's runs and skips (modelVersions).
//
//   npm run build:ts && node bench/shadow-cost.mjs
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { cpuSeconds, fixtureImages, log, writeResultsSection } from './lib.mjs';
import { CNN, CNN_CONFIG, percentile, rssBytes, startReplicas } from './replicas.mjs';

const RATE = Number(process.env.BENCH_SHADOW_RATE ?? 100);
const ROUNDS = Number(process.env.BENCH_SHADOW_ROUNDS ?? 3);
const PHASE_S = Number(process.env.BENCH_SHADOW_PHASE_S ?? 10);
const MAX_IN_FLIGHT = 64;
const MODEL = 'shadow-bench';

const images = fixtureImages();
const bodies = Array.from({ length: 50 }, (_, i) => JSON.stringify({
  inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], data: Array.from(images.subarray(i * 784, (i + 1) * 784), (v) => v / 255) }],
}));

const fleet = await startReplicas(['G']);
const [G] = fleet.replicas;
const config = { ...CNN_CONFIG(), name: MODEL };
try {
  const published = await fetch(`${G.url}/v2/repository/models/${MODEL}/load`, {
    method: 'POST', headers: { ...fleet.auth, 'content-type': 'application/json' },
    body: JSON.stringify({ parameters: { config: JSON.stringify(config), 'file:1/model.onnx': CNN().toString('base64'), 'file:2/model.onnx': CNN().toString('base64') } }),
  });
  if (published.status !== 200) throw new Error(`publish: ${published.status} ${await published.text()}`);
  await fleet.graphql(G.url, `mutation { setModelTraffic(model: "${MODEL}", weights: [{version: "1", percent: 100}]) { version } }`);
  const shadowRow = async () => (await fleet.graphql(G.url, `{ modelVersions(model: "${MODEL}") { version shadowRuns shadowSkipped shadowTop1Agreement } }`)).modelVersions.find((v) => v.version === '2');

  /** One phase at RATE requests/s: answers, failures, latencies, CPU and RSS. */
  async function phase(percent, seconds) {
    await fleet.graphql(G.url, `mutation { setModelShadow(model: "${MODEL}", version: "2", percent: ${percent}) { version } }`);
    const shadowBefore = await shadowRow();
    const latencies = [];
    let failed = 0;
    let inFlight = 0;
    let dropped = 0;
    const rss = [];
    const rssTimer = setInterval(() => rss.push(rssBytes(G.child.pid)), 250);
    const cpu0 = cpuSeconds(G.child.pid);
    const started = performance.now();
    const pending = new Set();
    let sent = 0;
    while (performance.now() - started < seconds * 1000) {
      const due = Math.floor(((performance.now() - started) / 1000) * RATE);
      while (sent < due) {
        sent += 1;
        if (inFlight >= MAX_IN_FLIGHT) { dropped += 1; continue; }
        inFlight += 1;
        const t0 = performance.now();
        const p = fetch(`${G.url}/v2/models/${MODEL}/infer`, { method: 'POST', headers: { ...fleet.auth, 'content-type': 'application/json' }, body: bodies[sent % bodies.length] })
          .then(async (res) => { await res.arrayBuffer(); if (res.status === 200) latencies.push(performance.now() - t0); else failed += 1; })
          .catch(() => { failed += 1; })
          .finally(() => { inFlight -= 1; pending.delete(p); });
        pending.add(p);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
    await Promise.all(pending);
    const cpu = cpuSeconds(G.child.pid) - cpu0;
    clearInterval(rssTimer);
    const shadowAfter = await shadowRow();
    const sorted = latencies.sort((a, b) => a - b);
    return {
      percent, ok: latencies.length, failed, dropped, rps: latencies.length / seconds,
      cpuMsPerRequest: (cpu * 1000) / Math.max(latencies.length, 1),
      rssMeanMiB: rss.reduce((a, b) => a + b, 0) / rss.length / 2 ** 20, rssMaxMiB: Math.max(...rss) / 2 ** 20,
      p50: percentile(sorted, 50), p99: percentile(sorted, 99),
      shadowRuns: shadowAfter.shadowRuns - shadowBefore.shadowRuns, shadowSkipped: shadowAfter.shadowSkipped - shadowBefore.shadowSkipped,
      agreement: shadowAfter.shadowTop1Agreement,
    };
  }

  log(`warm-up phase (${PHASE_S} s at ${RATE} req/s, shadow 10 %)`);
  await phase(10, PHASE_S);
  const results = [];
  for (let round = 0; round < ROUNDS; round++) {
    for (const percent of round % 2 === 0 ? [0, 10] : [10, 0]) {
      const r = await phase(percent, PHASE_S);
      results.push(r);
      log(`round ${round + 1} shadow ${percent} %: ${r.rps.toFixed(0)} req/s, CPU ${r.cpuMsPerRequest.toFixed(3)} ms/request, RSS ${r.rssMeanMiB.toFixed(0)} MiB (max ${r.rssMaxMiB.toFixed(0)}), p50 ${r.p50.toFixed(1)} p99 ${r.p99.toFixed(1)} ms, shadow runs ${r.shadowRuns}, skipped ${r.shadowSkipped}, failed ${r.failed}`);
    }
  }
  const load = os.loadavg().map((l) => l.toFixed(2)).join(' ');
  const mean = (xs) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const summary = (percent) => {
    const rs = results.filter((r) => r.percent === percent);
    return {
      rps: mean(rs.map((r) => r.rps)), cpu: mean(rs.map((r) => r.cpuMsPerRequest)), rss: mean(rs.map((r) => r.rssMeanMiB)), rssMax: Math.max(...rs.map((r) => r.rssMaxMiB)),
      p50: mean(rs.map((r) => r.p50)), p99: mean(rs.map((r) => r.p99)), runs: rs.reduce((a, r) => a + r.shadowRuns, 0), skipped: rs.reduce((a, r) => a + r.shadowSkipped, 0),
      ok: rs.reduce((a, r) => a + r.ok, 0), failed: rs.reduce((a, r) => a + r.failed + r.dropped, 0),
    };
  };
  const off = summary(0);
  const on = summary(10);
  const lines = [
    `\`node bench/shadow-cost.mjs\` (after \`npm run build:ts\`), ${new Date().toISOString().slice(0, 16)}Z, ${os.cpus().length} cores, load average ${load} at the end.`,
    `One production gateway (1 inference worker) on PostgreSQL; fashion-cnn v1 serving (split 100 %), v2 (same weights) the shadow;`,
    `a paced load of ${RATE} OIP JSON requests/s (one image each), phases of ${PHASE_S} s alternating shadow 0 % / 10 % (${ROUNDS} each, after a warm-up phase).`,
    'CPU: utime + stime of the gateway process (every thread, the shadow\'s own inference included) from /proc/<pid>/stat, per answered request.',
    '',
    '| shadow | requests/s | CPU ms per request | RSS mean MiB (max) | p50 / p99 ms | shadow runs (skipped) | failed |',
    '|---|---|---|---|---|---|---|',
    ...[[0, off], [10, on]].map(([p, s]) => `| ${p} % | ${s.rps.toFixed(0)} | ${s.cpu.toFixed(3)} | ${s.rss.toFixed(0)} (${s.rssMax.toFixed(0)}) | ${s.p50.toFixed(1)} / ${s.p99.toFixed(1)} | ${s.runs} (${s.skipped}) of ${s.ok} | ${s.failed} |`),
    '',
    `Per phase: ${results.map((r) => `${r.percent} %: ${r.cpuMsPerRequest.toFixed(3)} ms CPU, ${r.rssMeanMiB.toFixed(0)} MiB`).join('; ')}.`,
    `A 10 % shadow cost ${(on.cpu - off.cpu).toFixed(3)} ms of gateway CPU per request (${(((on.cpu - off.cpu) / off.cpu) * 100).toFixed(1)} %) and ${(on.rss - off.rss).toFixed(0)} MiB of mean RSS here.`,
  ];
  console.log(lines.join('\n'));
  if (process.env.BENCH_WRITE_RESULTS !== 'false') writeResultsSection('shadow-cost', 'Shadow cost: gateway CPU and RSS at 0 % and 10 % (issue #23)', lines.join('\n'));
} finally {
  await fleet.stop();
}
