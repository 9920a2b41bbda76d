/**
 * Private models per tenant (issue #23, item 5), through the production
 * build: two gateways (`node dist/main.js`, NODE_ENV=production) on a
 * database of their own. Tenant A's `models:manage` key publishes a model
 * under its own prefix (`<tenant id>.<name>`) through gateway A; A's key
 * infers it on both gateways. Tenant B's key asks every door about that name
 * before it exists and after: each answer (status and body, request ids
 * removed) is byte-identical, so nothing tells B the model exists. Quotas
 * (MODEL_TENANT_MAX_MODELS / _BYTES) answer MODEL_QUOTA_EXCEEDED.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ProductionGateway, productionEnv, REPO_ROOT, until } from '../harness';
import { authHeaders } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { freePort } from '../helpers/capture';
import { OipGrpcClient, rawInfer } from '../grpc/client';
import { applyMigrations } from '../../src/db/migrate';
import { Database } from '../../src/db/database';
import { KeyService } from '../../src/keys/key.service';
import { createLogger } from '../../src/log/logger';
import type { Scope } from '../../src/auth/principal';

const CNN = readFileSync(path.join(REPO_ROOT, 'models', 'fashion-cnn', '1', 'model.onnx'));
/** The same graph with a different ModelProto doc_string (field 6) appended: valid ONNX, another digest. */
const CNN_OTHER = Buffer.concat([CNN, Buffer.from([0x32, 0x03, 0x61, 0x62, 0x63])]);

const tritonConfig = (name: string): string =>
  JSON.stringify({
    name,
    backend: 'onnxruntime',
    max_batch_size: 64,
    input: [{ name: 'image', data_type: 'TYPE_FP32', dims: [1, 28, 28] }],
    output: [{ name: 'probabilities', data_type: 'TYPE_FP32', dims: [10] }],
  });

let a: ProductionGateway;
let b: ProductionGateway;
let grpc: OipGrpcClient;
let admin: Record<string, string>;
let tenantA: { id: string; key: string; headers: Record<string, string> };
let tenantB: { id: string; key: string; headers: Record<string, string> };
const dbName = `${testEnv.databaseName}_tenancy`;
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

async function createTenantKey(scopes: Scope[]): Promise<{ id: string; key: string; headers: Record<string, string> }> {
  const caller = { principal: null, actor: 'test' };
  const tenant = await keys.createTenant(caller, { name: `tenant-${randomBytes(5).toString('hex')}` });
  const key = (await keys.createApiKey(caller, { tenant: tenant.id, name: 'tenancy test', scopes, allowedModels: [], expiresAt: null })).plaintext;
  return { id: tenant.id, key, headers: authHeaders(key) };
}

function replicaEnv(extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...productionEnv({ databaseUrl: dbUrl }),
    MIGRATE_ON_START: 'false',
    MODEL_REPOSITORY: mkdtempSync(path.join(os.tmpdir(), 'mg-seed-')),
    INFERENCE_WORKERS: '1',
    MODEL_RECONCILE_INTERVAL_MS: '600000',
    MODEL_UPLOAD_MAX_BYTES: String(CNN.length + 1024),
    MODEL_TENANT_MAX_MODELS: '2',
    MODEL_TENANT_MAX_BYTES: String(Math.floor(CNN.length * 1.5)),
    ...extra,
  };
}

function loadBody(name: string, file: Buffer): string {
  return JSON.stringify({ parameters: { config: tritonConfig(name), 'file:1/model.onnx': file.toString('base64') } });
}

const INFER_BODY = JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], data: Array.from({ length: 784 }, (_, i) => (i % 5) / 5) }] });

/** A body without the fields that name one request (request ids): what must not differ between two answers. */
function withoutRequestIds(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutRequestIds);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).filter(([k]) => !/^request_?id$/i.test(k)).map(([k, v]) => [k, withoutRequestIds(v)]));
  }
  return value;
}

