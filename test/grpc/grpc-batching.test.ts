/**
 * The three doors share one batcher, through the production build: a gRPC
 * ModelInfer, an OIP REST binary request and a GraphQL infer, sent at once,
 * run as ONE execution of batch size 3, and each answer holds the same
 * probabilities as its item run alone.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProductionGateway, productionEnv, REPO_ROOT, STARTUP_TEST_TIMEOUT_MS } from '../harness';
import { freePort } from '../helpers/capture';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { decodeFloats, imageTensor } from '../inference/fixtures';
import { binaryInfer, oip } from '../oip/helpers';
import { OipGrpcClient, rawInfer } from './client';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const MODEL = 'triples';
const STATS = `{ model(name: "${MODEL}") { stats { requests executions inferences } } }`;
const INFER = 'mutation($input: InferInput!) { infer(input: $input) { batchSize outputs { name dataBase64 } } }';

let repo: string;
let gateway: ProductionGateway;
let client: OipGrpcClient;

beforeAll(async () => {
  repo = mkdtempSync(path.join(os.tmpdir(), 'modelgate-grpc-batch-'));
  cpSync(path.join(REPO_ROOT, 'models', 'fashion-cnn'), path.join(repo, MODEL), { recursive: true });
  const config = JSON.parse(readFileSync(path.join(repo, MODEL, 'config.json'), 'utf8')) as Record<string, unknown>;
  // A batch goes only at 3 items (or after 10 s), even while the model is idle (delay_when_idle):
  // three single-item requests can only be answered by one execution, or by the 10 s delay.
  writeFileSync(
    path.join(repo, MODEL, 'config.json'),
    JSON.stringify({ ...config, name: MODEL, dynamic_batching: { max_queue_delay_microseconds: 10_000_000, preferred_batch_size: [3], delay_when_idle: true } }),
  );
  const grpcPort = await freePort();
  gateway = await ProductionGateway.start({
    ...productionEnv(),
    MODEL_REPOSITORY: repo,
    GRPC_PORT: String(grpcPort),
    INFERENCE_WORKERS: '1',
    INFERENCE_MAX_TIMEOUT_MS: '60000',
    INFERENCE_DEFAULT_TIMEOUT_MS: '60000',
  });
  client = new OipGrpcClient(`127.0.0.1:${grpcPort}`);
});

afterAll(async () => {
  client?.close();
  await gateway?.stop();
  rmSync(repo, { recursive: true, force: true });
  await closeTestKeys();
});

it('runs one gRPC, one REST binary and one GraphQL request in one execution of batch size 3', async () => {
  const { key } = await createTestKey({ scopes: ['admin'] });
  const headers = authHeaders(key);
  const stats = async () => {
    const res = await gateway.graphql<{ model: { stats: { requests: number; executions: number; inferences: number } } }>(STATS, {}, headers);
    return res.body!.data!.model.stats;
  };
  const before = await stats();
  const bin = binaryInfer([5], { binaryOutput: true });
  const [grpcAnswer, rest, gql] = await Promise.all([
    client.call<{ raw_output_contents: Buffer[] }>('ModelInfer', rawInfer([4], MODEL), key),
    oip(`${gateway.url}/v2/models/${MODEL}/infer`, { headers: { ...headers, ...bin.headers }, body: bin.body }),
    gateway.graphql<{ infer: { batchSize: number; outputs: { name: string; dataBase64: string }[] } }>(INFER, { input: { model: MODEL, inputs: [imageTensor([6])] } }, headers),
  ]);
  expect({ grpc: grpcAnswer.status.code, rest: rest.status, graphql: gql.body?.errors }).toEqual({ grpc: 0, rest: 200, graphql: undefined });
  expect(gql.body!.data!.infer.batchSize).toBe(3);
  const after = await stats();
  expect({ requests: after.requests - before.requests, executions: after.executions - before.executions, inferences: after.inferences - before.inferences }).toEqual({
    requests: 3,
    executions: 1,
    inferences: 3,
  });

  // Batched together, each door's answer is its own item's: the same bytes as that image run with two others of its own.
  const floats = (b: Buffer) => Array.from(new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength)));
  const alone = await gateway.graphql<{ infer: { outputs: { dataBase64: string }[] } }>(INFER, { input: { model: MODEL, inputs: [imageTensor([4, 5, 6])] } }, headers);
  const expected = decodeFloats(alone.body!.data!.infer.outputs[0]!.dataBase64);
  expect(floats(grpcAnswer.response!.raw_output_contents[0]!)).toEqual(expected.slice(0, 10));
  expect(floats(rest.binary)).toEqual(expected.slice(10, 20));
  expect(decodeFloats(gql.body!.data!.infer.outputs[0]!.dataBase64)).toEqual(expected.slice(20, 30));
});
