/**
 * Rolling a model out (issue #23 parts 4, 6, 8), through the production
 * build (`node dist/main.js`, NODE_ENV=production) on a database of its own:
 *
 * - Warm-up: Triton's `model_warmup` (random, given and file samples, a
 *   count) runs before a version turns READY, its time and runs show in
 *   `modelVersions` and the `model ready` log line; while a new version warms
 *   up it takes no request (versionless requests go to the serving one, a
 *   request naming it is MODEL_UNAVAILABLE); a warm-up that cannot run is
 *   refused before anything is committed.
 * - Warm-up from a file published with the version (`file:warmup/<name>`,
 *   Triton's input_data_file): it runs before READY, travels with a later
 *   streamed upload of the model, and a missing or short file is refused
 *   (WARMUP_FILE_MISSING / WARMUP_FILE_SIZE) before anything is committed.
 * - Shadow at 50 %: identical weights agree 1.0 (max difference 0), a
 *   different model less; OIP infer, GraphQL classify and explanations are
 *   all shadowed; the answers are exactly those without a shadow;
 *   the tenant is billed for its own requests only (no usage record for a
 *   shadow run); the figures are in /metrics.
 * - Rollback: one call restores the previous split, and the previous weights
 *   of a republished version; audit events; a second rollback undoes the
 *   first; the CLI's `models shadow` and `models rollback`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ProductionGateway, productionEnv, REPO_ROOT, runCli, STARTUP_TEST_TIMEOUT_MS, until } from '../harness';
import { authHeaders } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { buildInt64Flood } from '../helpers/onnx-builder';
import { applyMigrations } from '../../src/db/migrate';
import { Database } from '../../src/db/database';
import { KeyService } from '../../src/keys/key.service';
import { createLogger } from '../../src/log/logger';
import type { Scope } from '../../src/auth/principal';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS + 240_000);

const CNN = readFileSync(path.join(REPO_ROOT, 'models', 'fashion-cnn', '1', 'model.onnx'));
const LSTM = readFileSync(path.join(REPO_ROOT, 'models', 'fashion-lstm', '1', 'model.onnx'));
/** 32 M packed int64 values (32 MiB of file): decoding them blows the inspection child's heap cap and V8 aborts it. */
const CRASHING = buildInt64Flood(32 * 2 ** 20);
const MODEL = `rollout-cnn-${randomBytes(4).toString('hex')}`;
const SEED_MODEL = 'warm-seed';
/** Runs of the heavy sample: long enough that a poll sees the version warming up. */
const WARMUP_COUNT = 150;
const SAMPLE_ITEM = Array.from({ length: 784 }, (_, i) => (i % 13) / 13);
/** SAMPLE_ITEM as Triton's raw input_data_file: one [1,28,28] FP32 item, little-endian. */
const SAMPLE_RAW = Buffer.from(new Float32Array(SAMPLE_ITEM).buffer);

/** modelgate's config.json form with Triton's model_warmup: a random batch of 64, WARMUP_COUNT times, and one given sample twice. */
const CONFIG = JSON.stringify({
  name: MODEL,
  platform: 'onnxruntime_onnx',
  max_batch_size: 64,
  inputs: [{ name: 'image', datatype: 'FP32', dims: [1, 28, 28] }],
  outputs: [{ name: 'probabilities', datatype: 'FP32', dims: [10] }],
  output_kind: 'probabilities',
  // So GraphQL classify takes images (raw pixels here) as well as OIP infer tensors.
  preprocessing: { layout: 'NCHW', color: 'grey', width: 28, height: 28, scale: 1 / 255, invert: false },
  model_warmup: [
    { name: 'random', batch_size: 64, count: WARMUP_COUNT, inputs: { image: { data_type: 'TYPE_FP32', dims: [1, 28, 28], random_data: true } } },
    { name: 'given', batch_size: 1, count: 2, inputs: { image: { data: SAMPLE_ITEM } } },
  ],
});

