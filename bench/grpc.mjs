#!/usr/bin/env node
// The gRPC door against the HTTP doors (issue #24), side by side in one run on
// one gateway: fashion-cnn and fashion-hybrid; single-item requests at
// concurrency 64 and 64-item batches at concurrency 8; over (i) gRPC unary
// ModelInfer, (ii) gRPC ModelStreamInfer, (iii) OIP REST with binary tensors in
// and out, (iv) GraphQL `infer` with dataBase64 in and out. Reports items/s and
// the gateway's own CPU time per request (utime+stime of its process, all
// threads, from /proc/<pid>/stat before and after each cell, settled idle on
// both sides so the usage records a cell queued are billed to it).
//
// Load generators: REST and GraphQL with wrk (C, one HTTP/1.1 connection per
// concurrent request); gRPC unary with h2load (C, nghttp2: `apt-get install
// nghttp2-client`), the concurrent calls multiplexed over 8 HTTP/2 connections
// as a gRPC client does, each request a pre-encoded ModelInferRequest frame;
// gRPC stream with grpc-js in this process (no C client speaks a bidirectional
// gRPC stream), the same 8 connections, each stream keeping one request in flight, pre-encoded messages and undecoded answers so the client
// does as little as it can. The client of the stream cell shares the machine's
// cores with the gateway (so do wrk and h2load, less): its items/s is a lower
// bound; CPU per request is the gateway's alone either way.
//
// Usage: npm run bench:grpc  (BENCH_SECONDS=3 per cell, BENCH_ROUNDS=1,
// BENCH_MODELS=fashion-cnn,fashion-hybrid, BENCH_DATABASE_URL, BENCH_REDIS_URL)
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import grpc from '@grpc/grpc-js';
import protobuf from 'protobufjs';
import { ROOT, bootstrapKey, cpuSeconds, embeddedEnv, fixtureImages, freePort, log, startGateway, writeResultsSection } from './lib.mjs';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
const MODELS = (process.env.BENCH_MODELS ?? 'fashion-cnn,fashion-hybrid').split(',');
const SHAPES = [
  { items: 1, concurrency: 64 },
  { items: 64, concurrency: 8 },
];
const STREAM_CONNECTIONS = 8;
const DOORS = ['gRPC unary', 'gRPC stream', 'REST binary', 'GraphQL'];

for (const tool of ['wrk', 'h2load']) {
  if (spawnSync('which', [tool]).status !== 0) throw new Error(`${tool} is needed (apt-get install -y ${tool === 'wrk' ? 'wrk' : 'nghttp2-client'})`);
}

const images = fixtureImages();
/** `n` Fashion-MNIST test images as FP32 bytes, [n, 1, 28, 28]. */
const imageBytes = (n) => Buffer.from(Float32Array.from(images.subarray(0, n * 784), (v) => v / 255).buffer);

const root = protobuf.loadSync(path.join(ROOT, 'proto/triton/grpc_service.proto'));
const ModelInferRequest = root.lookupType('inference.ModelInferRequest');
const ModelStreamInferResponse = root.lookupType('inference.ModelStreamInferResponse');

function inferMessage(model, n) {
  return Buffer.from(ModelInferRequest.encode(ModelInferRequest.create({
    modelName: model,
    inputs: [{ name: 'image', datatype: 'FP32', shape: [n, 1, 28, 28] }],
    rawInputContents: [imageBytes(n)],
  })).finish());
}

/** A gRPC message as it travels: compressed flag 0, 4-byte big-endian length, the message. */
function grpcFrame(message) {
  const header = Buffer.alloc(5);
  header.writeUInt32BE(message.length, 1);
  return Buffer.concat([header, message]);
}

async function settle(pid) {
  for (let i = 0; i < 100; i += 1) {
    const before = cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, 300));
    if (cpuSeconds(pid) - before < 0.03) return;
  }
  log('gateway did not go idle within 30 s');
}

