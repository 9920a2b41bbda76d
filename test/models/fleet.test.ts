/**
 * Models as a fleet-wide service (issue #23), through the production build:
 * three gateways (`node dist/main.js`, NODE_ENV=production) on one Postgres
 * and Redis, each with its own empty seed repository (no shared model
 * directory). A model published through A with Triton's repository load
 * (config + base64 file, raw HTTP exactly as tritonclient sends it, plus
 * `?wait=fleet`) is served by B and C (time to fleet-ready printed); an
 * unload through C stops A and B (GraphQL `wait: FLEET`); every replica's
 * generation and per-version state shows in modelVersions, the repository
 * index and /readyz; the GraphQL mutations act fleet-wide too; a replica
 * started later converges at start; hostile uploads (truncated, absurd dims,
 * external data, an op onnxruntime lacks, over the bound, a config the graph
 * disagrees with) get coded errors and leave the fleet serving. The
 * periodic reconcile is set to 10 minutes, so B's convergence here is the
 * pg_notify path. The replicas use a database of their own: catalog models
 * are fleet-wide, so on the run's shared database every other test's
 * gateway would load them too.
 */
import { createHash, randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ProductionGateway, productionEnv, REPO_ROOT, until } from '../harness';
import { authHeaders } from '../helpers/auth';
import { buildOnnx, generatedConfig } from '../helpers/onnx-builder';
import { testEnv } from '../helpers/env';
import { applyMigrations } from '../../src/db/migrate';
import { Database } from '../../src/db/database';
import { KeyService } from '../../src/keys/key.service';
import { createLogger } from '../../src/log/logger';
import type { Scope } from '../../src/auth/principal';

const CNN = readFileSync(path.join(REPO_ROOT, 'models', 'fashion-cnn', '1', 'model.onnx'));
const MODEL = `fleet-cnn-${randomBytes(4).toString('hex')}`;

/** Triton's JSON model config for the CNN (what tritonclient users pass as `config`). */
const TRITON_CONFIG = JSON.stringify({
  name: MODEL,
  backend: 'onnxruntime',
  max_batch_size: 64,
  input: [{ name: 'image', data_type: 'TYPE_FP32', dims: [1, 28, 28] }],
  output: [{ name: 'probabilities', data_type: 'TYPE_FP32', dims: [10] }],
  dynamic_batching: { max_queue_delay_microseconds: 1000 },
});

let a: ProductionGateway;
let b: ProductionGateway;
let c: ProductionGateway;
let admin: Record<string, string>;
const dbName = `${testEnv.databaseName}_fleet`;
const dbUrl = (() => {
  const url = new URL(testEnv.databaseUrl);
  url.pathname = `/${dbName}`;
  return url.toString();
})();
let keyDb: Database;
let keys: KeyService;

async function adminQuery(sql: string): Promise<void> {
  const client = new pg.Client({ connectionString: testEnv.adminDatabaseUrl });
  await client.connect();
  await client.query(sql);
  await client.end();
}

async function createKey(scopes: Scope[]): Promise<string> {
  const caller = { principal: null, actor: 'test' };
  const tenant = await keys.createTenant(caller, { name: `tenant-${randomBytes(5).toString('hex')}` });
  return (await keys.createApiKey(caller, { tenant: tenant.id, name: 'fleet test', scopes, allowedModels: [], expiresAt: null })).plaintext;
}

function replicaEnv(): Record<string, string> {
  return {
    ...productionEnv({ databaseUrl: dbUrl }),
    MIGRATE_ON_START: 'false',
    MODEL_REPOSITORY: mkdtempSync(path.join(os.tmpdir(), 'mg-seed-')),
    INFERENCE_WORKERS: '1',
    MODEL_RECONCILE_INTERVAL_MS: '600000',
    MODEL_REPLICA_HEARTBEAT_MS: '500',
    MODEL_UPLOAD_MAX_BYTES: String(CNN.length + 1024),
  };
}