/** Triton's config.pbtxt for a seed model, warmed with a raw file from its warmup/ folder (Triton's input_data_file). */
const SEED_PBTXT = `
name: "${SEED_MODEL}"
backend: "onnxruntime"
max_batch_size: 64
input [ { name: "image" data_type: TYPE_FP32 dims: [ 1, 28, 28 ] } ]
output [ { name: "probabilities" data_type: TYPE_FP32 dims: [ 10 ] } ]
model_warmup [
  {
    name: "from_file"
    batch_size: 4
    inputs { key: "image" value: { data_type: TYPE_FP32 dims: [ 1, 28, 28 ] input_data_file: "image.raw" } }
    count: 5
  }
]
`;

interface VersionRow {
  version: string;
  digest: string | null;
  replicaStatus: string;
  trafficPercent: number | null;
  shadowPercent: number | null;
  warmupMs: number | null;
  warmupRuns: number | null;
  shadowRuns: number;
  shadowSkipped: number;
  shadowFailures: number;
  shadowTop1Agreement: number | null;
  shadowMaxAbsDifference: number | null;
}
const VERSION_FIELDS = 'version digest replicaStatus trafficPercent shadowPercent warmupMs warmupRuns shadowRuns shadowSkipped shadowFailures shadowTop1Agreement shadowMaxAbsDifference';

let gw: ProductionGateway;
let admin: Record<string, string>;
let adminKey: string;
let tenant: { id: string; headers: Record<string, string> };
const dbName = `${testEnv.databaseName}_rollout`;
const dbUrl = (() => {
  const url = new URL(testEnv.databaseUrl);
  url.pathname = `/${dbName}`;
  return url.toString();
})();
let keyDb: Database;

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: testEnv.adminDatabaseUrl });
  await client.connect();
  await client.query(sql);
  await client.end();
}

async function query<T>(sql: string, params: unknown[] = []): Promise<T[]> {
  const client = new pg.Client({ connectionString: dbUrl });
  await client.connect();
  try {
    return (await client.query(sql, params)).rows as T[];
  } finally {
    await client.end();
  }
}

async function versions(): Promise<VersionRow[]> {
  const res = await gw.graphql<{ modelVersions: VersionRow[] }>(`query ($m: String!) { modelVersions(model: $m) { ${VERSION_FIELDS} } }`, { m: MODEL }, admin);
  if (!res.body?.data?.modelVersions) throw new Error(`modelVersions: ${res.text}`);
  return res.body.data.modelVersions;
}

async function row(version: string): Promise<VersionRow | undefined> {
  return (await versions()).find((v) => v.version === version);
}

async function mutate<T>(query: string, variables: Record<string, unknown>): Promise<T> {
  const res = await gw.graphql<T>(query, variables, admin);
  if (!res.body?.data) throw new Error(`${query}: ${res.text}`);
  return res.body.data;
}

function upload(bytes: Buffer, version: string) {
  return gw.request<Record<string, unknown>>('PUT', `/v2/repository/models/${MODEL}/versions/${version}/model.onnx`, {
    headers: { ...admin, 'content-type': 'application/octet-stream' },
    body: bytes,
  });
}

/** A deterministic 8-image batch per seed: noise of varying strength, so different models disagree on some. */
function batch(seed: number): number[] {
  let x = seed * 7919 + 17;
  return Array.from({ length: 8 * 784 }, () => {
    x = (x * 1103515245 + 12345) % 2147483648;
    return x / 2147483648;
  });
}

function infer(data: number[], headers: Record<string, string>, version?: string) {
  const route = version ? `/v2/models/${MODEL}/versions/${version}/infer` : `/v2/models/${MODEL}/infer`;
  const body = JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [data.length / 784, 1, 28, 28], data }] });
  return gw.request<{ model_version: string; outputs: { data: number[] }[]; error?: string }>('POST', route, { headers: { ...headers, 'content-type': 'application/json' }, body });
}