/** Every door's answer to tenant B about `name`, request ids removed. */
async function answersToB(name: string): Promise<Record<string, unknown>> {
  const h = tenantB.headers;
  const json = { ...h, 'content-type': 'application/json' };
  const rest = async (method: 'GET' | 'POST' | 'PUT', route: string, body?: string | Buffer, headers: Record<string, string> = json) => {
    const answer = await a.request<unknown>(method, route, { headers, ...(body !== undefined ? { body } : {}) });
    return { status: answer.status, body: withoutRequestIds(answer.body) };
  };
  const gql = async (query: string) => {
    const answer = await a.graphql<unknown>(query, {}, h);
    return { status: answer.status, body: withoutRequestIds(answer.body) };
  };
  const rpc = async (method: string, request: unknown) => {
    const answer = await grpc.call(method, request, tenantB.key);
    return { code: answer.status.code, details: answer.status.details, response: withoutRequestIds(answer.response) };
  };
  const m = JSON.stringify(name);
  return {
    metadata: await rest('GET', `/v2/models/${name}`),
    metadataVersion: await rest('GET', `/v2/models/${name}/versions/1`),
    ready: await rest('GET', `/v2/models/${name}/ready`),
    readyVersion: await rest('GET', `/v2/models/${name}/versions/1/ready`),
    config: await rest('GET', `/v2/models/${name}/config`),
    infer: await rest('POST', `/v2/models/${name}/infer`, INFER_BODY),
    inferVersion: await rest('POST', `/v2/models/${name}/versions/1/infer`, INFER_BODY),
    index: await rest('POST', '/v2/repository/index', '{}'),
    stats: await rest('GET', `/v2/models/${name}/stats`),
    // The name clash on publish: B's publish under A's prefix answers the same whether A holds the name or not.
    publish: await rest('POST', `/v2/repository/models/${name}/load`, loadBody(name, CNN)),
    load: await rest('POST', `/v2/repository/models/${name}/load`, '{}'),
    unload: await rest('POST', `/v2/repository/models/${name}/unload`, '{}'),
    upload: await rest('PUT', `/v2/repository/models/${name}/versions/1/model.onnx`, CNN, { ...h, 'content-type': 'application/octet-stream' }),
    gqlModel: await gql(`{ model(name: ${m}) { name status } }`),
    gqlModels: await gql('{ models { name } }'),
    gqlInfer: await gql(`mutation { infer(input: {model: ${m}, inputs: [{name: "image", datatype: FP32, shape: [1, 1, 28, 28], data: [${Array(784).fill(0).join(',')}]}]}) { modelName } }`),
    gqlLoad: await gql(`mutation { loadModel(name: ${m}) { name } }`),
    gqlUnload: await gql(`mutation { unloadModel(name: ${m}) { name } }`),
    gqlReload: await gql(`mutation { reloadModel(name: ${m}) { name } }`),
    gqlTraffic: await gql(`mutation { setModelTraffic(model: ${m}, weights: []) { version } }`),
    gqlVersions: await gql(`{ modelVersions(model: ${m}) { version } }`),
    grpcMetadata: await rpc('ModelMetadata', { name, version: '' }),
    grpcReady: await rpc('ModelReady', { name, version: '' }),
    grpcInfer: await rpc('ModelInfer', rawInfer([0], name)),
    grpcIndex: await rpc('RepositoryIndex', {}),
  };
}

beforeAll(async () => {
  await adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
  await adminQuery(`CREATE DATABASE "${dbName}"`);
  await applyMigrations({ kind: 'postgres', url: dbUrl });
  const log = createLogger({ level: 'silent', pretty: false });
  keyDb = new Database({ database: { mode: 'postgres', url: dbUrl, poolSize: 2 }, databaseConnectRetryMaxMs: 1000, migrateOnStart: false }, log);
  await keyDb.start();
  keys = new KeyService(keyDb, { invalidate: async () => undefined }, log, 'test');
  admin = (await createTenantKey(['admin'])).headers;
  tenantA = await createTenantKey(['inference', 'models:manage']);
  tenantB = await createTenantKey(['inference', 'models:manage']);
  const grpcPort = await freePort();
  [a, b] = await Promise.all([ProductionGateway.start(replicaEnv({ GRPC_PORT: String(grpcPort) }), { name: 'A' }), ProductionGateway.start(replicaEnv(), { name: 'B' })]);
  grpc = new OipGrpcClient(`127.0.0.1:${grpcPort}`);
}, 120_000);

afterAll(async () => {
  grpc?.close();
  await Promise.all([a?.stop(), b?.stop()]);
  await keyDb?.close();
  await adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
});

