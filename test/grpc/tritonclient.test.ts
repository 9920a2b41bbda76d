/**
 * Triton's own Python gRPC client (tritonclient.grpc, vendored unchanged in
 * tritonclient-src/) against the production build, with a tenant key added
 * by a client plugin. Its stubs are generated here, in a temporary
 * directory, from the same proto/triton files the gateway serves, as the
 * client's build_wheel.py does (Debian's protobuf-compiler,
 * protobuf-compiler-grpc, python3-grpcio, python3-protobuf, python3-numpy;
 * .ci/run installs them).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProductionGateway, productionEnv } from '../harness';
import { freePort } from '../helpers/capture';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { imageFloats } from '../inference/fixtures';
import { binaryInfer, oip } from '../oip/helpers';

const PROTO_DIR = path.resolve(__dirname, '..', '..', 'proto', 'triton');
const PYTHON = '/usr/bin/python3';

/** A PYTHONPATH directory holding tritonclient with its generated gRPC stubs. */
function buildClient(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-tritonclient-'));
  cpSync(path.join(__dirname, 'tritonclient-src', 'tritonclient'), path.join(dir, 'tritonclient'), { recursive: true });
  const gen = path.join(dir, 'gen');
  cpSync(PROTO_DIR, gen, { recursive: true });
  execFileSync('protoc', ['-I.', '--python_out=.', '--grpc_out=.', '--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin', 'grpc_service.proto', 'model_config.proto'], { cwd: gen });
  const target = path.join(dir, 'tritonclient', 'grpc');
  const rename: Record<string, string> = { 'grpc_service_pb2.py': 'service_pb2.py', 'grpc_service_pb2_grpc.py': 'service_pb2_grpc.py', 'model_config_pb2.py': 'model_config_pb2.py' };
  for (const file of readdirSync(gen).filter((f) => f in rename)) {
    const text = readFileSync(path.join(gen, file), 'utf8')
      .replace(/^import grpc_service_pb2 as/gm, 'from tritonclient.grpc import service_pb2 as')
      .replace(/^import (\w+)_pb2 as/gm, 'from tritonclient.grpc import $1_pb2 as');
    writeFileSync(path.join(target, rename[file]!), text);
  }
  return dir;
}

interface Seen {
  live: boolean;
  ready: boolean;
  server_name: string;
  anonymous_infer: string;
  model_ready: boolean;
  metadata_inputs: { name: string; datatype: string; shape: string[] }[];
  config_max_batch_size: number;
  index: string[];
  unknown_model: string;
  infer_hex: string;
  infer_shape: number[];
  async_error: string | null;
  async_hex: string | null;
  stream_ok: string[];
  stream_errors: string[];
  stats_names: string[];
  all_stats_names: string[];
  tenant_stats: string;
  bytes_metadata_inputs: { name: string; datatype: string; shape: string[] }[];
  bytes_labels: string[];
  bytes_language_shape: number[];
  bytes_probabilities_hex: string;
}

let gateway: ProductionGateway;
let clientDir: string;
let grpcPort: number;

beforeAll(async () => {
  clientDir = buildClient();
  grpcPort = await freePort();
  gateway = await ProductionGateway.start({ ...productionEnv(), GRPC_PORT: String(grpcPort) });
}, 60_000);

afterAll(async () => {
  await gateway?.stop();
  await closeTestKeys();
  rmSync(clientDir, { recursive: true, force: true });
});

it('runs tritonclient.grpc unchanged: metadata, config, index, stats, infer, async_infer, a stream and a BYTES tensor from np.object_, equal to REST bit for bit', async () => {
  const { key } = await createTestKey({ scopes: ['inference'], allowedModels: ['fashion-cnn'] });
  const admin = await createTestKey({ scopes: ['admin'] });
  const wordKey = await createTestKey({ scopes: ['inference'], allowedModels: ['word-language'] });
  const words = ['maison', 'gezellig', 'größenwahn', '漢字🦋', ''];
  const images = [0, 1, 2, 3];
  const floats = imageFloats(images);
  const run = spawnSync(PYTHON, [path.join(__dirname, 'tritonclient_check.py')], {
    env: { PATH: process.env['PATH'] ?? '', PYTHONPATH: clientDir, GRPC_URL: `127.0.0.1:${grpcPort}`, KEY: key, ADMIN_KEY: admin.key, WORD_KEY: wordKey.key, WORDS: JSON.stringify(words), IMAGES: Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength).toString('hex') },
    encoding: 'utf8',
    timeout: 60_000,
  });
  if (run.status !== 0) throw new Error(`tritonclient_check.py exited ${run.status}:\n${run.stderr}`);
  const seen = JSON.parse(run.stdout) as Seen;

  expect(seen).toMatchObject({ live: true, ready: true, server_name: 'modelgate', model_ready: true, config_max_batch_size: 64, index: ['fashion-cnn'], stats_names: ['fashion-cnn'], tenant_stats: 'StatusCode.PERMISSION_DENIED' });
  // An admin key's statistics with no model name cover every served model.
  expect(seen.all_stats_names).toEqual(expect.arrayContaining(['fashion-cnn', 'fashion-lstm']));
  expect(seen.anonymous_infer).toBe('StatusCode.UNAUTHENTICATED');
  // The key's allowlist names fashion-cnn only: another model is refused before it is looked up.
  expect(seen.unknown_model).toBe('StatusCode.PERMISSION_DENIED');
  expect(seen.metadata_inputs).toEqual([{ name: 'image', datatype: 'FP32', shape: ['-1', '1', '28', '28'] }]);
  expect(seen.infer_shape).toEqual([4, 10]);

  const { body, headers } = binaryInfer(images, { binaryOutput: true });
  const rest = await oip(`${gateway.url}/v2/models/fashion-cnn/infer`, { body, headers: { ...headers, ...authHeaders(key) } });
  expect(rest.status).toBe(200);
  expect(seen.infer_hex).toBe(rest.binary.toString('hex'));
  expect(seen.async_error).toBeNull();
  expect(seen.async_hex).toBe(seen.infer_hex);
  expect(seen.stream_ok).toEqual(['stream-0', 'stream-1', 'stream-2']);
  expect(seen.stream_errors).toHaveLength(1);
  expect(seen.stream_errors[0]).toMatch(/^FORBIDDEN: This API key may not use model "no-such-model"/);

  // BYTES from an np.object_ array, unchanged client: the same answer as REST JSON strings, bit for bit.
  expect(seen.bytes_metadata_inputs).toEqual([{ name: 'text', datatype: 'BYTES', shape: ['-1', '1'] }]);
  const restWords = await oip(`${gateway.url}/v2/models/word-language/infer`, {
    headers: { 'content-type': 'application/json', ...authHeaders(wordKey.key) },
    body: JSON.stringify({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [words.length, 1], data: words }] }),
  });
  expect(restWords.status).toBe(200);
  const restOutputs = restWords.json['outputs'] as { name: string; data: unknown[] }[];
  expect(seen.bytes_labels).toEqual(restOutputs.find((o) => o.name === 'language')!.data);
  expect(seen.bytes_language_shape).toEqual([words.length, 1]);
  expect(seen.bytes_probabilities_hex).toBe(Buffer.from(Float32Array.from(restOutputs.find((o) => o.name === 'probabilities')!.data as number[]).buffer).toString('hex'));
}, 90_000);