async function metric(name: string, version: string): Promise<number | null> {
  const text = (await gw.request('GET', '/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(`model="${MODEL}"`) && l.includes(`version="${version}"`));
  return line ? Number(line.split(' ').pop()) : null;
}

beforeAll(async () => {
  await adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await adminQuery(`CREATE DATABASE "${dbName}"`);
  await applyMigrations({ kind: 'postgres', url: dbUrl });
  const log = createLogger({ level: 'silent', pretty: false });
  keyDb = new Database({ database: { mode: 'postgres', url: dbUrl, poolSize: 2 }, databaseConnectRetryMaxMs: 1000, migrateOnStart: false }, log);
  await keyDb.start();
  const keys = new KeyService(keyDb, { invalidate: async () => undefined }, log, 'test');
  const keyFor = async (scopes: Scope[]) => {
    const caller = { principal: null, actor: 'test' };
    const t = await keys.createTenant(caller, { name: `tenant-${randomBytes(5).toString('hex')}` });
    return { id: t.id, key: (await keys.createApiKey(caller, { tenant: t.id, name: 'rollout', scopes, allowedModels: [], expiresAt: null })).plaintext };
  };
  adminKey = (await keyFor(['admin'])).key;
  admin = authHeaders(adminKey);
  const t = await keyFor(['inference']);
  tenant = { id: t.id, headers: authHeaders(t.key) };

  // A seed with one model warmed from a file (config.pbtxt, Triton's input_data_file).
  const seed = mkdtempSync(path.join(os.tmpdir(), 'mg-rollout-seed-'));
  mkdirSync(path.join(seed, SEED_MODEL, '1'), { recursive: true });
  mkdirSync(path.join(seed, SEED_MODEL, 'warmup'));
  writeFileSync(path.join(seed, SEED_MODEL, '1', 'model.onnx'), CNN);
  writeFileSync(path.join(seed, SEED_MODEL, 'config.pbtxt'), SEED_PBTXT);
  writeFileSync(path.join(seed, SEED_MODEL, 'warmup', 'image.raw'), SAMPLE_RAW);
  gw = await ProductionGateway.start(
    {
      ...productionEnv({ databaseUrl: dbUrl }),
      MIGRATE_ON_START: 'false',
      MODEL_REPOSITORY: seed,
      INFERENCE_WORKERS: '1',
      MODEL_RECONCILE_INTERVAL_MS: '600000',
      MODEL_UPLOAD_MAX_BYTES: String(Math.max(CNN.length, LSTM.length, CRASHING.length) + 1024),
      // The inspection child's heap is capped at half of it: CRASHING dies there (VALIDATION_CRASHED).
      MODEL_VALIDATE_MAX_MEMORY_BYTES: String(2 ** 30),
    },
    { name: 'rollout' },
  );
}, STARTUP_TEST_TIMEOUT_MS);

afterAll(async () => {
  await gw?.stop();
  await keyDb?.close();
  await adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
});

describe('Warm-up (model_warmup)', () => {
  it('warms a seed model from config.pbtxt with a file sample before it turns READY, and reports it', async () => {
    const res = await gw.graphql<{ modelVersions: VersionRow[] }>(`{ modelVersions(model: "${SEED_MODEL}") { ${VERSION_FIELDS} } }`, {}, admin);
    const v1 = res.body?.data?.modelVersions?.[0];
    expect(v1).toMatchObject({ version: '1', replicaStatus: 'READY', warmupRuns: 5 });
    expect(v1!.warmupMs).toBeGreaterThan(0);
    const line = gw.logLines().find((l) => l['msg'] === 'model ready' && l['model'] === SEED_MODEL);
    expect(line).toMatchObject({ warmupRuns: 5 });
    expect(typeof line!['warmupMs']).toBe('number');
  });

  it('runs every sample of a published version before READY: count runs, time in modelVersions and the log', async () => {
    const published = await gw.request('POST', `/v2/repository/models/${MODEL}/load`, {
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ parameters: { config: CONFIG, 'file:1/model.onnx': CNN.toString('base64') } }),
    });
    expect(published.status).toBe(200);
    const v1 = await row('1');
    expect(v1).toMatchObject({ replicaStatus: 'READY', warmupRuns: WARMUP_COUNT + 2 });
    expect(v1!.warmupMs).toBeGreaterThan(0);
    const line = gw.logLines().find((l) => l['msg'] === 'model ready' && l['model'] === MODEL && l['version'] === 1);
    expect(line).toMatchObject({ warmupRuns: WARMUP_COUNT + 2 });
  });

  it('routes nothing to a version while it warms up: versionless requests get the serving one, naming it is MODEL_UNAVAILABLE', async () => {
    const publishing = upload(CNN, '2');
    let done = false;
    void publishing.finally(() => {
      done = true;
    });
    // Seen at least once while the upload call is still warming version 2 up.
    let whileWarming: { versionless: string; named: number } | null = null;
    await until('version 2 observed LOADING (warming up) before the upload answered', async () => {
      const v2 = await row('2');
      if (v2?.replicaStatus !== 'LOADING') return null;
      const [versionless, named] = await Promise.all([infer(SAMPLE_ITEM, admin), infer(SAMPLE_ITEM, admin, '2')]);
      if ((await row('2'))?.replicaStatus !== 'LOADING') return null; // turned READY meanwhile: look again
      whileWarming = { versionless: versionless.body!.model_version, named: named.status };
      return whileWarming;
    }, { everyMs: 5, failIf: () => (done && whileWarming === null ? 'the upload answered before version 2 was ever seen LOADING' : undefined) });
    expect(whileWarming).toMatchObject({ versionless: '1', named: 503 });
    expect((await publishing).status).toBe(200);
    expect(await row('2')).toMatchObject({ replicaStatus: 'READY', warmupRuns: WARMUP_COUNT + 2 });
    expect((await infer(SAMPLE_ITEM, admin, '2')).status).toBe(200);
  });

  it('refuses a warm-up that cannot run before anything is committed (the serving version untouched)', async () => {
    const before = await versions();
    const bad = JSON.parse(CONFIG) as { model_warmup: unknown[] };
    // input_data_file names a file the load did not send (file:warmup/image.raw).
    bad.model_warmup = [{ name: 'file', inputs: { image: { input_data_file: 'image.raw' } } }];
    const refused = await gw.request<{ error: string; code?: string; reason?: string }>('POST', `/v2/repository/models/${MODEL}/load`, {
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ parameters: { config: JSON.stringify(bad), 'file:3/model.onnx': CNN.toString('base64') } }),
    });
    expect(refused.status).toBe(422);
    expect(refused.body).toMatchObject({ code: 'MODEL_INVALID', reason: 'WARMUP_FILE_MISSING' });
    expect(refused.text).toContain('input_data_file');
    // Sent, but a byte short of one [1,28,28] FP32 item.
    const short = await gw.request<{ code?: string; reason?: string; error: string }>('POST', `/v2/repository/models/${MODEL}/load`, {
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ parameters: { config: JSON.stringify(bad), 'file:3/model.onnx': CNN.toString('base64'), 'file:warmup/image.raw': SAMPLE_RAW.subarray(1).toString('base64') } }),
    });
    expect(short.status).toBe(422);
    expect(short.body).toMatchObject({ code: 'MODEL_INVALID', reason: 'WARMUP_FILE_SIZE' });
    expect(short.body!.error).toContain('3135 bytes');
    // A file no input_data_file names, and a path outside warmup/.
    for (const parameter of ['file:warmup/other.raw', 'file:warmup/../1/model.onnx']) {
      const stray = await gw.request<{ code?: string }>('POST', `/v2/repository/models/${MODEL}/load`, {
        headers: { ...admin, 'content-type': 'application/json' },
        body: JSON.stringify({ parameters: { config: JSON.stringify(bad), 'file:3/model.onnx': CNN.toString('base64'), [parameter]: SAMPLE_RAW.toString('base64') } }),
      });
      expect({ parameter, status: stray.status, code: stray.body?.code }).toEqual({ parameter, status: 400, code: 'BAD_USER_INPUT' });
    }
    // Dims that do not fit the input are a config error too.
    bad.model_warmup = [{ name: 'dims', inputs: { image: { dims: [1, 29, 29], zero_data: true } } }];
    const misfit = await gw.request('POST', `/v2/repository/models/${MODEL}/load`, {
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ parameters: { config: JSON.stringify(bad), 'file:3/model.onnx': CNN.toString('base64') } }),
    });
    expect(misfit.status).toBe(422);
    expect(misfit.text).toContain('model_warmup');
    expect((await versions()).map((v) => [v.version, v.replicaStatus, v.digest])).toEqual(before.map((v) => [v.version, v.replicaStatus, v.digest]));
  });

  it('an upload whose inspection crashes the child is 422 VALIDATION_CRASHED, and the model keeps serving', async () => {
    const before = await versions();
    const crashed = await upload(CRASHING, '3');
    expect(crashed.status).toBe(422);
    expect(crashed.body).toMatchObject({ code: 'MODEL_INVALID', reason: 'VALIDATION_CRASHED' });
    process.stdout.write(`crashed upload: ${String(crashed.body!['error'])}\n`);
    expect((await versions()).map((v) => [v.version, v.replicaStatus, v.digest])).toEqual(before.map((v) => [v.version, v.replicaStatus, v.digest]));
    const served = await infer(SAMPLE_ITEM, admin);
    expect(served.status).toBe(200);
    expect((await gw.request('GET', '/readyz')).status).toBe(200);
  });
});