/** tritonclient.http's load_model(name, config=..., files=...) body: parameters.config and base64 `file:` entries. */
function loadBody(config: string | undefined, files: Record<string, Buffer> = {}): string {
  const parameters: Record<string, string> = {};
  if (config !== undefined) parameters['config'] = config;
  for (const [p, content] of Object.entries(files)) parameters[p] = content.toString('base64');
  return JSON.stringify(Object.keys(parameters).length > 0 ? { parameters } : {});
}

function post(gw: ProductionGateway, route: string, body: string, headers = admin) {
  return gw.request<Record<string, unknown>>('POST', route, { headers: { ...headers, 'content-type': 'application/json' }, body });
}

async function readyStatus(gw: ProductionGateway, model = MODEL): Promise<number> {
  return (await gw.request('GET', `/v2/models/${model}/ready`, { headers: admin })).status;
}

/** How many times the replica logged a version turning READY (each load or reload). */
function modelReadyLogs(gw: ProductionGateway): number {
  return gw.logLines().filter((l) => l['msg'] === 'model ready').length;
}

function infer(gw: ProductionGateway, model = MODEL) {
  const body = JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], data: Array.from({ length: 784 }, (_, i) => (i % 7) / 7) }] });
  return gw.request<{ model_name: string; model_version: string; outputs: { data: number[] }[] }>('POST', `/v2/models/${model}/infer`, { headers: { ...admin, 'content-type': 'application/json' }, body });
}

beforeAll(async () => {
  await adminQuery(`CREATE DATABASE "${dbName}"`);
  await applyMigrations({ kind: 'postgres', url: dbUrl });
  const log = createLogger({ level: 'silent', pretty: false });
  keyDb = new Database({ database: { mode: 'postgres', url: dbUrl, poolSize: 2 }, databaseConnectRetryMaxMs: 1000, migrateOnStart: false }, log);
  await keyDb.start();
  keys = new KeyService(keyDb, { invalidate: async () => undefined }, log, 'test');
  admin = authHeaders(await createKey(['admin']));
  [a, b, c] = await Promise.all([ProductionGateway.start(replicaEnv(), { name: 'A' }), ProductionGateway.start(replicaEnv(), { name: 'B' }), ProductionGateway.start(replicaEnv(), { name: 'C' })]);
}, 240_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
  await keyDb?.close();
  await adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
});

type FleetReport = { generation: number; converged: boolean; waited_ms: number; replicas: { replica: string; generation: number; lagging: boolean; failures: string[] }[] };

