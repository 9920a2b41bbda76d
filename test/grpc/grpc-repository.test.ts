/**
 * Triton repository compatibility (issue #24): a model folder with only
 * Triton's config.pbtxt is served as it says (max_batch_size 8, not the
 * derived 64), with each field modelgate does not honour named on its
 * config; and gRPC RepositoryModelLoad/Unload change the fleet-wide model
 * catalog as REST's load/unload do (admin, or models:manage for its own tenant's private names). On the embedded
 * database (PGlite), so the catalog is this test's own.
 */
import { cpSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { status } from '@grpc/grpc-js';
import { REPO_ROOT, startGateway, type TestGateway } from '../helpers/gateway';
import { freePort } from '../helpers/capture';
import { metadataValue, OipGrpcClient } from './client';

const LSTM_DIR = path.join(REPO_ROOT, 'models', 'fashion-lstm');
const MODEL = 'pbtxt-lstm';
const PBTXT = `# Triton's form: no config.json beside it
name: "${MODEL}"
platform: "onnxruntime_onnx"
max_batch_size: 8
input [ { name: "image", data_type: TYPE_FP32, dims: [ 1, 28, 28 ] } ]
output [ { name: "probabilities", data_type: TYPE_FP32, dims: [ 10 ] } ]
dynamic_batching { max_queue_delay_microseconds: 1000 preferred_batch_size: [ 4, 8 ] }
instance_group [ { count: 2, kind: KIND_CPU } ]
`;

let gw: TestGateway;
let client: OipGrpcClient;
let adminKey: string;
let inferenceKey: string;
let managerKey: string;
let managerTenant: string;

beforeAll(async () => {
  const repo = mkdtempSync(path.join(os.tmpdir(), 'mg-pbtxt-repo-'));
  mkdirSync(path.join(repo, MODEL, '1'), { recursive: true });
  writeFileSync(path.join(repo, MODEL, 'config.pbtxt'), PBTXT);
  cpSync(path.join(LSTM_DIR, '1', 'model.onnx'), path.join(repo, MODEL, '1', 'model.onnx'));
  // Both files: config.json wins, with a warning.
  mkdirSync(path.join(repo, 'both', '1'), { recursive: true });
  writeFileSync(path.join(repo, 'both', 'config.json'), readFileSync(path.join(LSTM_DIR, 'config.json'), 'utf8').replace('"fashion-lstm"', '"both"'));
  writeFileSync(path.join(repo, 'both', 'config.pbtxt'), PBTXT.replace(`"${MODEL}"`, '"both"'));
  cpSync(path.join(LSTM_DIR, '1', 'model.onnx'), path.join(repo, 'both', '1', 'model.onnx'));
  const grpcPort = await freePort();
  gw = await startGateway({ MODEL_REPOSITORY: repo, INFERENCE_WORKERS: '1', GRPC_PORT: String(grpcPort) }, { mode: 'embedded' });
  client = new OipGrpcClient(`127.0.0.1:${grpcPort}`);
  const caller = { principal: null, actor: 'test' };
  const keys = gw.gateway.services.keys;
  const tenant = await keys.createTenant(caller, { name: 'pbtxt-repo' });
  adminKey = (await keys.createApiKey(caller, { tenant: tenant.id, name: 'admin', scopes: ['admin'], allowedModels: [], expiresAt: null })).plaintext;
  inferenceKey = (await keys.createApiKey(caller, { tenant: tenant.id, name: 'inference', scopes: ['inference'], allowedModels: [], expiresAt: null })).plaintext;
  managerKey = (await keys.createApiKey(caller, { tenant: tenant.id, name: 'manager', scopes: ['inference', 'models:manage'], allowedModels: [], expiresAt: null })).plaintext;
  managerTenant = tenant.id;
}, 120_000);

afterAll(async () => {
  client?.close();
  await gw?.close();
});

const restConfig = async (model: string, version?: number) =>
  (await fetch(`${gw.url}/v2/models/${model}${version ? `/versions/${version}` : ''}/config`, { headers: { authorization: `Bearer ${adminKey}` } })).json() as Promise<{
    max_batch_size: number;
    dynamic_batching?: { preferred_batch_size: number[] };
    parameters: Record<string, { string_value: string }>;
  }>;
const restReady = async (model: string, version: number) => (await fetch(`${gw.url}/v2/models/${model}/versions/${version}/ready`, { headers: { authorization: `Bearer ${adminKey}` } })).status;

describe('a model folder with only config.pbtxt', () => {
  it('is served with its max_batch_size 8 (not the derived 64), and the field it cannot honour is on its config and in the log', async () => {
    const rest = await restConfig(MODEL);
    expect(rest.max_batch_size).toBe(8);
    expect(rest.dynamic_batching?.preferred_batch_size).toEqual([4, 8]);
    expect(rest.parameters['configSource']).toEqual({ string_value: 'CONFIG' });
    expect(rest.parameters['configWarnings']).toEqual({ string_value: 'instance_group: not honoured by modelgate (ignored)' });
    const grpc = await client.call<{ config: { max_batch_size: number; parameters: Record<string, { string_value: string }> } }>('ModelConfig', { name: MODEL }, adminKey);
    expect(grpc.response?.config.max_batch_size).toBe(8);
    expect(grpc.response?.config.parameters['configWarnings']?.string_value).toBe('instance_group: not honoured by modelgate (ignored)');
    expect(gw.logs.text).toMatch(/instance_group: not honoured by modelgate/);
  });

  it('loses to a config.json beside it, with a warning', async () => {
    const rest = await restConfig('both');
    expect(rest.max_batch_size).toBe(64);
    expect(rest.parameters['configWarnings']).toEqual({ string_value: 'config.pbtxt: not read (config.json wins where both exist)' });
  });
});

describe('gRPC RepositoryModelLoad / RepositoryModelUnload', () => {
  it('refuses a call without a key and a key without the admin scope', async () => {
    const anonymous = await client.call('RepositoryModelUnload', { model_name: MODEL }, null);
    expect(anonymous.status.code).toBe(status.UNAUTHENTICATED);
    const denied = await client.call('RepositoryModelUnload', { model_name: MODEL }, inferenceKey);
    expect([denied.status.code, metadataValue(denied.status, 'modelgate-code')]).toEqual([status.PERMISSION_DENIED, 'FORBIDDEN']);
    // models:manage, as over REST: a public name needs admin; another tenant's private name reads as unknown.
    const publicName = await client.call('RepositoryModelUnload', { model_name: MODEL }, managerKey);
    expect([publicName.status.code, metadataValue(publicName.status, 'modelgate-code')]).toEqual([status.PERMISSION_DENIED, 'FORBIDDEN']);
    const otherTenant = await client.call('RepositoryModelUnload', { model_name: `00000000-0000-4000-8000-000000000000.${MODEL}` }, managerKey);
    expect([otherTenant.status.code, metadataValue(otherTenant.status, 'modelgate-code')]).toEqual([status.NOT_FOUND, 'NOT_FOUND']);
    expect(managerTenant).not.toBe('00000000-0000-4000-8000-000000000000');
    expect(await restReady(MODEL, 1)).toBe(200);
  });

  it('unloads and loads back through the catalog', async () => {
    const unloaded = await client.call('RepositoryModelUnload', { model_name: MODEL }, adminKey);
    expect(unloaded.status.code).toBe(status.OK);
    expect(await restReady(MODEL, 1)).toBe(503);
    const index = await client.call<{ models: { name: string; version: string; state: string }[] }>('RepositoryIndex', {}, adminKey);
    expect(index.response?.models.find((m) => m.name === MODEL)?.state).toBe('UNLOADED');
    const loaded = await client.call('RepositoryModelLoad', { model_name: MODEL }, adminKey);
    expect(loaded.status.code).toBe(status.OK);
    expect(await restReady(MODEL, 1)).toBe(200);
  });

  it("publishes a version with Triton's config (string_param) and file:<v>/model.onnx (bytes_param), unloading the others", async () => {
    const config = JSON.stringify({
      backend: 'onnxruntime',
      max_batch_size: 4,
      input: [{ name: 'image', data_type: 'TYPE_FP32', dims: [1, 28, 28] }],
      output: [{ name: 'probabilities', data_type: 'TYPE_FP32', dims: [10] }],
    });
    const loaded = await client.call(
      'RepositoryModelLoad',
      { model_name: MODEL, parameters: { config: { string_param: config }, 'file:2/model.onnx': { bytes_param: readFileSync(path.join(LSTM_DIR, '1', 'model.onnx')) } } },
      adminKey,
    );
    expect([loaded.status.code, loaded.status.details]).toEqual([status.OK, 'OK']);
    expect(await restReady(MODEL, 2)).toBe(200);
    expect(await restReady(MODEL, 1)).toBe(503);
    expect((await restConfig(MODEL, 2)).max_batch_size).toBe(4);
  });

  it('answers INVALID_ARGUMENT for a file parameter that is not file:<v>/model.onnx, a config that is not a string and a config that does not parse', async () => {
    const badPath = await client.call('RepositoryModelLoad', { model_name: MODEL, parameters: { 'file:1/../model.onnx': { bytes_param: Buffer.from('x') } } }, adminKey);
    expect([badPath.status.code, metadataValue(badPath.status, 'modelgate-code')]).toEqual([status.INVALID_ARGUMENT, 'BAD_USER_INPUT']);
    const boolConfig = await client.call('RepositoryModelLoad', { model_name: MODEL, parameters: { config: { bool_param: true } } }, adminKey);
    expect(boolConfig.status.code).toBe(status.INVALID_ARGUMENT);
    const badConfig = await client.call('RepositoryModelLoad', { model_name: MODEL, parameters: { config: { string_param: '{nope' } } }, adminKey);
    expect(badConfig.status.code).toBe(status.INVALID_ARGUMENT);
    expect(badConfig.status.details).toMatch(/not valid JSON/);
    // Nothing changed: version 2 still serves.
    expect(await restReady(MODEL, 2)).toBe(200);
  });
});