describe('Warm-up from a file published with the version (file:warmup/<name>)', () => {
  const FILE_MODEL = `${MODEL}-file`;
  const fileConfig = () => {
    const config = JSON.parse(CONFIG) as Record<string, unknown>;
    config['name'] = FILE_MODEL;
    config['model_warmup'] = [{ name: 'from_file', batch_size: 4, count: 3, inputs: { image: { data_type: 'TYPE_FP32', dims: [1, 28, 28], input_data_file: 'image.raw' } } }];
    return JSON.stringify(config);
  };
  const fileVersions = async () => (await gw.graphql<{ modelVersions: VersionRow[] }>(`{ modelVersions(model: "${FILE_MODEL}") { ${VERSION_FIELDS} } }`, {}, admin)).body!.data!.modelVersions;

  it('publishes a version with its warm-up file through Triton\'s load: the file warms it before READY', async () => {
    const published = await gw.request('POST', `/v2/repository/models/${FILE_MODEL}/load`, {
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ parameters: { config: fileConfig(), 'file:1/model.onnx': CNN.toString('base64'), 'file:warmup/image.raw': SAMPLE_RAW.toString('base64') } }),
    });
    expect(published.status).toBe(200);
    expect((await fileVersions())[0]).toMatchObject({ version: '1', replicaStatus: 'READY', warmupRuns: 3 });
    const line = gw.logLines().find((l) => l['msg'] === 'model ready' && l['model'] === FILE_MODEL);
    expect(line).toMatchObject({ warmupRuns: 3 });
    // The file is a blob named by the version's config (kept by blob GC as long as a version names it).
    const [stored] = await query<{ files: Record<string, string> }>(`SELECT "config"->'warmup_files' AS files FROM "ModelCatalogVersion" WHERE "model" = $1 AND "version" = 1`, [FILE_MODEL]);
    const digest = createHash('sha256').update(SAMPLE_RAW).digest('hex');
    expect(stored!.files).toEqual({ 'image.raw': digest });
    expect((await query(`SELECT 1 FROM "ModelBlob" WHERE "digest" = $1`, [digest])).length).toBe(1);
  });

  it('a later streamed upload of the model warms up from the same file (it travels with the config)', async () => {
    const put = await gw.request('PUT', `/v2/repository/models/${FILE_MODEL}/versions/2/model.onnx`, { headers: { ...admin, 'content-type': 'application/octet-stream' }, body: CNN });
    expect(put.status).toBe(200);
    expect((await fileVersions()).find((v) => v.version === '2')).toMatchObject({ replicaStatus: 'READY', warmupRuns: 3 });
  });

  it('a load with config alone keeps the warm-up files its versions were published with', async () => {
    const config = JSON.parse(fileConfig()) as { model_warmup: { count: number }[] };
    config.model_warmup[0]!.count = 2;
    const loaded = await gw.request('POST', `/v2/repository/models/${FILE_MODEL}/load`, {
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ parameters: { config: JSON.stringify(config) } }),
    });
    expect(loaded.status).toBe(200);
    expect((await fileVersions()).map((v) => [v.version, v.replicaStatus, v.warmupRuns])).toEqual([['1', 'READY', 2], ['2', 'READY', 2]]);
  });

  it('a config may not name warmup_files itself (only the gateway does, from file:warmup/<name>)', async () => {
    const config = JSON.parse(fileConfig()) as Record<string, unknown>;
    config['warmup_files'] = { 'image.raw': 'a'.repeat(64) };
    const refused = await gw.request<{ code?: string; reason?: string }>('POST', `/v2/repository/models/${FILE_MODEL}/load`, {
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ parameters: { config: JSON.stringify(config), 'file:3/model.onnx': CNN.toString('base64') } }),
    });
    expect(refused.status).toBe(422);
    expect(refused.body).toMatchObject({ code: 'MODEL_INVALID', reason: 'CONFIG_INVALID' });
  });
});