function run(cmd, args) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${cmd} exited ${code}: ${out.slice(-500)}`))));
  });
}

async function wrk(url, bodyFile, headers, concurrency) {
  const script = `${bodyFile}.lua`;
  writeFileSync(script, [
    'wrk.method = "POST"',
    `local f = io.open(${JSON.stringify(bodyFile)}, "rb")`,
    'wrk.body = f:read("*a")',
    'f:close()',
    ...Object.entries(headers).map(([k, v]) => `wrk.headers[${JSON.stringify(k)}] = ${JSON.stringify(v)}`),
  ].join('\n'));
  const out = await run('wrk', ['-t2', `-c${concurrency}`, `-d${SECONDS}s`, '-s', script, url]);
  const completed = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
  const errors = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0) + Number(/Socket errors:.*?(\d+)/.exec(out)?.[1] ?? 0);
  return { completed, ok: completed - errors, errors };
}

/**
 * h2load, prior-knowledge HTTP/2, as gRPC clients connect: STREAM_CONNECTIONS
 * connections, the concurrent calls multiplexed over them (-c 8 -m 8 for 64).
 * HTTP 200 is what it counts: the pre-check proves the gRPC status.
 */
async function h2load(url, bodyFile, headers, concurrency) {
  const connections = Math.min(STREAM_CONNECTIONS, concurrency);
  const args = ['-c', String(connections), '-m', String(Math.ceil(concurrency / connections)), '-t', '2', '-D', String(SECONDS), '-d', bodyFile];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  const out = await run('h2load', [...args, url]);
  const m = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored/.exec(out);
  if (!m) throw new Error(`h2load: no summary\n${out}`);
  return { completed: Number(m[3]), ok: Number(m[4]), errors: Number(m[5]) + Number(m[6]) };
}

/**
 * ModelStreamInfer: `concurrency` streams over STREAM_CONNECTIONS connections, each
 * writing its next request when the previous one is answered, for SECONDS.
 * Pre-encoded requests, answers only checked for an error_message (field 1).
 */
async function streamCell(address, message, key, concurrency) {
  const clients = Array.from({ length: Math.min(STREAM_CONNECTIONS, concurrency) }, () => new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1, 'grpc.max_receive_message_length': -1, 'grpc.max_send_message_length': -1 }));
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${key}`);
  let ok = 0;
  let errors = 0;
  let firstError;
  const until = Date.now() + SECONDS * 1000;
  await Promise.all(Array.from({ length: concurrency }, (_, i) => new Promise((resolve) => {
    const call = clients[i % clients.length].makeBidiStreamRequest('/inference.GRPCInferenceService/ModelStreamInfer', (b) => b, (b) => b, metadata);
    call.on('data', (answer) => {
      // An answer that opens with a non-empty field 1 (tag 0x0a, length > 0) carries an error_message (the server writes the empty one too).
      if (answer[0] === 0x0a && answer[1] !== 0) {
        errors += 1;
        firstError ??= ModelStreamInferResponse.decode(answer).errorMessage;
      } else ok += 1;
      if (Date.now() < until) call.write(message);
      else call.end();
    });
    call.on('error', (e) => {
      errors += 1;
      firstError ??= e.message;
      resolve();
    });
    call.on('end', resolve);
    call.write(message);
  })));
  for (const c of clients) c.close();
  if (firstError) log(`  stream error: ${firstError}`);
  return { completed: ok + errors, ok, errors };
}