describe('a model published through one replica is served by every replica', () => {
  it('publishes with Triton\'s load (config + file) and ?wait=fleet: answers once A, B and C all serve it, and says so', async () => {
    expect((await infer(b)).status).toBe(404);
    expect((await infer(c)).status).toBe(404);
    // Every replica reports itself before anything waits on the fleet.
    await until('three replicas reporting', async () => ((await a.request<{ components: { modelCatalog: { detail: { replicas: unknown[] } } } }>('GET', '/readyz')).body?.components.modelCatalog.detail.replicas ?? []).length, { accept: (n) => n === 3 });
    const started = performance.now();
    const loaded = await post(a, `/v2/repository/models/${MODEL}/load?wait=fleet&timeout_ms=120000`, loadBody(TRITON_CONFIG, { 'file:1/model.onnx': CNN }));
    const fleetReady = performance.now();
    expect(loaded.status).toBe(200);
    const fleet = (loaded.body as { fleet: FleetReport }).fleet;
    expect(fleet.converged).toBe(true);
    expect(fleet.replicas).toHaveLength(3);
    expect(fleet.replicas.every((r) => !r.lagging && r.generation >= fleet.generation && r.failures.length === 0)).toBe(true);
    // wait=fleet answered: no replica needs another wait to serve it.
    for (const gw of [a, b, c]) expect(await readyStatus(gw)).toBe(200);
    // A figure, not a bound.
    console.log(`publish of a ${CNN.length}-byte model to 3 replicas: fleet-ready (A's answer with wait=fleet) ${Math.round(fleetReady - started)} ms after the call; the fleet wait itself ${fleet.waited_ms} ms`);
    const [fromA, fromB, fromC] = await Promise.all([infer(a), infer(b), infer(c)]);
    expect(fromA.status).toBe(200);
    expect(fromB.status).toBe(200);
    expect(fromB.body!.model_version).toBe('1');
    expect(fromB.body!.outputs[0]!.data).toEqual(fromA.body!.outputs[0]!.data);
    expect(fromC.body!.outputs[0]!.data).toEqual(fromA.body!.outputs[0]!.data);
    // The index shows each replica's state and generation of the version.
    const index = await post(b, '/v2/repository/index', '{}');
    const entry = (index.body as unknown as Record<string, unknown>[]).find((e) => e['name'] === MODEL && e['version'] === '1');
    expect(entry).toMatchObject({ name: MODEL, version: '1', state: 'READY', source: 'CATALOG' });
    const replicas = entry!['replicas'] as { replica: string; applied_generation: number; state: string; lagging: boolean }[];
    expect(replicas).toHaveLength(3);
    expect(replicas.every((r) => r.state === 'READY' && !r.lagging && r.applied_generation === fleet.generation)).toBe(true);
    // /readyz: this replica's generation against the catalog's, state counts (no model names: it takes no key), every replica's generation.
    const readyz = await c.request<{ components: { modelCatalog: { detail: Record<string, unknown> } } }>('GET', '/readyz');
    const detail = readyz.body!.components.modelCatalog.detail;
    expect(detail['generation']).toBe(fleet.generation);
    expect(detail['catalogGeneration']).toBe(fleet.generation);
    expect(detail['versions']).toEqual({ READY: 1 });
    expect(JSON.stringify(detail)).not.toContain(MODEL);
  }, 180_000);

  it('unload through C with wait: FLEET stops A and B by the time it answers; a load through C with wait: FLEET brings all three back', async () => {
    type Answer = { unloadModel?: { status: string; fleet: { converged: boolean; generation: number; replicas: { lagging: boolean; generation: number }[] } } };
    const unloaded = await c.graphql<Answer>(`mutation { unloadModel(name: "${MODEL}", wait: FLEET, waitTimeoutMs: 120000) { status fleet { converged generation waitedMs replicas { replica host pid generation lagging failures } } } }`, {}, admin);
    expect(unloaded.body!.errors).toBeUndefined();
    expect(unloaded.body!.data!.unloadModel!.status).toBe('UNLOADED');
    const fleet = unloaded.body!.data!.unloadModel!.fleet;
    expect(fleet.converged).toBe(true);
    expect(fleet.replicas).toHaveLength(3);
    expect(await readyStatus(a)).toBe(503);
    expect(await readyStatus(b)).toBe(503);
    expect((await infer(a)).status).toBe(503);

    const loaded = await c.graphql<{ loadModel: { status: string; fleet: { converged: boolean } } }>(`mutation { loadModel(name: "${MODEL}", wait: FLEET) { status fleet { converged } } }`, {}, admin);
    expect(loaded.body!.data!.loadModel).toEqual({ status: 'READY', fleet: { converged: true } });
    for (const gw of [a, b, c]) expect(await readyStatus(gw)).toBe(200);
    // Without wait: FLEET, fleet is null (the answer follows this replica only).
    const plain = await c.graphql<{ loadModel: { fleet: unknown } }>(`mutation { loadModel(name: "${MODEL}") { fleet { converged } } }`, {}, admin);
    expect(plain.body!.data!.loadModel.fleet).toBeNull();
    const refused = await c.graphql(`mutation { loadModel(name: "${MODEL}", wait: FLEET, waitTimeoutMs: 700000) { status } }`, {}, admin);
    expect(refused.body!.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'waitTimeoutMs' });
  }, 180_000);

  it('modelVersions shows every replica\'s state and generation of each version', async () => {
    type Row = { version: string; generation: number; replicas: { replica: string; status: string; generation: number; appliedGeneration: number | null; lagging: boolean }[] };
    const read = async () => (await b.graphql<{ modelVersions: Row[] }>(`{ modelVersions(model: "${MODEL}") { version generation replicas { replica host pid status reason generation appliedGeneration lagging } } }`, {}, admin)).body?.data?.modelVersions;
    // The last load above did not wait for the fleet: each replica's report catches up within a heartbeat or two.
    const rows = await until('every replica to report the last load', read, { accept: (r) => r?.[0]?.replicas.every((x) => x.appliedGeneration === r[0]!.generation) === true });
    const [v1] = rows!;
    expect(v1!.replicas).toHaveLength(3);
    expect(new Set(v1!.replicas.map((r) => r.replica)).size).toBe(3);
    expect(v1!.replicas.every((r) => r.status === 'READY' && !r.lagging)).toBe(true);
  });

  it('unload through A turns B not-ready; load through A brings it back', async () => {
    expect((await post(a, `/v2/repository/models/${MODEL}/unload`, JSON.stringify({ parameters: { unload_dependents: false } }))).status).toBe(200);
    expect(await readyStatus(a)).toBe(503);
    await until('B to turn the model not-ready', () => readyStatus(b), { accept: (s) => s === 503 });
    expect((await infer(b)).status).toBe(503);

    expect((await post(a, `/v2/repository/models/${MODEL}/load`, '{}')).status).toBe(200);
    expect(await readyStatus(a)).toBe(200);
    await until('B to serve it again', () => readyStatus(b), { accept: (s) => s === 200 });
    expect((await infer(b)).status).toBe(200);
  });

  it('GraphQL unloadModel / loadModel through B act on A; modelVersions shows source, desired and replica state', async () => {
    const unloaded = await b.graphql<{ unloadModel: { status: string } }>(`mutation { unloadModel(name: "${MODEL}") { status } }`, {}, admin);
    expect(unloaded.body!.data!.unloadModel.status).toBe('UNLOADED');
    // A turns not-ready at once and records the generation once the unload's drain is over.
    type Row = Record<string, unknown>;
    const versions = await until(
      'A to have applied the unload',
      async () => (await a.graphql<{ modelVersions: Row[] }>(`{ modelVersions(model: "${MODEL}") { version source desiredState digest replicaStatus generation appliedGeneration } }`, {}, admin)).body?.data?.modelVersions,
      { accept: (rows) => rows?.[0]?.['desiredState'] === 'UNLOADED' && rows[0]['appliedGeneration'] === rows[0]['generation'] },
    );
    const [v1] = versions!;
    expect(v1).toMatchObject({ version: '1', source: 'CATALOG', desiredState: 'UNLOADED', replicaStatus: 'UNLOADED' });
    expect(v1!['digest']).toMatch(/^[0-9a-f]{64}$/);
    expect(await readyStatus(a)).toBe(503);

    const loaded = await b.graphql<{ loadModel: { status: string } }>(`mutation { loadModel(name: "${MODEL}") { status } }`, {}, admin);
    expect(loaded.body!.data!.loadModel.status).toBe('READY');
    await until('A to serve it again', () => readyStatus(a), { accept: (s) => s === 200 });
  });

  it('a replica started after the changes converges at start; a change whose notification it missed arrives with the periodic reconcile', async () => {
    const d = await ProductionGateway.start({ ...replicaEnv(), MODEL_RECONCILE_INTERVAL_MS: '300' }, { name: 'D' });
    const pool = new pg.Client({ connectionString: dbUrl });
    await pool.connect();
    try {
      // Ready means converged: no wait beyond /readyz.
      expect(await readyStatus(d)).toBe(200);
      const detail = (await d.request<{ components: { modelCatalog: { detail: Record<string, unknown> } } }>('GET', '/readyz')).body!.components.modelCatalog.detail;
      expect(detail['generation']).toBe(detail['catalogGeneration']);
      expect((await infer(d)).status).toBe(200);
      // A change committed without its NOTIFY (a lost notification): only the periodic reconcile can carry it.
      await pool.query(`UPDATE "ModelCatalogVersion" SET "desiredState" = 'UNLOADED', generation = generation + 100 WHERE model = $1`, [MODEL]);
      await until('D to apply the change on its periodic reconcile', () => readyStatus(d), { accept: (s) => s === 503 });
      // A, B and C reconcile every 10 minutes and heard nothing: still serving.
      expect(await readyStatus(a)).toBe(200);
      expect(await readyStatus(b)).toBe(200);
      expect(await readyStatus(c)).toBe(200);
      expect((await post(a, `/v2/repository/models/${MODEL}/load`, '{}')).status).toBe(200);
      await until('D to serve it again', () => readyStatus(d), { accept: (s) => s === 200 });
    } finally {
      await pool.end();
      await d.stop();
    }
  }, 120_000);
});