describe('Shadow runs', () => {
  const reference = new Map<number, number[]>();
  let tenantRequests = 0;

  /** The tenant's live traffic: `n` requests of 8 images, each checked against the answer without a shadow. */
  async function traffic(n: number): Promise<void> {
    for (let i = 0; i < n; i += 1) {
      const seed = i % 10;
      const res = await infer(batch(seed), tenant.headers);
      tenantRequests += 1;
      expect(res.status).toBe(200);
      expect(res.body!.model_version).toBe('1');
      expect(res.body!.outputs[0]!.data).toEqual(reference.get(seed));
    }
  }

  beforeAll(async () => {
    await upload(LSTM, '3');
    await mutate(`mutation { setModelTraffic(model: "${MODEL}", weights: [{version: "1", percent: 100}]) { version } }`, {});
    for (let seed = 0; seed < 10; seed += 1) {
      const res = await infer(batch(seed), tenant.headers);
      tenantRequests += 1;
      reference.set(seed, res.body!.outputs[0]!.data);
    }
  });

  it('identical weights at 50 %: top-1 agreement 1.0, max difference 0, answers unchanged', async () => {
    const set = await mutate<{ setModelShadow: VersionRow[] }>(`mutation { setModelShadow(model: "${MODEL}", version: "2", percent: 50) { ${VERSION_FIELDS} } }`, {});
    expect(set.setModelShadow.find((v) => v.version === '2')).toMatchObject({ shadowPercent: 50 });
    await traffic(40);
    const v2 = await until('shadow runs of version 2', async () => {
      const r = await row('2');
      return r && r.shadowRuns > 0 ? r : null;
    });
    process.stdout.write(`shadow v2: runs ${v2.shadowRuns}, skipped ${v2.shadowSkipped}, failed ${v2.shadowFailures} of 40 requests at 50 %\n`);
    expect(v2.shadowTop1Agreement).toBe(1);
    expect(v2.shadowMaxAbsDifference).toBe(0);
    expect(v2.shadowFailures).toBe(0);
    expect(await metric('modelgate_shadow_top1_agreement_ratio', '2')).toBe(1);
    expect(await metric('modelgate_shadow_max_abs_difference', '2')).toBe(0);
    expect(await metric('modelgate_shadow_runs_total', '2')).toBeGreaterThan(0);
  });

  it('shadows GraphQL classify requests too (the same draw, in the one place every door\'s runs pass): agreement counted', async () => {
    const before = (await row('2'))!;
    const classifyOnce = async (seed: number) => {
      const images = Array.from({ length: 8 }, (_, k) => ({ pixels: batch(seed).slice(k * 784, (k + 1) * 784).map((v) => Math.round(v * 255)), width: 28, height: 28, channels: 1 }));
      const res = await gw.graphql<{ classify: { modelVersion: string; results: { predictions: { index: number }[] }[] } }>(
        'mutation ($m: String!, $i: [ImageInput!]!) { classify(model: $m, images: $i, topK: 1) { modelVersion results { predictions { index } } } }',
        { m: MODEL, i: images },
        tenant.headers,
      );
      tenantRequests += 1;
      expect(res.body?.errors).toBeUndefined();
      expect(res.body!.data!.classify.modelVersion).toBe('1');
      return res.body!.data!.classify.results.map((r) => r.predictions[0]!.index);
    };
    const answers = new Map<number, number[]>();
    for (let i = 0; i < 40; i += 1) {
      const seed = i % 10;
      const top1 = await classifyOnce(seed);
      if (answers.has(seed)) expect(top1).toEqual(answers.get(seed));
      answers.set(seed, top1);
    }
    const after = await until('shadow runs of classify requests on version 2', async () => {
      const r = await row('2');
      return r && r.shadowRuns > before.shadowRuns ? r : null;
    });
    process.stdout.write(`shadow v2 from classify: runs ${after.shadowRuns - before.shadowRuns}, skipped ${after.shadowSkipped - before.shadowSkipped} of 40 requests at 50 %\n`);
    expect(after.shadowTop1Agreement).toBe(1);
    expect(after.shadowMaxAbsDifference).toBe(0);
    expect(after.shadowFailures).toBe(0);

    // Explanations (classify with explain) too: each drawn one offers its chunk of original and perturbed images.
    // Sent with the admin key: the billing test below counts the tenant's 8-item requests only.
    const image = [{ pixels: batch(3).slice(0, 784).map((v) => Math.round(v * 255)), width: 28, height: 28, channels: 1 }];
    for (let i = 0; i < 12; i += 1) {
      const res = await gw.graphql<{ classify: { modelVersion: string } }>(
        'mutation ($m: String!, $i: [ImageInput!]!) { classify(model: $m, images: $i, topK: 1, explain: {method: OCCLUSION, patch: 7, stride: 7}) { modelVersion } }',
        { m: MODEL, i: image },
        admin,
      );
      expect(res.body?.errors).toBeUndefined();
      expect(res.body!.data!.classify.modelVersion).toBe('1');
    }
    const explained = await until('shadow runs of explanations on version 2', async () => {
      const r = await row('2');
      return r && r.shadowRuns + r.shadowSkipped > after.shadowRuns + after.shadowSkipped ? r : null;
    });
    process.stdout.write(`shadow v2 from 12 explanations: runs ${explained.shadowRuns - after.shadowRuns}, skipped ${explained.shadowSkipped - after.shadowSkipped}\n`);
    expect(explained.shadowTop1Agreement).toBe(1);
    expect(explained.shadowFailures).toBe(0);
  });

  it('a different model at 50 %: agreement below 1.0 and a difference, answers still unchanged', async () => {
    await mutate(`mutation { setModelShadow(model: "${MODEL}", version: "3", percent: 50) { version } }`, {});
    const after = await versions();
    expect(after.filter((v) => v.shadowPercent !== null).map((v) => v.version)).toEqual(['3']);
    await traffic(40);
    const v3 = await until('shadow runs of version 3', async () => {
      const r = await row('3');
      return r && r.shadowRuns > 0 ? r : null;
    });
    process.stdout.write(`shadow v3 (LSTM): runs ${v3.shadowRuns}, agreement ${v3.shadowTop1Agreement}, max abs diff ${v3.shadowMaxAbsDifference}\n`);
    expect(v3.shadowTop1Agreement).toBeLessThan(1);
    expect(v3.shadowMaxAbsDifference).toBeGreaterThan(0);
    expect(await metric('modelgate_shadow_top1_agreement_ratio', '3')).toBeLessThan(1);
  });

  it('bills the tenant for its own requests only: one usage record each, none for a shadow run', async () => {
    const usage = () =>
      query<{ n: number; units: number; versions: string[] }>(
        `SELECT COUNT(*)::int AS n, COALESCE(SUM("computeUnits"), 0)::float AS units, ARRAY_AGG(DISTINCT "modelVersion") AS versions FROM "UsageRecord" WHERE "tenantId" = $1 AND "model" = $2`,
        [tenant.id, MODEL],
      );
    await until('every tenant request recorded', async () => ((await usage())[0]!.n >= tenantRequests ? true : null));
    const runs = ((await row('2'))!.shadowRuns ?? 0) + ((await row('3'))!.shadowRuns ?? 0);
    expect(runs).toBeGreaterThan(0);
    const [billed] = await usage();
    expect(billed).toEqual({ n: tenantRequests, units: tenantRequests * 8, versions: ['1'] });
    // No record anywhere names a shadow version.
    const shadowRecords = await query<{ n: number }>(`SELECT COUNT(*)::int AS n FROM "UsageRecord" WHERE "model" = $1 AND "modelVersion" IN ('2', '3') AND "tenantId" = $2`, [MODEL, tenant.id]);
    expect(shadowRecords[0]!.n).toBe(0);
  });

  it('the CLI sets and clears a shadow (models shadow NAME VERSION PERCENT)', async () => {
    const env = { MODELGATE_URL: gw.url, MODELGATE_ADMIN_KEY: adminKey };
    const set = await runCli(['models', 'shadow', MODEL, '2', '10', '--json', '--timeout', '120s'], env, 150_000);
    expect(set.code).toBe(0);
    expect((JSON.parse(set.stdout) as VersionRow[]).find((v) => v.version === '2')).toMatchObject({ shadowPercent: 10 });
    const cleared = await runCli(['models', 'shadow', MODEL, '2', '0', '--timeout', '120s'], env, 150_000);
    expect(cleared.code).toBe(0);
    expect((await versions()).every((v) => v.shadowPercent === null)).toBe(true);
  });
});