describe('a tenant\'s private model', () => {
  it('is published and served for its tenant, and every other tenant gets exactly the unknown-model answer on every door', async () => {
    const name = `${tenantA.id}.secret-${randomBytes(3).toString('hex')}`;
    const before = await answersToB(name);
    // The answers are the unknown-model ones (a test that can fail: not a blanket 403).
    expect(before['metadata']).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
    expect(before['infer']).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
    expect(before['publish']).toMatchObject({ status: 404, body: { code: 'NOT_FOUND' } });
    for (const door of ['gqlModel', 'gqlInfer', 'gqlLoad', 'gqlTraffic', 'gqlVersions']) {
      expect({ door, code: (before[door] as { body: { errors?: { extensions: { code: string } }[] } }).body.errors?.[0]?.extensions.code }).toEqual({ door, code: 'NOT_FOUND' });
    }
    expect(before['grpcInfer']).toMatchObject({ code: 5 });
    expect(before['grpcMetadata']).toMatchObject({ code: 5 });

    const published = await a.request('POST', `/v2/repository/models/${name}/load`, { headers: { ...tenantA.headers, 'content-type': 'application/json' }, body: loadBody(name, CNN) });
    expect(published.status).toBe(200);
    const inferA = (gw: ProductionGateway) => gw.request<{ model_name: string }>('POST', `/v2/models/${name}/infer`, { headers: { ...tenantA.headers, 'content-type': 'application/json' }, body: INFER_BODY });
    expect((await inferA(a)).status).toBe(200);
    await until('B to serve A\'s private model to A', async () => (await inferA(b)).status, { accept: (s) => s === 200 });
    // Its owner and admin see it in the index; the catalog records the owner.
    for (const headers of [tenantA.headers, admin]) {
      const index = await a.request<{ name: string }[]>('POST', '/v2/repository/index', { headers: { ...headers, 'content-type': 'application/json' }, body: '{}' });
      expect(index.body!.map((m) => m.name)).toContain(name);
    }
    const client = new pg.Client({ connectionString: dbUrl });
    await client.connect();
    const owner = await client.query<{ ownerTenantId: string }>('SELECT "ownerTenantId" FROM "ModelCatalogVersion" WHERE model = $1', [name]);
    await client.end();
    expect(owner.rows).toEqual([{ ownerTenantId: tenantA.id }]);

    const after = await answersToB(name);
    expect(after).toEqual(before);

    // And the read and run doors answer as for a public name that never existed (the registry's own
    // unknown-model path), the name aside. The management doors differ by design, not by existence:
    // a public name needs admin (FORBIDDEN), any name under another tenant's prefix is unknown.
    const ghost = `never-${randomBytes(3).toString('hex')}`;
    const unknown = await answersToB(ghost);
    const reads = ['metadata', 'metadataVersion', 'ready', 'readyVersion', 'config', 'infer', 'inferVersion', 'stats', 'index', 'gqlModel', 'gqlModels', 'gqlInfer', 'grpcMetadata', 'grpcReady', 'grpcInfer', 'grpcIndex'];
    const named = (answers: Record<string, unknown>, model: string) => Object.fromEntries(reads.map((door) => [door, JSON.stringify(answers[door]).replaceAll(model, '<model>')]));
    expect(named(after, name)).toEqual(named(unknown, ghost));
  }, 120_000);

  it('a models:manage key may not publish a public name; an inference-only key may not publish at all', async () => {
    const publicName = `public-${randomBytes(3).toString('hex')}`;
    const refused = await a.request<Record<string, unknown>>('POST', `/v2/repository/models/${publicName}/load`, { headers: { ...tenantA.headers, 'content-type': 'application/json' }, body: loadBody(publicName, CNN) });
    expect(refused.status).toBe(403);
    expect(refused.body).toMatchObject({ code: 'FORBIDDEN', requiredScopes: ['admin'] });
    const user = await createTenantKey(['inference']);
    const own = `${user.id}.mine`;
    const unscoped = await a.request<Record<string, unknown>>('POST', `/v2/repository/models/${own}/load`, { headers: { ...user.headers, 'content-type': 'application/json' }, body: loadBody(own, CNN) });
    expect(unscoped.status).toBe(403);
    expect(unscoped.body).toMatchObject({ code: 'FORBIDDEN', requiredScopes: ['models:manage'] });
  });

  it('quotas: bytes of distinct weights over MODEL_TENANT_MAX_BYTES and models over MODEL_TENANT_MAX_MODELS answer MODEL_QUOTA_EXCEEDED; unloading frees quota', async () => {
    const tenant = await createTenantKey(['inference', 'models:manage']);
    const publish = (suffix: string, file: Buffer, headers = tenant.headers) =>
      a.request<Record<string, unknown>>('POST', `/v2/repository/models/${tenant.id}.${suffix}/load`, { headers: { ...headers, 'content-type': 'application/json' }, body: loadBody(`${tenant.id}.${suffix}`, file) });
    expect((await publish('one', CNN)).status).toBe(200);
    // Other weights: 2 × the CNN's bytes, over 1.5 ×.
    const bytes = await publish('two', CNN_OTHER);
    expect(bytes.status).toBe(403);
    expect(bytes.body).toMatchObject({ code: 'MODEL_QUOTA_EXCEEDED', quota: 'MODEL_TENANT_MAX_BYTES' });
    // The same weights are held once: a second model fits the bytes (and is the second of two models).
    expect((await publish('two', CNN)).status).toBe(200);
    // An admin publishing for the tenant counts against the same quota.
    const models = await publish('three', CNN, admin);
    expect(models.status).toBe(403);
    expect(models.body).toMatchObject({ code: 'MODEL_QUOTA_EXCEEDED', quota: 'MODEL_TENANT_MAX_MODELS', limit: 2 });
    // Nothing of the refused publishes committed.
    expect((await a.request('GET', `/v2/models/${tenant.id}.three/ready`, { headers: tenant.headers })).status).toBe(404);
    expect((await a.request('POST', `/v2/repository/models/${tenant.id}.two/unload`, { headers: { ...tenant.headers, 'content-type': 'application/json' }, body: '{}' })).status).toBe(200);
    expect((await publish('three', CNN)).status).toBe(200);
  }, 120_000);
});
