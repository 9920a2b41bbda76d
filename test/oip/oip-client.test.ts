/**
 * Requests written byte for byte the way Triton's Python HTTP client
 * (tritonclient.http) builds them, sent over a raw node:http connection: no
 * Content-Type, compact JSON, `Inference-Header-Content-Length`, inputs as
 * binary (`set_data_from_numpy` defaults to binary_data=True), outputs as
 * binary (no outputs named → `binary_data_output: true`), the key in a
 * header the client lets users add, gzip request compression. The answer is
 * read the way its InferResult does. (tritonclient itself cannot be installed
 * here: PyPI is unreachable.)
 */
import http from 'node:http';
import { gzipSync } from 'node:zlib';
import { graphql, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { imageFloats, imageTensor, INFER } from '../inference/fixtures';
import { STARTUP_TEST_TIMEOUT_MS } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

let gw: TestGateway;
let apiKey: string;

beforeAll(async () => {
  gw = await startGateway({ INFERENCE_WORKERS: '1' });
  apiKey = (await createTestKey({ scopes: ['inference'] })).key;
});
afterAll(async () => {
  await gw.close();
  await closeTestKeys();
});

interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request on a fresh connection, with exactly these headers (node adds Host, Content-Length and Connection only). */
function raw(path: string, method: string, headers: Record<string, string>, body?: Buffer): Promise<RawResponse> {
  const url = new URL(gw.url);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: url.hostname, port: url.port, path, method, headers: body ? { ...headers, 'content-length': String(body.length) } : headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** What tritonclient's _get_inference_request builds for one FP32 input given as numpy with binary_data=True. */
function tritonRequest(indices: number[], requestId: string): { body: Buffer; jsonSize: number } {
  const floats = imageFloats(indices);
  const rawData = Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength);
  const requestJson = JSON.stringify({
    id: requestId,
    inputs: [{ name: 'image', shape: [indices.length, 1, 28, 28], datatype: 'FP32', parameters: { binary_data_size: rawData.length } }],
    parameters: { binary_data_output: true },
  });
  return { body: Buffer.concat([Buffer.from(requestJson), rawData]), jsonSize: Buffer.byteLength(requestJson) };
}

/** InferResult's reading: the JSON is the first Inference-Header-Content-Length bytes; binary outputs follow in order. */
function asNumpy(res: RawResponse, name: string): { shape: number[]; values: Float32Array; json: Record<string, unknown> } {
  const headerLength = Number(res.headers['inference-header-content-length']);
  const json = JSON.parse(res.body.toString('utf8', 0, headerLength)) as { outputs: { name: string; shape: number[]; parameters?: { binary_data_size?: number } }[] };
  let offset = headerLength;
  for (const output of json.outputs) {
    const size = output.parameters?.binary_data_size ?? 0;
    if (output.name === name) {
      const bytes = Buffer.from(res.body.subarray(offset, offset + size));
      return { shape: output.shape, values: new Float32Array(bytes.buffer, bytes.byteOffset, size / 4), json: json as unknown as Record<string, unknown> };
    }
    offset += size;
  }
  throw new Error(`no output ${name}`);
}

describe('a Triton-style HTTP client', () => {
  it('probes the server and model, then infers with binary tensors; the answer equals GraphQL', async () => {
    const auth = { Authorization: `Bearer ${apiKey}` };
    // is_server_live / is_server_ready / is_model_ready read the status code only.
    expect((await raw('/v2/health/live', 'GET', {})).status).toBe(200);
    expect((await raw('/v2/health/ready', 'GET', {})).status).toBe(200);
    expect((await raw('/v2/models/fashion-cnn/ready', 'GET', auth)).status).toBe(200);
    const meta = await raw('/v2/models/fashion-cnn', 'GET', auth);
    expect(JSON.parse(meta.body.toString())).toMatchObject({ name: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, 1, 28, 28] }] });

    const { body, jsonSize } = tritonRequest([10, 11], 'triton-1');
    const res = await raw('/v2/models/fashion-cnn/infer', 'POST', { ...auth, 'Inference-Header-Content-Length': String(jsonSize) }, body);
    expect(res.status).toBe(200);
    const out = asNumpy(res, 'probabilities');
    expect(out.shape).toEqual([2, 10]);
    expect(out.json['id']).toBe('triton-1');

    const gql = await graphql<{ infer: { outputs: { dataBase64: string }[] } }>(gw.url, INFER, { input: { model: 'fashion-cnn', inputs: [imageTensor([10, 11])] } }, authHeaders(apiKey));
    const reference = Buffer.from(gql.body.data!.infer.outputs[0]!.dataBase64, 'base64');
    expect(Buffer.from(out.values.buffer, out.values.byteOffset, out.values.byteLength).equals(reference)).toBe(true);
  });

  it('takes a gzip-compressed request body (request_compression_algorithm="gzip") and the key as x-api-key', async () => {
    const { body, jsonSize } = tritonRequest([12], 'triton-gzip');
    const res = await raw(
      '/v2/models/fashion-cnn/versions/1/infer',
      'POST',
      { 'x-api-key': apiKey, 'Inference-Header-Content-Length': String(jsonSize), 'Content-Encoding': 'gzip' },
      gzipSync(body),
    );
    expect(res.status).toBe(200);
    expect(asNumpy(res, 'probabilities').shape).toEqual([1, 10]);
  });

  it('gets errors as {"error": ...} with a non-200 status, which tritonclient raises as InferenceServerException', async () => {
    const { body, jsonSize } = tritonRequest([0], 'triton-bad');
    const res = await raw('/v2/models/fashion-cnn/infer', 'POST', { Authorization: `Bearer ${apiKey}`, 'Inference-Header-Content-Length': String(jsonSize + 1) }, body);
    expect(res.status).toBe(400);
    const error = JSON.parse(res.body.toString()) as { error: string; code: string };
    expect(typeof error.error).toBe('string');
    expect(error.code).toBe('BAD_USER_INPUT');
    const refused = await raw('/v2/models/fashion-cnn/infer', 'POST', { 'Inference-Header-Content-Length': String(jsonSize) }, body);
    expect(refused.status).toBe(401);
    expect(JSON.parse(refused.body.toString())).toMatchObject({ code: 'UNAUTHENTICATED' });
  });
});
