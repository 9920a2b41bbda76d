// What the bench scripts share: the repository root, a timestamped log to
// stderr, a free port, waiting for /readyz, CPU seconds of a process, the
// fixture images, and a production gateway (`node dist/main.js`) started on
// the embedded defaults with the admin key `modelgate admin bootstrap` prints.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

export const log = (...a) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}]`, ...a);

/** The 1,000 Fashion-MNIST test images, 784 bytes each. */
export const fixtureImages = () => readFileSync(path.join(ROOT, 'test/fixtures/fashion-mnist-test-1000.bin'));

export function freePort() {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/** Polls `url` until it answers 200; fails at once when `child` exits first. */
export async function waitReady(url, child, what = 'gateway', attempts = 600) {
  for (let i = 0; i < attempts; i += 1) {
    try { if ((await fetch(url)).status === 200) return; } catch { /* not up yet */ }
    if (child && child.exitCode !== null) throw new Error(`${what} exited`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} not ready`);
}

let ticks;
/** CPU seconds (user + system: fields 14 and 15) in the text of a /proc stat file, a process's or one thread's. */
function statCpuSeconds(stat) {
  ticks ??= Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim() || 100);
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // The slice starts at field 3.
  return (Number(fields[11]) + Number(fields[12])) / ticks;
}

/** CPU seconds the process has used so far (every thread). */
export function cpuSeconds(pid) {
  return statCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** CPU seconds of each thread of a process, keyed by thread id, with the thread's name (MainThread, WorkerThread, V8Worker, libuv-worker, …). */
export function threadCpu(pid) {
  const out = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      out.set(tid, { comm: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), cpu: statCpuSeconds(stat) });
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return out;
}

/** Adds each thread's CPU seconds since `before` (a threadCpu reading) into `totals`, by thread name. */
export function addThreadCpu(totals, pid, before) {
  for (const [tid, t] of threadCpu(pid)) totals.set(t.comm, (totals.get(t.comm) ?? 0) + t.cpu - (before.get(tid)?.cpu ?? 0));
}

/**
 * The environment of a production gateway on embedded PGlite and in-process
 * limits (DATABASE_URL and REDIS_URL removed), logging warnings only, with
 * its data under `dataDir`; `extra` adds or overrides variables.
 */
export function embeddedEnv(port, dataDir, extra = {}) {
  const env = {
    // No gRPC listener unless the caller's environment names a port: gateways side by side would collide on 8001.
    GRPC_PORT: '0', ...process.env, NODE_ENV: 'production', PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn',
    MODEL_REPOSITORY: path.join(ROOT, 'models'), DATA_DIR: dataDir,
  };
  delete env.DATABASE_URL; delete env.REDIS_URL;
  for (const [name, value] of Object.entries(extra)) if (value !== undefined) env[name] = value;
  return env;
}

/**
 * The full production path for one of several gateways side by side: a fresh database `name` made
 * on the admin connection (pushed onto `databases` for the caller to drop), Redis limits under a
 * private prefix, generous limits, warnings only. Returns the environment (with `extra` applied)
 * and the port it listens on.
 */
export async function fullPathGateway(admin, databases, { adminUrl, redisUrl, name, dataDir, extra = {} }) {
  const dbName = `modelgate_${name.replace(/\W/g, '_')}`;
  await admin.query(`CREATE DATABASE "${dbName}"`);
  databases.push(dbName);
  const dbUrl = new URL(adminUrl);
  dbUrl.pathname = `/${dbName}`;
  const port = await freePort();
  const env = {
    PATH: process.env.PATH, NODE_ENV: 'production', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', LOG_PRETTY: 'false', GRPC_PORT: '0',
    MODEL_REPOSITORY: path.join(ROOT, 'models'), DATABASE_URL: dbUrl.toString(), DATA_DIR: dataDir,
    REDIS_URL: redisUrl, REDIS_KEY_PREFIX: `mg:${name}:`, SHUTDOWN_READINESS_GRACE_MS: '0',
    DEFAULT_REQUESTS_PER_MINUTE: '100000000', DEFAULT_COMPUTE_UNITS_PER_MINUTE: '1000000000',
    ...extra,
  };
  return { env, port };
}

/** The first `items` fixture images as `items` × 784 floats in [0, 1] (the fashion models' input). */
export function fixturePixels(items = 1) {
  const images = fixtureImages();
  const pixels = new Float32Array(items * 784);
  for (let i = 0; i < pixels.length; i += 1) pixels[i] = (images[i % images.length] ?? 0) / 255;
  return pixels;
}

/** One GraphQL infer mutation body (JSON text) for the fashion models: `pixels` (items × 784 floats) as dataBase64. */
export function graphqlImageInfer(model, pixels) {
  return JSON.stringify({
    query: 'mutation($input: InferInput!) { infer(input: $input) { outputs { name dataBase64 } } }',
    variables: { input: { model, inputs: [{ name: 'image', datatype: 'FP32', shape: [pixels.length / 784, 1, 28, 28], dataBase64: Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength).toString('base64') }] } },
  });
}

/**
 * One OIP binary infer request for the fashion models: `pixels` (items × 784 floats) as the `image`
 * input, `probabilities` asked back binary. `headerLength` goes in Inference-Header-Content-Length.
 */
export function oipImageRequest(pixels) {
  const tensor = Buffer.from(pixels.buffer, pixels.byteOffset, pixels.byteLength);
  const header = Buffer.from(JSON.stringify({
    inputs: [{ name: 'image', datatype: 'FP32', shape: [pixels.length / 784, 1, 28, 28], parameters: { binary_data_size: tensor.length } }],
    outputs: [{ name: 'probabilities', parameters: { binary_data: true } }],
  }));
  return { body: Buffer.concat([header, tensor]), headerLength: header.length };
}

/** Runs `modelgate admin bootstrap` against `env`'s database and returns the admin key it prints. */
export function bootstrapKey(env, dist = path.join(ROOT, 'dist')) {
  const boot = spawnSync(process.execPath, [path.join(dist, 'cli/main.js'), 'admin', 'bootstrap'], { env, encoding: 'utf8' });
  const key = /mg_(live|test)_[A-Za-z0-9]+/.exec(boot.stdout + boot.stderr)?.[0];
  if (!key) throw new Error(`no bootstrap key: ${boot.stdout}${boot.stderr}`);
  return key;
}

/** Starts `node dist/main.js` with `env` (its PORT decides the URL) and waits until /readyz is 200. */
export async function startGateway(env, { dist = path.join(ROOT, 'dist'), nodeArgs = [], what = 'gateway' } = {}) {
  const child = spawn(process.execPath, [...nodeArgs, path.join(dist, 'main.js')], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${env.PORT}`;
  await waitReady(`${url}/readyz`, child, what);
  return { child, url };
}

/**
 * Replaces (or appends) one bench's section of bench/RESULTS.md, between
 * `<!-- <name>:begin -->` and `<!-- <name>:end -->`, so each bench rewrites
 * only its own figures.
 */
export function writeResultsSection(name, title, section) {
  const resultsFile = path.join(ROOT, 'bench/RESULTS.md');
  let results = existsSync(resultsFile) ? readFileSync(resultsFile, 'utf8') : '# Benchmark results\n';
  const begin = `<!-- ${name}:begin -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${begin}\n## ${title}\n\n${section}\n${end}`;
  results = results.includes(begin) ? results.replace(new RegExp(`${begin}[\\s\\S]*${end}`), block) : `${results.trimEnd()}\n\n${block}\n`;
  writeFileSync(resultsFile, results);
  log(`wrote ${path.relative(process.cwd(), resultsFile)}`);
}