/** One checked gRPC unary call (grpc-js), before h2load sends the same bytes blind. */
function checkUnary(address, message, key) {
  const client = new grpc.Client(address, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': -1 });
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${key}`);
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest('/inference.GRPCInferenceService/ModelInfer', (b) => b, (b) => b, message, metadata, (error) => {
      client.close();
      if (error) reject(new Error(`gRPC check: ${error.message}`));
      else resolve();
    });
  });
}

async function checkHttp(url, bodyFile, headers, name) {
  const res = await fetch(url, { method: 'POST', headers, body: readFileSync(bodyFile) });
  const text = Buffer.from(await res.arrayBuffer()).toString('latin1');
  if (res.status !== 200 || text.includes('"errors"')) throw new Error(`${name}: ${res.status} ${text.slice(0, 300)}`);
}

const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-bench-grpc-'));
const repo = path.join(work, 'models');
for (const name of MODELS) cpSync(path.join(ROOT, 'models', name), path.join(repo, name), { recursive: true });

/** The request bodies of one model and batch size, each a file its load generator sends as is. */
function bodies(model, n) {
  const bytes = imageBytes(n);
  const binJson = JSON.stringify({
    inputs: [{ name: 'image', datatype: 'FP32', shape: [n, 1, 28, 28], parameters: { binary_data_size: bytes.length } }],
    outputs: [{ name: 'probabilities', parameters: { binary_data: true } }],
  });
  const message = inferMessage(model, n);
  const files = { binary: path.join(work, `${model}-${n}.bin`), graphql: path.join(work, `${model}-${n}.graphql.json`), grpc: path.join(work, `${model}-${n}.grpc`) };
  writeFileSync(files.binary, Buffer.concat([Buffer.from(binJson), bytes]));
  writeFileSync(files.graphql, JSON.stringify({
    query: 'mutation($input: InferInput!) { infer(input: $input) { outputs { name dataBase64 } } }',
    variables: { input: { model, inputs: [{ name: 'image', datatype: 'FP32', shape: [n, 1, 28, 28], dataBase64: bytes.toString('base64') }], outputs: ['probabilities'] } },
  }));
  writeFileSync(files.grpc, grpcFrame(message));
  return { files, message, binHeaderLength: Buffer.byteLength(binJson) };
}

const port = await freePort();
const grpcPort = await freePort();
const env = embeddedEnv(port, path.join(work, 'data'), {
  MODEL_REPOSITORY: repo, GRPC_PORT: String(grpcPort), DEFAULT_REQUESTS_PER_MINUTE: '100000000', DEFAULT_COMPUTE_UNITS_PER_MINUTE: '100000000',
  DATABASE_URL: process.env.BENCH_DATABASE_URL,
  ...(process.env.BENCH_REDIS_URL ? { REDIS_URL: process.env.BENCH_REDIS_URL, REDIS_KEY_PREFIX: `bench-grpc-${Date.now()}:` } : {}),
});
const mode = `${env.DATABASE_URL ? 'PostgreSQL' : 'embedded PGlite'}, limits ${env.REDIS_URL ? 'on Redis' : 'in-process'}`;
const key = bootstrapKey(env);
const auth = { authorization: `Bearer ${key}` };
log(`starting gateway on :${port}, gRPC :${grpcPort} (${os.availableParallelism()} cores)`);
const { child: gateway } = await startGateway(env);
const base = `http://127.0.0.1:${port}`;
const address = `127.0.0.1:${grpcPort}`;

const results = [];
try {
  for (const model of MODELS) {
    for (const { items, concurrency } of SHAPES) {
      const { files, message, binHeaderLength } = bodies(model, items);
      const binHeaders = { ...auth, 'content-type': 'application/octet-stream', 'inference-header-content-length': String(binHeaderLength) };
      const grpcHeaders = { ...auth, 'content-type': 'application/grpc', te: 'trailers' };
      await checkUnary(address, message, key);
      await checkHttp(`${base}/v2/models/${model}/infer`, files.binary, binHeaders, 'REST binary');
      await checkHttp(`${base}/graphql`, files.graphql, { ...auth, 'content-type': 'application/json' }, 'GraphQL');
      const cells = {
        'gRPC unary': () => h2load(`http://${address}/inference.GRPCInferenceService/ModelInfer`, files.grpc, grpcHeaders, concurrency),
        'gRPC stream': () => streamCell(address, message, key, concurrency),
        'REST binary': () => wrk(`${base}/v2/models/${model}/infer`, files.binary, binHeaders, concurrency),
        GraphQL: () => wrk(`${base}/graphql`, files.graphql, { ...auth, 'content-type': 'application/json' }, concurrency),
      };
      const sums = Object.fromEntries(DOORS.map((d) => [d, { ok: 0, completed: 0, cpu: 0, seconds: 0, errors: 0 }]));
      // Warm-up, not counted: JIT, sockets, the first usage-record batches.
      for (const [door, cell] of Object.entries(cells)) {
        log(`${model} ×${items} c${concurrency} warm-up: ${door}`);
        await cell();
      }
      for (let round = 1; round <= ROUNDS; round += 1) {
        for (const [door, cell] of Object.entries(cells)) {
          await settle(gateway.pid);
          log(`${model} ×${items} c${concurrency} round ${round}: ${door}`);
          const before = cpuSeconds(gateway.pid);
          const r = await cell();
          await settle(gateway.pid);
          const s = sums[door];
          s.cpu += cpuSeconds(gateway.pid) - before;
          s.ok += r.ok; s.completed += r.completed; s.errors += r.errors; s.seconds += SECONDS;
        }
      }
      for (const door of DOORS) {
        const s = sums[door];
        results.push({ model, items, concurrency, door, itemsPerSecond: (s.ok * items) / s.seconds, cpuMsPerRequest: (s.cpu * 1000) / s.completed, errors: s.errors });
      }
    }
  }
} finally {
  const exited = new Promise((resolve) => gateway.once('exit', resolve));
  gateway.kill('SIGTERM');
  await exited;
  rmSync(work, { recursive: true, force: true });
}

const f0 = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a');
const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'n/a');
const loadavg = os.loadavg().map((l) => l.toFixed(1)).join(', ');
const lines = [
  `Measured ${new Date().toISOString().slice(0, 16)}Z on ${os.availableParallelism()} cores (${os.cpus()[0]?.model ?? 'cpu'}; load average at the end ${loadavg}), ${ROUNDS} round(s) × ${SECONDS} s per cell after a warm-up, ${mode}, usage records written. Gateway CPU includes its inference worker threads (the model's compute, the same for every door). Target (issue #24): gRPC CPU/request ≤ 0.70× REST binary's, items/s ≥ 1.30×.`,
  '',
  '| model | request | door | items/s | gateway CPU ms / request | items/s vs REST binary | CPU vs REST binary | errors |',
  '|---|---|---|---|---|---|---|---|',
  ...results.map((r) => {
    const rest = results.find((x) => x.model === r.model && x.items === r.items && x.door === 'REST binary');
    return `| ${r.model} | ${r.items} item${r.items > 1 ? 's' : ''}, c${r.concurrency} | ${r.door} | ${f0(r.itemsPerSecond)} | ${f3(r.cpuMsPerRequest)} | ${f2(r.itemsPerSecond / rest.itemsPerSecond)} | ${f2(r.cpuMsPerRequest / rest.cpuMsPerRequest)} | ${r.errors} |`;
  }),
];
const section = lines.join('\n');
console.log(section);
writeResultsSection(`grpc-${env.DATABASE_URL ? 'servers' : 'embedded'}`, `gRPC door against REST binary and GraphQL (\`npm run bench:grpc\`, ${mode})`, section);