describe('hostile and refused publishes get coded errors and leave the fleet serving', () => {
  it('refuses a graph declaring absurd dims, external data, an op onnxruntime lacks, and a config whose I/O disagrees with the graph: each 422 with its reason, nothing committed', async () => {
    const NEW = `${MODEL}-hostile`;
    const config = JSON.stringify(generatedConfig(NEW));
    const cases: [string, Buffer, string, string][] = [
      ['absurd dims', buildOnnx({ dims: ['batch', 1_000_000_000_000] }), config, 'DIMS_TOO_LARGE'],
      ['external data', buildOnnx({ externalPath: '../../../../../etc/passwd' }), config, 'EXTERNAL_DATA'],
      ['unknown op', buildOnnx({ unknownOp: 'NoSuchOperator' }), config, 'UNSUPPORTED_OP'],
      ['config I/O disagrees', buildOnnx(), JSON.stringify(generatedConfig(NEW, { input: 'pixels' })), 'CONFIG_MISMATCH'],
      ['config dims disagree', buildOnnx(), JSON.stringify(generatedConfig(NEW, { dims: [5] })), 'CONFIG_MISMATCH'],
    ];
    for (const [what, bytes, cfg, reason] of cases) {
      // On the existing model (a new version beside the serving one) and as a brand-new model.
      for (const [name, version] of [[MODEL, 7], [NEW, 1]] as const) {
        const refused = await post(b, `/v2/repository/models/${name}/load`, loadBody(cfg.replace(NEW, name), { [`file:${version}/model.onnx`]: bytes }));
        expect({ what, name, status: refused.status, code: refused.body?.['code'], reason: refused.body?.['reason'] }).toEqual({ what, name, status: 422, code: 'MODEL_INVALID', reason });
      }
    }
    // The same refusals through the streamed upload.
    const put = await b.request<Record<string, unknown>>('PUT', `/v2/repository/models/${MODEL}/versions/7/model.onnx`, { headers: { ...admin, 'content-type': 'application/octet-stream' }, body: buildOnnx({ externalPath: '/etc/shadow' }) });
    expect(put.status).toBe(422);
    expect(put.body).toMatchObject({ code: 'MODEL_INVALID', reason: 'EXTERNAL_DATA' });
    // A servable generated graph is accepted by the same path (the refusals above are about the files, not the route).
    expect((await post(b, `/v2/repository/models/${NEW}/load`, loadBody(config, { 'file:1/model.onnx': buildOnnx() }))).status).toBe(200);
    // Nothing refused was committed: the serving version answers on every replica, no version 7 exists.
    for (const gw of [a, b, c]) {
      expect(gw.running).toBe(true);
      expect((await infer(gw)).status).toBe(200);
      expect((await gw.request('GET', `/v2/models/${MODEL}/versions/7/ready`, { headers: admin })).status).toBe(404);
    }
    const catalog = new pg.Client({ connectionString: dbUrl });
    await catalog.connect();
    try {
      expect((await catalog.query('SELECT version FROM "ModelCatalogVersion" WHERE model = $1 AND version = 7', [MODEL])).rowCount).toBe(0);
    } finally {
      await catalog.end();
    }
  }, 180_000);

  it('refuses truncated weights (MODEL_INVALID), weights over MODEL_UPLOAD_MAX_BYTES (MODEL_TOO_LARGE), a config the graph disagrees with, and non-admin keys', async () => {
    const truncated = await post(a, `/v2/repository/models/${MODEL}/load`, loadBody(TRITON_CONFIG, { 'file:2/model.onnx': CNN.subarray(0, 5000) }));
    expect(truncated.status).toBe(422);
    expect(truncated.body).toMatchObject({ code: 'MODEL_INVALID', reason: 'ONNX_UNREADABLE' });

    const tooBig = await post(a, `/v2/repository/models/${MODEL}/load`, loadBody(TRITON_CONFIG, { 'file:2/model.onnx': Buffer.concat([CNN, Buffer.alloc(4096)]) }));
    expect(tooBig.status).toBe(413);
    expect(tooBig.body).toMatchObject({ code: 'MODEL_TOO_LARGE' });

    // A config naming an input the graph does not have.
    const renamed = TRITON_CONFIG.replace('"image"', '"pixels"');
    const mismatch = await post(a, `/v2/repository/models/${MODEL}/load`, loadBody(renamed, { 'file:2/model.onnx': CNN }));
    expect(mismatch.status).toBe(422);
    expect(mismatch.body).toMatchObject({ code: 'MODEL_INVALID', reason: 'CONFIG_MISMATCH' });

    const badConfig = await post(a, `/v2/repository/models/${MODEL}/load`, loadBody('{"backend": "pytorch"}', { 'file:2/model.onnx': CNN }));
    expect(badConfig.status).toBe(422);
    expect(badConfig.body).toMatchObject({ code: 'MODEL_INVALID', reason: 'CONFIG_INVALID' });

    const filesWithoutConfig = await post(a, `/v2/repository/models/${MODEL}/load`, loadBody(undefined, { 'file:2/model.onnx': CNN }));
    expect(filesWithoutConfig.status).toBe(400);
    const otherPath = await post(a, `/v2/repository/models/${MODEL}/load`, loadBody(TRITON_CONFIG, { 'file:../../etc/passwd': CNN }));
    expect(otherPath.status).toBe(400);

    const user = authHeaders(await createKey(['inference']));
    expect((await post(a, `/v2/repository/models/${MODEL}/unload`, '{}', user)).status).toBe(403);
    expect((await post(a, '/v2/repository/models/no-such-model/unload', '{}')).status).toBe(404);

    // Nothing of the above committed: version 1 still serves on all three, and no version 2 exists.
    for (const gw of [a, b, c]) {
      expect((await infer(gw)).status).toBe(200);
      expect((await gw.request('GET', `/v2/models/${MODEL}/versions/2/ready`, { headers: admin })).status).toBe(404);
    }
    expect(a.running && b.running && c.running).toBe(true);
  });

  it('the streamed PUT upload publishes a version fleet-wide, hashed while streaming; over the bound or unreadable it is refused', async () => {
    const route = `/v2/repository/models/${MODEL}/versions/5/model.onnx`;
    const put = (gw: ProductionGateway, body: Buffer, at = route) => gw.request<Record<string, unknown>>('PUT', at, { headers: { ...admin, 'content-type': 'application/octet-stream' }, body });
    const tooBig = await put(b, Buffer.concat([CNN, Buffer.alloc(4096)]));
    expect(tooBig.status).toBe(413);
    expect(tooBig.body).toMatchObject({ code: 'MODEL_TOO_LARGE' });
    const garbage = await put(b, randomBytes(2000));
    expect(garbage.status).toBe(422);
    expect(garbage.body).toMatchObject({ code: 'MODEL_INVALID', reason: 'ONNX_UNREADABLE' });
    expect((await b.request('PUT', route, { headers: { 'content-type': 'application/octet-stream' }, body: CNN })).status).toBe(401);

    const published = await put(b, CNN);
    expect(published.status).toBe(200);
    expect(published.body).toEqual({ name: MODEL, version: '5', digest: createHash('sha256').update(CNN).digest('hex'), size_bytes: CNN.length });
    expect((await b.request('GET', `/v2/models/${MODEL}/versions/5/ready`, { headers: admin })).status).toBe(200);
    await until('A to serve version 5', async () => (await a.request('GET', `/v2/models/${MODEL}/versions/5/ready`, { headers: admin })).status, { accept: (s) => s === 200 });
    // Version 1 still serves beside it.
    expect(await readyStatus(a)).toBe(200);
  });

  it('setModelTraffic splits versionless requests on every replica; a request naming a version gets it; every answer names its version', async () => {
    const split = (weights: string) =>
      a.graphql<{ setModelTraffic: { version: string; trafficPercent: number | null }[] }>(`mutation { setModelTraffic(model: "${MODEL}", weights: ${weights}) { version trafficPercent } }`, {}, admin);
    const bad = await split('[{version: "1", percent: 60}, {version: "5", percent: 30}]');
    expect(bad.body!.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'weights' });

    const loadsBefore = modelReadyLogs(b);
    const all5 = await split('[{version: "1", percent: 0}, {version: "5", percent: 100}]');
    expect(all5.body!.data!.setModelTraffic).toEqual([{ version: '1', trafficPercent: 0 }, { version: '5', trafficPercent: 100 }]);
    // B heard it over pg_notify: every versionless request there goes to 5, a request naming 1 still gets 1.
    await until('B to route versionless requests to version 5', async () => (await infer(b)).body?.model_version, { accept: (v) => v === '5' });
    const versions = await Promise.all(Array.from({ length: 20 }, () => infer(b)));
    expect(versions.map((r) => r.body!.model_version)).toEqual(Array(20).fill('5'));
    const named = await b.request<{ model_version: string }>('POST', `/v2/models/${MODEL}/versions/1/infer`, {
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], data: Array(784).fill(0) }] }),
    });
    expect(named.body!.model_version).toBe('1');
    // A traffic change moves no weights: nothing was reloaded.
    expect(modelReadyLogs(b)).toBe(loadsBefore);

    // 50/50 over 200 requests: each side within 6 standard deviations of 100 (the split is random per request).
    await split('[{version: "1", percent: 50}, {version: "5", percent: 50}]');
    await until('B to split', async () => (await infer(b)).body?.model_version, { accept: (v) => v === '1' });
    const spread = await Promise.all(Array.from({ length: 200 }, () => infer(b)));
    const ones = spread.filter((r) => r.body!.model_version === '1').length;
    console.log(`50/50 split over 200 versionless requests on B: ${ones} to version 1, ${200 - ones} to version 5`);
    expect(ones).toBeGreaterThan(58);
    expect(ones).toBeLessThan(142);

    // Clearing the split: the latest READY version serves again.
    await split('[]');
    await until('B to clear the split', async () => (await b.graphql<{ modelVersions: { trafficPercent: number | null }[] }>(`{ modelVersions(model: "${MODEL}") { trafficPercent } }`, {}, admin)).body?.data?.modelVersions, {
      accept: (v) => v !== undefined && v.every((x) => x.trafficPercent === null),
    });
  }, 120_000);
});
