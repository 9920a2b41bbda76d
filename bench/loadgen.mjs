#!/usr/bin/env node
// Closed-loop HTTP load generator used for every HTTP row of the benchmarks,
// so rows differ only in the server. Runs as its own process:
//   node bench/loadgen.mjs <url> <bodyFile> <concurrency> <seconds> [itemsPerRequest] [headersJson]
// Prints one JSON line: requests, errors, items/s, p50/p99 latency (ms).
import http from 'node:http';
import { readFileSync } from 'node:fs';

const [url, bodyFile, concurrencyArg, secondsArg, itemsArg, headersArg] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const seconds = Number(secondsArg);
const itemsPerRequest = Number(itemsArg ?? 1);
const body = readFileSync(bodyFile);
const extraHeaders = headersArg ? JSON.parse(headersArg) : {};
const target = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
const latencies = [];
let errors = 0;
let firstError = null;
const warmupUntil = performance.now() + 500;
const stopAt = warmupUntil + seconds * 1000;

function once() {
  return new Promise((resolve) => {
    const started = performance.now();
    const req = http.request(
      { host: target.hostname, port: target.port, path: target.pathname, method: 'POST', agent,
        headers: { 'content-type': 'application/json', 'content-length': body.length, ...extraHeaders } },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          const ok = res.statusCode === 200 && !text.includes('"errors"');
          if (!ok) { errors += 1; firstError ??= `${res.statusCode} ${text.slice(0, 200)}`; }
          if (started >= warmupUntil && ok) latencies.push(performance.now() - started);
          resolve();
        });
      },
    );
    req.on('error', (e) => { errors += 1; firstError ??= String(e); resolve(); });
    req.end(body);
  });
}

async function client() {
  while (performance.now() < stopAt) await once();
}

await Promise.all(Array.from({ length: concurrency }, client));
latencies.sort((a, b) => a - b);
const pct = (p) => latencies.length ? latencies[Math.min(latencies.length - 1, Math.floor((p / 100) * latencies.length))] : NaN;
console.log(JSON.stringify({
  requests: latencies.length,
  errors,
  firstError,
  itemsPerSecond: (latencies.length * itemsPerRequest) / seconds,
  p50: pct(50),
  p99: pct(99),
}));
agent.destroy();
