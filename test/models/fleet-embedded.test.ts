/**
 * The model catalog on the embedded database (PGlite, no DATABASE_URL): the
 * same transactions, advisory lock and chunked weights as on PostgreSQL; no
 * LISTEN there, so the accepting call's own reconcile applies the change.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT, graphql, startGateway, type TestGateway } from '../helpers/gateway';

const LSTM_DIR = path.join(REPO_ROOT, 'models', 'fashion-lstm');
let gw: TestGateway;
let admin: Record<string, string>;

beforeAll(async () => {
  const repo = mkdtempSync(path.join(os.tmpdir(), 'mg-seed-embedded-'));
  mkdirSync(path.join(repo, 'fashion-lstm', '1'), { recursive: true });
  cpSync(path.join(LSTM_DIR, 'config.json'), path.join(repo, 'fashion-lstm', 'config.json'));
  cpSync(path.join(LSTM_DIR, '1', 'model.onnx'), path.join(repo, 'fashion-lstm', '1', 'model.onnx'));
  gw = await startGateway({ MODEL_REPOSITORY: repo, INFERENCE_WORKERS: '1' }, { mode: 'embedded' });
  const caller = { principal: null, actor: 'test' };
  const keys = gw.gateway.services.keys;
  const tenant = await keys.createTenant(caller, { name: 'embedded-models' });
  admin = { authorization: `Bearer ${(await keys.createApiKey(caller, { tenant: tenant.id, name: 'admin', scopes: ['admin'], allowedModels: [], expiresAt: null })).plaintext}` };
}, 120_000);

afterAll(async () => {
  await gw?.close();
});

const ready = async (route: string): Promise<number> => (await fetch(`${gw.url}${route}`, { headers: admin })).status;

it('publishes a version by streamed upload, unloads and loads through the catalog on PGlite', async () => {
  const put = await fetch(`${gw.url}/v2/repository/models/fashion-lstm/versions/2/model.onnx`, {
    method: 'PUT',
    headers: { ...admin, 'content-type': 'application/octet-stream' },
    body: readFileSync(path.join(LSTM_DIR, '1', 'model.onnx')),
  });
  expect(put.status).toBe(200);
  expect(await ready('/v2/models/fashion-lstm/versions/2/ready')).toBe(200);

  const unloaded = await graphql<{ unloadModel: { status: string } }>(gw.url, 'mutation { unloadModel(name: "fashion-lstm", version: "1") { status } }', {}, admin);
  expect(unloaded.body.data!.unloadModel.status).toBe('UNLOADED');
  expect(await ready('/v2/models/fashion-lstm/versions/1/ready')).toBe(503);
  const versions = await graphql<{ modelVersions: { version: string; source: string; desiredState: string; replicaStatus: string }[] }>(
    gw.url,
    '{ modelVersions(model: "fashion-lstm") { version source desiredState replicaStatus } }',
    {},
    admin,
  );
  expect(versions.body.data!.modelVersions).toEqual([
    { version: '1', source: 'SEED', desiredState: 'UNLOADED', replicaStatus: 'UNLOADED' },
    { version: '2', source: 'CATALOG', desiredState: 'LOADED', replicaStatus: 'READY' },
  ]);
  expect((await graphql<{ loadModel: { status: string } }>(gw.url, 'mutation { loadModel(name: "fashion-lstm", version: "1") { status } }', {}, admin)).body.data!.loadModel.status).toBe('READY');
});