describe('Rollback', () => {
  it('restores the split from before the last change, records the audit event, and a second rollback undoes it', async () => {
    // The last serving change was the split 1=100 (a shadow is not a serving change).
    const rolled = await mutate<{ rollbackModel: VersionRow[] }>(`mutation { rollbackModel(model: "${MODEL}") { ${VERSION_FIELDS} } }`, {});
    expect(rolled.rollbackModel.map((v) => v.trafficPercent)).toEqual([null, null, null]);
    const audit = await query<{ action: string; targetId: string }>(`SELECT "action", "targetId" FROM "AuditEvent" WHERE "action" = 'model.rollback' AND "targetId" LIKE $1`, [`${MODEL}/%`]);
    expect(audit.map((a) => a.targetId).sort()).toEqual([`${MODEL}/1`, `${MODEL}/2`, `${MODEL}/3`]);
    // Without a split the latest READY version serves.
    expect((await infer(SAMPLE_ITEM, admin)).body!.model_version).toBe('3');
    const again = await mutate<{ rollbackModel: VersionRow[] }>(`mutation { rollbackModel(model: "${MODEL}") { ${VERSION_FIELDS} } }`, {});
    expect(again.rollbackModel.map((v) => v.trafficPercent)).toEqual([100, 0, 0]);
    expect((await infer(SAMPLE_ITEM, admin)).body!.model_version).toBe('1');
  });

  it('restores the previous weights of a republished version (CLI models rollback NAME)', async () => {
    const cnnDigest = (await row('2'))!.digest;
    const cnnAnswer = (await infer(SAMPLE_ITEM, admin, '2')).body!.outputs[0]!.data;
    expect((await upload(LSTM, '2')).status).toBe(200);
    expect((await row('2'))!.digest).not.toBe(cnnDigest);
    expect((await infer(SAMPLE_ITEM, admin, '2')).body!.outputs[0]!.data).not.toEqual(cnnAnswer);
    // The rollback answers once this replica reloaded and warmed the old weights: past the CLI's 15 s default on a loaded machine.
    const run = await runCli(['models', 'rollback', MODEL, '--timeout', '120s'], { MODELGATE_URL: gw.url, MODELGATE_ADMIN_KEY: adminKey }, 150_000);
    expect(run).toMatchObject({ code: 0 });
    expect(run.stdout).toContain('rolled back');
    expect(await row('2')).toMatchObject({ digest: cnnDigest, replicaStatus: 'READY' });
    expect((await infer(SAMPLE_ITEM, admin, '2')).body!.outputs[0]!.data).toEqual(cnnAnswer);
  });

  it('answers BAD_USER_INPUT for a model with no earlier serving state', async () => {
    const res = await gw.graphql(`mutation { rollbackModel(model: "${SEED_MODEL}") { version } }`, {}, admin);
    expect(res.body?.errors?.[0]?.extensions?.['code']).toBe('BAD_USER_INPUT');
  });
});
