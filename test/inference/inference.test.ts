/**
 * @jest-environment ./test/models/ort-environment.js
 *
 * The inference engine end to end, through GraphQL on real gateways with the
 * real ONNX models: batching, identical results, validation codes, overload,
 * deadlines, provider fallback, bare ONNX models and the model admin mutations.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as ort from 'onnxruntime-node';
import { graphql, REPO_ROOT, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import sharp from 'sharp';
import { argmax, decodeFloats, imageFloats, imageLabel, imagePng, imagePixels, imageTensor, INFER } from './fixtures';
import { READY_TIMEOUT_MS, STARTUP_TEST_TIMEOUT_MS, until } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

type InferData = {
  infer: {
    modelName: string;
    modelVersion: string;
    id: string | null;
    executionProvider: string;
    batchSize: number;
    outputs: { name: string; datatype: string; shape: number[]; dataBase64: string }[];
    timing: { queueMs: number; computeMs: number; totalMs: number };
  };
};

const STATS = `query($name: String!) { model(name: $name) { status executionProvider configSource statusReason
  stats { requests failures inferences executions meanBatchSize pending } } }`;

async function stats(url: string, name: string) {
  const res = await gql<{ model: { status: string; executionProvider: string; configSource: string; statusReason: string | null; stats: Record<string, number> } }>(url, STATS, { name });
  if (!res.body.data) throw new Error(JSON.stringify(res.body.errors));
  return res.body.data.model;
}

// An admin key (admin implies inference) with room for every request of this file.
let headers: Record<string, string> = {};
beforeAll(async () => {
  const { key } = await createTestKey({
    scopes: ['admin'],
    tenantLimits: { requestsPerMinute: 100_000, computeUnitsPerMinute: 10_000_000 },
    keyLimits: { requestsPerMinute: 100_000, computeUnitsPerMinute: 10_000_000 },
  });
  headers = authHeaders(key);
});
afterAll(() => closeTestKeys());

function gql<T = Record<string, unknown>>(url: string, query: string, variables: Record<string, unknown> = {}) {
  return graphql<T>(url, query, variables, headers);
}

function infer(url: string, input: Record<string, unknown>) {
  return gql<InferData>(url, INFER, { input });
}

describe('inference on the model repository', () => {
  let gw: TestGateway;

  beforeAll(async () => {
    gw = await startGateway({ INFERENCE_MAX_ITEMS_PER_REQUEST: '32', INFERENCE_MAX_BYTES_PER_REQUEST: '50000', INFERENCE_WORKERS: '2' }, { mode: 'postgres' });
  });
  afterAll(() => gw.close());

  it('lists the five models READY on the CPU with their tensors and labels', async () => {
    const res = await gql<{ models: { name: string; status: string; executionProvider: string; maxBatchSize: number; inputs: { name: string; datatype: string; shape: number[] }[]; labels: string[]; configSource: string }[] }>(
      gw.url,
      '{ models { name status executionProvider maxBatchSize inputs { name datatype shape } labels configSource } }',
    );
    const models = res.body.data!.models;
    expect(models.map((m) => m.name)).toEqual(['fashion-attention', 'fashion-cnn', 'fashion-hybrid', 'fashion-lstm', 'word-language']);
    for (const m of models) {
      expect(m).toMatchObject({ status: 'READY', executionProvider: 'cpu', maxBatchSize: 64, configSource: 'CONFIG' });
      if (m.name === 'word-language') continue;
      expect(m.inputs).toEqual([{ name: 'image', datatype: 'FP32', shape: [-1, 1, 28, 28] }]);
      expect(m.labels).toHaveLength(10);
    }
    // The seed model that takes strings.
    expect(models.find((m) => m.name === 'word-language')).toMatchObject({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [-1, 1] }], labels: ['en', 'de', 'fr', 'es', 'it', 'nl'] });
    const ready = (await (await fetch(`${gw.url}/readyz`)).json()) as { components: { models: { detail: { models: Record<string, unknown> } } } };
    expect(ready.components.models.detail.models['fashion-cnn/1']).toEqual({ status: 'READY', executionProvider: 'cpu' });
  });

  it('answers concurrent single-image requests on the shipped config (max_queue_delay 2 ms) exactly as unbatched runs, whatever batches form', async () => {
    const indices = Array.from({ length: 64 }, (_, i) => i);
    // Unbatched: one request at a time, so each runs alone.
    const alone: number[][] = [];
    for (const i of indices) {
      const res = await infer(gw.url, { model: 'fashion-hybrid', inputs: [imageTensor([i])] });
      expect(res.body.data!.infer.batchSize).toBe(1);
      alone.push(decodeFloats(res.body.data!.infer.outputs.find((o) => o.name === 'probabilities')!.dataBase64));
    }
    const before = await stats(gw.url, 'fashion-hybrid');
    const together = await Promise.all(indices.map((i) => infer(gw.url, { model: 'fashion-hybrid', id: `img-${i}`, inputs: [imageTensor([i])] })));
    const after = await stats(gw.url, 'fashion-hybrid');
    const executions = after.stats['executions']! - before.stats['executions']!;
    expect(after.stats['inferences']! - before.stats['inferences']!).toBe(64);
    // How many batches form at 2 ms depends on arrival timing (on a busy machine all 64 can arrive
    // more than 2 ms apart and run alone: seen once in CI): a figure, not an assertion. The
    // deterministic "far fewer executions" check is the patient-config test below.
    const largest = Math.max(...together.map((r) => r.body.data!.infer.batchSize));
    console.log(`shipped config (2 ms): 64 concurrent requests ran in ${executions} executions, largest batch ${largest}`);
    together.forEach((res, i) => {
      const out = res.body.data!.infer;
      expect(out.id).toBe(`img-${i}`);
      expect(out.outputs.map((o) => o.name).sort()).toEqual(['attention', 'probabilities']);
      const probabilities = out.outputs.find((o) => o.name === 'probabilities')!;
      expect(probabilities.shape).toEqual([1, 10]);
      expect(decodeFloats(probabilities.dataBase64)).toEqual(alone[i]);
    });
    const correct = together.filter((res, i) => argmax(decodeFloats(res.body.data!.infer.outputs.find((o) => o.name === 'probabilities')!.dataBase64)) === imageLabel(i)).length;
    expect(correct).toBeGreaterThanOrEqual(56);
  });

  it('accepts JSON data and base64 alike and splits a multi-item request back per item', async () => {
    const floats = Array.from(imageFloats([3, 4]));
    const json = await gql<{ infer: { outputs: { name: string; shape: number[]; data: number[] }[] } }>(
      gw.url,
      'mutation($input: InferInput!) { infer(input: $input) { outputs { name shape data } } }',
      { input: { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [2, 1, 28, 28], data: floats }], outputs: ['probabilities'] } },
    );
    const b64 = await infer(gw.url, { model: 'fashion-cnn', version: '1', inputs: [imageTensor([3, 4])] });
    const jsonOut = json.body.data!.infer.outputs[0]!;
    expect(jsonOut.shape).toEqual([2, 10]);
    expect(jsonOut.data).toEqual(decodeFloats(b64.body.data!.infer.outputs[0]!.dataBase64));
    expect(b64.body.data!.infer.modelVersion).toBe('1');
  });

  it('classifies PNG, JPEG and WebP files of any size, grey or colour, and raw pixels, with top-K labels and attention maps', async () => {
    const query = `mutation($model: String!, $images: [ImageInput!]!, $topK: Int) {
      classify(model: $model, images: $images, topK: $topK) { modelName executionProvider
        results { predictions { label index probability } attention attentionShape } } }`;
    const images = [
      { image: await imagePng(0) },
      { image: await imagePng(1, { size: 112, colour: true }) },
      { pixels: Array.from(imagePixels(2)), width: 28, height: 28 },
      { image: (await sharp(imagePixels(3), { raw: { width: 28, height: 28, channels: 1 } }).jpeg({ quality: 95 }).toBuffer()).toString('base64') },
      { image: (await sharp(imagePixels(4), { raw: { width: 28, height: 28, channels: 1 } }).webp({ lossless: true }).toBuffer()).toString('base64') },
    ];
    const res = await gql<{ classify: { results: { predictions: { label: string; index: number; probability: number }[]; attention: number[] | null; attentionShape: number[] | null }[] } }>(
      gw.url,
      query,
      { model: 'fashion-attention', images, topK: 2 },
    );
    expect(res.body.errors).toBeUndefined();
    const results = res.body.data!.classify.results;
    expect(results).toHaveLength(5);
    results.forEach((r, i) => {
      expect(r.predictions).toHaveLength(2);
      expect(r.predictions[0]!.probability).toBeGreaterThanOrEqual(r.predictions[1]!.probability);
      expect(r.attentionShape).toEqual([16]);
      expect(r.attention).toHaveLength(16);
      if (i < 3) expect(r.predictions[0]!.index).toBe(imageLabel(i));
    });
    // The JPEG and (lossless) WebP files classify as their raw pixels do.
    const raw = await gql<{ classify: { results: { predictions: { index: number }[] }[] } }>(gw.url, query, {
      model: 'fashion-attention',
      images: [3, 4].map((i) => ({ pixels: Array.from(imagePixels(i)), width: 28, height: 28 })),
      topK: 1,
    });
    expect(results.slice(3).map((r) => r.predictions[0]!.index)).toEqual(raw.body.data!.classify.results.map((r) => r.predictions[0]!.index));
    const cnn = await gql<{ classify: { results: { attention: number[] | null; predictions: { label: string }[] }[] } }>(gw.url, query, { model: 'fashion-cnn', images: [images[0]] });
    expect(cnn.body.data!.classify.results[0]!.attention).toBeNull();
    expect(cnn.body.data!.classify.results[0]!.predictions).toHaveLength(3);
  });

  describe('bad input is refused with its code and field, before anything is queued', () => {
    const good = () => imageTensor([0]);
    const nanBytes = Buffer.alloc(784 * 4);
    nanBytes.writeFloatLE(NaN, 8);
    const cases: [string, Record<string, unknown>, string, string | undefined][] = [
      ['unknown model', { model: 'nope', inputs: [good()] }, 'NOT_FOUND', undefined],
      ['invalid model name', { model: 'x'.repeat(300), inputs: [good()] }, 'BAD_USER_INPUT', 'model'],
      ['unknown version', { model: 'fashion-cnn', version: '7', inputs: [good()] }, 'NOT_FOUND', undefined],
      ['malformed version', { model: 'fashion-cnn', version: 'latest', inputs: [good()] }, 'BAD_USER_INPUT', 'version'],
      ['missing input', { model: 'fashion-cnn', inputs: [] }, 'BAD_USER_INPUT', 'inputs'],
      ['extra input', { model: 'fashion-cnn', inputs: [good(), { ...good(), name: 'extra' }] }, 'BAD_USER_INPUT', 'inputs[1].name'],
      ['duplicate input', { model: 'fashion-cnn', inputs: [good(), good()] }, 'BAD_USER_INPUT', 'inputs[1].name'],
      ['wrong datatype', { model: 'fashion-cnn', inputs: [{ ...good(), datatype: 'FP64' }] }, 'BAD_USER_INPUT', 'inputs[0].datatype'],
      ['wrong shape', { model: 'fashion-cnn', inputs: [{ ...good(), shape: [1, 28, 28] }] }, 'BAD_USER_INPUT', 'inputs[0].shape'],
      ['wrong dimension', { model: 'fashion-cnn', inputs: [{ ...good(), shape: [1, 1, 28, 27] }] }, 'BAD_USER_INPUT', 'inputs[0].shape'],
      ['zero dimension', { model: 'fashion-cnn', inputs: [{ ...good(), shape: [0, 1, 28, 28] }] }, 'BAD_USER_INPUT', 'inputs[0].shape'],
      ['element count differs from shape', { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], data: [1, 2, 3] }] }, 'BAD_USER_INPUT', 'inputs[0].data'],
      ['byte count differs from shape', { model: 'fashion-cnn', inputs: [{ ...good(), shape: [2, 1, 28, 28] }] }, 'BAD_USER_INPUT', 'inputs[0].dataBase64'],
      ['NaN', { model: 'fashion-cnn', inputs: [{ ...good(), dataBase64: nanBytes.toString('base64') }] }, 'BAD_USER_INPUT', 'inputs[0].dataBase64'],
      ['bad base64', { model: 'fashion-cnn', inputs: [{ ...good(), dataBase64: 'not*base64!' }] }, 'BAD_USER_INPUT', 'inputs[0].dataBase64'],
      ['both data and base64', { model: 'fashion-cnn', inputs: [{ ...good(), data: [1] }] }, 'BAD_USER_INPUT', 'inputs[0].data'],
      ['neither data nor base64', { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28] }] }, 'BAD_USER_INPUT', 'inputs[0].data'],
      ['more items than allowed', { model: 'fashion-cnn', inputs: [imageTensor(Array.from({ length: 33 }, (_, i) => i))] }, 'BAD_USER_INPUT', 'inputs[0].shape'],
      ['more bytes than allowed', { model: 'fashion-cnn', inputs: [imageTensor(Array.from({ length: 16 }, (_, i) => i))] }, 'BAD_USER_INPUT', 'inputs[0].shape'],
      ['unknown output', { model: 'fashion-cnn', inputs: [good()], outputs: ['logits'] }, 'BAD_USER_INPUT', 'outputs[0]'],
      ['timeout above the cap', { model: 'fashion-cnn', inputs: [good()], parameters: { timeoutMs: 10_000_000 } }, 'BAD_USER_INPUT', 'parameters.timeoutMs'],
      ['priority out of range', { model: 'fashion-cnn', inputs: [good()], parameters: { priority: 5000 } }, 'BAD_USER_INPUT', 'parameters.priority'],
    ];
    it.each(cases)('%s', async (_name, input, code, field) => {
      const before = await stats(gw.url, 'fashion-cnn');
      const res = await infer(gw.url, input);
      expect(res.body.data).toBeNull();
      const error = res.body.errors![0]!;
      expect(error.extensions?.['code']).toBe(code);
      if (field) expect(error.extensions?.['field']).toBe(field);
      expect(JSON.stringify(res.body)).not.toMatch(/at .*\.(js|ts):\d+/); // no stack traces
      const after = await stats(gw.url, 'fashion-cnn');
      expect(after.stats['executions']).toBe(before.stats['executions']);
    });

    it('an unknown datatype is refused by the schema', async () => {
      const res = await infer(gw.url, { model: 'fashion-cnn', inputs: [{ ...good(), datatype: 'FLOAT' }] });
      expect(res.body.errors![0]!.extensions?.['code']).toBe('BAD_USER_INPUT');
    });

    it('an undecodable image and bad pixels name the image', async () => {
      const q = 'mutation($images: [ImageInput!]!) { classify(model: "fashion-cnn", images: $images) { modelName } }';
      const bad = await gql(gw.url, q, { images: [{ image: Buffer.from('not an image at all').toString('base64') }] });
      expect(bad.body.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'images[0].image' });
      const pixels = await gql(gw.url, q, { images: [{ image: await imagePng(0) }, { pixels: [1, 2, 3], width: 28, height: 28 }] });
      expect(pixels.body.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'images[1].pixels' });
      const huge = await gql(gw.url, q, { images: [{ image: await imagePng(0, { size: 2048 }) }] });
      expect(huge.body.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'images[0].image' });
      expect(huge.body.errors![0]!.message).toMatch(/pixel limit/);
      const topK = await gql(gw.url, 'mutation($images: [ImageInput!]!) { classify(model: "fashion-cnn", images: $images, topK: 11) { modelName } }', { images: [{ image: await imagePng(0) }] });
      expect(topK.body.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'topK' });
    });

    it('png, the deprecated old name of image, still works; both or neither is refused', async () => {
      const q = 'mutation($images: [ImageInput!]!) { classify(model: "fashion-cnn", images: $images, topK: 1) { results { predictions { index } } } }';
      const png = await imagePng(0);
      const old = await gql<{ classify: { results: { predictions: { index: number }[] }[] } }>(gw.url, q, { images: [{ png }] });
      expect(old.body.errors).toBeUndefined();
      const renamed = await gql<{ classify: { results: { predictions: { index: number }[] }[] } }>(gw.url, q, { images: [{ image: png }] });
      expect(renamed.body.data).toEqual(old.body.data);
      expect(old.body.data!.classify.results[0]!.predictions[0]!.index).toBe(imageLabel(0));
      const undecodable = await gql(gw.url, q, { images: [{ png: Buffer.from('not an image').toString('base64') }] });
      expect(undecodable.body.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'images[0].png' });
      const both = await gql(gw.url, q, { images: [{ image: png, png }] });
      expect(both.body.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'images[0].png' });
      expect(both.body.errors![0]!.message).toBe('give image or its deprecated old name png, not both');
      const neither = await gql(gw.url, q, { images: [{ width: 28, height: 28 }] });
      expect(neither.body.errors![0]!.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'images[0]' });
      expect(neither.body.errors![0]!.message).toMatch(/give image \(base64 of a PNG, JPEG or WebP file\) or pixels/);
    });
  });

  it('needs a key with the inference scope, and honours the key\'s model allowlist', async () => {
    const anonymous = await graphql(gw.url, INFER, { input: { model: 'fashion-cnn', inputs: [imageTensor([0])] } });
    expect(anonymous.status).toBe(401);
    expect(anonymous.body.errors![0]!.extensions?.['code']).toBe('UNAUTHENTICATED');
    const usageOnly = await createTestKey({ scopes: ['usage:read'] });
    const refused = await graphql(gw.url, INFER, { input: { model: 'fashion-cnn', inputs: [imageTensor([0])] } }, authHeaders(usageOnly.key));
    expect(refused.body.errors![0]!.extensions?.['code']).toBe('FORBIDDEN');
    const cnnOnly = await createTestKey({ scopes: ['inference'], allowedModels: ['fashion-cnn'] });
    const h = authHeaders(cnnOnly.key);
    expect((await graphql(gw.url, INFER, { input: { model: 'fashion-cnn', inputs: [imageTensor([0])] } }, h)).body.data).toBeTruthy();
    const other = await graphql(gw.url, INFER, { input: { model: 'fashion-lstm', inputs: [imageTensor([0])] } }, h);
    expect(other.body.errors![0]!.extensions).toMatchObject({ code: 'FORBIDDEN', model: 'fashion-lstm' });
    const listed = await graphql<{ models: { name: string }[] }>(gw.url, '{ models { name } }', {}, h);
    expect(listed.body.data!.models.map((m) => m.name)).toEqual(['fashion-cnn']);
    const admin = await graphql(gw.url, 'mutation { unloadModel(name: "fashion-cnn") { status } }', {}, h);
    expect(admin.body.errors![0]!.extensions?.['code']).toBe('FORBIDDEN');
  });

  it('consumes compute units (items x cost) before validation and refuses beyond the limit without running', async () => {
    const limited = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 100, computeUnitsPerMinute: 10 } });
    const h = authHeaders(limited.key);
    const batch = (n: number) => ({ input: { model: 'fashion-cnn', inputs: [imageTensor(Array.from({ length: n }, (_, i) => i))] } });
    const first = await graphql(gw.url, INFER, batch(8), h);
    expect(first.body.errors).toBeUndefined();
    expect(first.headers.get('ratelimit')).toBeTruthy();
    expect(first.headers.get('ratelimit-policy')).toBeTruthy();
    const before = await stats(gw.url, 'fashion-cnn');
    const second = await graphql(gw.url, INFER, batch(8), h);
    expect(second.status).toBe(429);
    expect(second.body.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED' });
    expect(Number(second.headers.get('retry-after'))).toBeGreaterThan(0);
    const after = await stats(gw.url, 'fashion-cnn');
    expect(after.stats['executions']).toBe(before.stats['executions']);
    // Two units are left: a batch of 2 fits.
    expect((await graphql(gw.url, INFER, batch(2), h)).body.errors).toBeUndefined();
  });

  it('an inference field that never runs (@skip) still costs a request against the limits', async () => {
    const limited = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 2, computeUnitsPerMinute: 1000 } });
    const h = authHeaders(limited.key);
    const skipped = 'mutation($input: InferInput!) { infer(input: $input) @skip(if: true) { modelName } }';
    const input = { model: 'fashion-cnn', inputs: [imageTensor([0])] };
    for (let i = 0; i < 2; i += 1) expect((await graphql(gw.url, skipped, { input }, h)).status).toBe(200);
    const refused = await graphql(gw.url, INFER, { input }, h);
    expect(refused.body.errors![0]!.extensions?.['code']).toBe('RATE_LIMITED');
  });

  it('exposes Triton-named metrics per model', async () => {
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    expect(text).toMatch(/modelgate_inference_executions_total\{model="fashion-hybrid",version="1"\} \d+/);
    expect(text).toMatch(/modelgate_inference_request_success_total\{model="fashion-cnn",version="1"\} \d+/);
    expect(text).toMatch(/modelgate_inference_request_failure_total\{model="fashion-cnn",version="1",reason="BAD_INPUT"\} \d+/);
    expect(text).toContain('modelgate_inference_batch_size_bucket');
    expect(text).toContain('modelgate_inference_queue_duration_seconds_bucket');
    // Read from the queues at scrape time: every loaded version has a series, 0 with nothing queued (graceful-shutdown.test sees it at 8).
    expect(text).toMatch(/^modelgate_inference_pending_requests\{model="fashion-cnn",version="1"\} 0$/m);
  });
});

describe('a repository of its own: provider fallback, bare ONNX, overload, deadlines, admin', () => {
  let repo: string;
  let gw: TestGateway;
  const cnnOnnx = path.join(REPO_ROOT, 'models', 'fashion-cnn', '1', 'model.onnx');

  beforeAll(async () => {
    repo = mkdtempSync(path.join(os.tmpdir(), 'modelgate-repo-'));
    cpSync(path.join(REPO_ROOT, 'models', 'fashion-cnn'), path.join(repo, 'fashion-cnn'), { recursive: true });
    cpSync(path.join(REPO_ROOT, 'models', 'fashion-cnn'), path.join(repo, 'reloadable'), { recursive: true });
    const reloadable = JSON.parse(readFileSync(path.join(repo, 'reloadable', 'config.json'), 'utf8'));
    writeFileSync(
      path.join(repo, 'reloadable', 'config.json'),
      JSON.stringify({ ...reloadable, name: 'reloadable', dynamic_batching: { ...reloadable.dynamic_batching, max_queue_size: 64 } }),
    );
    cpSync(cnnOnnx, path.join(repo, 'bare', '1', 'model.onnx'));
    cpSync(path.join(REPO_ROOT, 'models', 'fashion-cnn'), path.join(repo, 'broken'), { recursive: true });
    cpSync(path.join(REPO_ROOT, 'models', 'fashion-hybrid'), path.join(repo, 'fashion-hybrid-copy'), { recursive: true });
    const hybridCopy = JSON.parse(readFileSync(path.join(repo, 'fashion-hybrid-copy', 'config.json'), 'utf8'));
    writeFileSync(path.join(repo, 'fashion-hybrid-copy', 'config.json'), JSON.stringify({ ...hybridCopy, name: 'fashion-hybrid-copy' }));
    // fashion-hybrid with a long queue delay waited out even while idle (delay_when_idle, Triton's
    // delayed batching): a burst of requests is certain to share batches.
    cpSync(path.join(REPO_ROOT, 'models', 'fashion-hybrid'), path.join(repo, 'patient-hybrid'), { recursive: true });
    const hybrid = JSON.parse(readFileSync(path.join(repo, 'patient-hybrid', 'config.json'), 'utf8'));
    writeFileSync(
      path.join(repo, 'patient-hybrid', 'config.json'),
      JSON.stringify({ ...hybrid, name: 'patient-hybrid', dynamic_batching: { max_queue_delay_microseconds: 500_000, preferred_batch_size: [64], max_queue_size: 128, delay_when_idle: true } }),
    );
    // fashion-cnn with a 5 s queue delay: a lone request must still run at once (adaptive batching).
    cpSync(path.join(REPO_ROOT, 'models', 'fashion-cnn'), path.join(repo, 'eager-cnn'), { recursive: true });
    writeFileSync(
      path.join(repo, 'eager-cnn', 'config.json'),
      JSON.stringify({ ...reloadable, name: 'eager-cnn', dynamic_batching: { max_queue_delay_microseconds: 5_000_000, preferred_batch_size: [32, 64] } }),
    );
    writeFileSync(path.join(repo, 'broken', 'config.json'), JSON.stringify({ ...reloadable, name: 'broken', max_batch_size: -3 }));
    gw = await startGateway(
      { MODEL_REPOSITORY: repo, EXECUTION_PROVIDERS: 'cuda,cpu', INFERENCE_WORKERS: '1', INFERENCE_MAX_QUEUE_SIZE: '4' },
      { mode: 'postgres' },
    );
  });
  afterAll(async () => {
    await gw.close();
    rmSync(repo, { recursive: true, force: true });
  });

  it('with EXECUTION_PROVIDERS=cuda,cpu and no CUDA here, serves on the CPU, says so, and warns once per model', async () => {
    const model = await stats(gw.url, 'fashion-cnn');
    expect(model.status).toBe('READY');
    expect(model.executionProvider).toBe('cpu');
    const res = await infer(gw.url, { model: 'fashion-cnn', inputs: [imageTensor([0])] });
    expect(res.body.data!.infer.executionProvider).toBe('cpu');
    const warnings = gw.logs.lines.filter((l) => l.includes('fell back') && l.includes('"model":"fashion-cnn"'));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toContain('"provider":"cuda"');
  });

  it('serves a model.onnx without config.json from the graph metadata, equal to a direct onnxruntime run', async () => {
    const model = await stats(gw.url, 'bare');
    expect(model).toMatchObject({ status: 'READY', configSource: 'DERIVED' });
    const described = await gql<{ model: { maxBatchSize: number; inputs: { name: string; datatype: string; shape: number[] }[]; outputs: { name: string }[] } }>(
      gw.url,
      '{ model(name: "bare") { maxBatchSize inputs { name datatype shape } outputs { name } } }',
    );
    expect(described.body.data!.model.inputs).toEqual([{ name: 'image', datatype: 'FP32', shape: [-1, 1, 28, 28] }]);
    const outputNames = described.body.data!.model.outputs.map((o) => o.name);
    const res = await infer(gw.url, { model: 'bare', inputs: [imageTensor([5, 6, 7])] });
    expect(res.body.errors).toBeUndefined();
    const session = await ort.InferenceSession.create(cnnOnnx, { executionProviders: ['cpu'], intraOpNumThreads: 1 });
    const direct = await session.run({ image: new ort.Tensor('float32', imageFloats([5, 6, 7]), [3, 1, 28, 28]) });
    for (const name of outputNames) {
      const served = res.body.data!.infer.outputs.find((o) => o.name === name)!;
      expect(decodeFloats(served.dataBase64)).toEqual(Array.from(direct[name]!.data as Float32Array));
    }
    await session.release();
  });

  it('a lone request runs at once on an idle model, whatever its queue delay (adaptive batching)', async () => {
    const before = await stats(gw.url, 'eager-cnn');
    const res = await infer(gw.url, { model: 'eager-cnn', inputs: [imageTensor([0])] });
    expect(res.body.errors).toBeUndefined();
    const out = res.body.data!.infer;
    expect(out.batchSize).toBe(1);
    // Dispatched inside the submitting call, not by the 5 s delay timer (which a fixed wait would need).
    expect(out.timing.queueMs).toBeLessThan(5000);
    const after = await stats(gw.url, 'eager-cnn');
    expect(after.stats['executions']! - before.stats['executions']!).toBe(1);
  });

  it('64 concurrent single-image requests run in far fewer executions (delay_when_idle), each result identical to a direct batch-1 onnxruntime run', async () => {
    const indices = Array.from({ length: 64 }, (_, i) => 100 + i);
    const session = await ort.InferenceSession.create(path.join(repo, 'patient-hybrid', '1', 'model.onnx'), { executionProviders: ['cpu'], intraOpNumThreads: 1 });
    const alone: number[][] = [];
    for (const i of indices) {
      const out = await session.run({ image: new ort.Tensor('float32', imageFloats([i]), [1, 1, 28, 28]) });
      alone.push(Array.from(out['probabilities']!.data as Float32Array));
    }
    await session.release();
    const before = await stats(gw.url, 'patient-hybrid');
    const results = await Promise.all(indices.map((i) => infer(gw.url, { model: 'patient-hybrid', inputs: [imageTensor([i])], outputs: ['probabilities'] })));
    const after = await stats(gw.url, 'patient-hybrid');
    const executions = after.stats['executions']! - before.stats['executions']!;
    expect(after.stats['inferences']! - before.stats['inferences']!).toBe(64);
    expect(executions).toBeLessThanOrEqual(4);
    results.forEach((res, n) => {
      expect(res.body.errors).toBeUndefined();
      const out = res.body.data!.infer;
      expect(out.outputs.map((o) => o.name)).toEqual(['probabilities']);
      expect(decodeFloats(out.outputs[0]!.dataBase64)).toEqual(alone[n]);
    });
  });

  it('a model whose config.json is invalid is FAILED with a reason naming the file and field', async () => {
    const model = await stats(gw.url, 'broken');
    expect(model.status).toBe('FAILED');
    expect(model.statusReason).toContain(path.join('broken', 'config.json'));
    expect(model.statusReason).toContain('max_batch_size');
    const res = await infer(gw.url, { model: 'broken', inputs: [imageTensor([0])] });
    expect(res.body.errors![0]!.extensions?.['code']).toBe('MODEL_UNAVAILABLE');
    expect(res.status).toBe(503);
  });

  it('beyond the queue bound a request gets OVERLOADED (HTTP 503) at once, and refused requests never run', async () => {
    const before = await stats(gw.url, 'fashion-cnn');
    const batch = imageTensor(Array.from({ length: 64 }, (_, i) => i));
    const results = await Promise.all(Array.from({ length: 24 }, () => infer(gw.url, { model: 'fashion-cnn', inputs: [batch] })));
    const ok = results.filter((r) => r.body.data);
    const overloaded = results.filter((r) => r.body.errors?.[0]?.extensions?.['code'] === 'OVERLOADED');
    expect(ok.length + overloaded.length).toBe(24);
    expect(overloaded.length).toBeGreaterThan(0);
    expect(ok.length).toBeGreaterThan(0);
    for (const r of overloaded) expect(r.status).toBe(503);
    const after = await stats(gw.url, 'fashion-cnn');
    expect(after.stats['inferences']! - before.stats['inferences']!).toBe(ok.length * 64);
    expect(after.stats['executions']! - before.stats['executions']!).toBe(ok.length);
  });

  it('a request still queued at its deadline is dropped with TIMEOUT (HTTP 504) and never runs', async () => {
    const before = await stats(gw.url, 'fashion-cnn');
    const batch = imageTensor(Array.from({ length: 64 }, (_, i) => i));
    const results = await Promise.all(
      Array.from({ length: 4 }, () => infer(gw.url, { model: 'fashion-cnn', inputs: [batch], parameters: { timeoutMs: 1 } })),
    );
    const ok = results.filter((r) => r.body.data);
    const timedOut = results.filter((r) => r.body.errors?.[0]?.extensions?.['code'] === 'TIMEOUT');
    expect(ok.length + timedOut.length).toBe(4);
    expect(timedOut.length).toBeGreaterThan(0);
    for (const r of timedOut) expect(r.status).toBe(504);
    const after = await stats(gw.url, 'fashion-cnn');
    expect(after.stats['inferences']! - before.stats['inferences']!).toBe(ok.length * 64);
  });

  it('a failed reload leaves the old version serving; unload and load work', async () => {
    const configFile = path.join(repo, 'reloadable', 'config.json');
    const good = readFileSync(configFile, 'utf8');
    const config = JSON.parse(good);
    config.inputs[0].name = 'pixels';
    writeFileSync(configFile, JSON.stringify(config));
    const reload = await gql(gw.url, 'mutation { reloadModel(name: "reloadable") { status } }');
    expect(reload.body.errors![0]!.extensions?.['code']).toBe('MODEL_UNAVAILABLE');
    expect(reload.body.errors![0]!.message).toContain('"pixels"');
    expect((await stats(gw.url, 'reloadable')).status).toBe('READY');
    expect((await infer(gw.url, { model: 'reloadable', inputs: [imageTensor([0])] })).body.data).toBeTruthy();

    writeFileSync(configFile, good);
    const reloaded = await gql<{ reloadModel: { status: string } }>(gw.url, 'mutation { reloadModel(name: "reloadable") { status } }');
    expect(reloaded.body.data!.reloadModel.status).toBe('READY');

    const unloaded = await gql<{ unloadModel: { status: string } }>(gw.url, 'mutation { unloadModel(name: "reloadable") { status } }');
    expect(unloaded.body.data!.unloadModel.status).toBe('UNLOADED');
    const refused = await infer(gw.url, { model: 'reloadable', inputs: [imageTensor([0])] });
    expect(refused.body.errors![0]!.extensions?.['code']).toBe('MODEL_UNAVAILABLE');
    const loaded = await gql<{ loadModel: { status: string } }>(gw.url, 'mutation { loadModel(name: "reloadable") { status } }');
    expect(loaded.body.data!.loadModel.status).toBe('READY');
    expect((await infer(gw.url, { model: 'reloadable', inputs: [imageTensor([0])] })).body.data).toBeTruthy();
  });

  it('a failing run is INTERNAL with the request id and logged; a dead worker is replaced; serving goes on', async () => {
    type PoolInternals = { workers: { thread: { terminate(): Promise<number> }; send(request: { op: 'unload'; key: string }): Promise<unknown> }[] };
    const pool = gw.gateway.services.inference.pool as unknown as PoolInternals;
    const sessionKey = gw.gateway.services.inference.registry.find('fashion-hybrid-copy').version.sessionKey!;
    // Pull the session out from under the registry: the next run of this model fails inside the worker.
    await pool.workers[0]!.send({ op: 'unload', key: sessionKey });
    const failed = await graphql<InferData>(gw.url, INFER, { input: { model: 'fashion-hybrid-copy', inputs: [imageTensor([0])] } }, { ...headers, 'x-request-id': 'doomed-run-1' });
    expect(failed.body.errors![0]!.extensions).toMatchObject({ code: 'INTERNAL', requestId: 'doomed-run-1' });
    expect(failed.body.errors![0]!.message).not.toContain(sessionKey); // internals stay in the log
    expect(gw.logs.lines.some((l) => l.includes('doomed-run-1') && l.includes('not loaded in this worker'))).toBe(true);
    expect((await infer(gw.url, { model: 'fashion-cnn', inputs: [imageTensor([0])] })).body.data).toBeTruthy();
    const reloaded = await gql<{ reloadModel: { status: string } }>(gw.url, 'mutation { reloadModel(name: "fashion-hybrid-copy") { status } }');
    expect(reloaded.body.data!.reloadModel.status).toBe('READY');
    expect((await infer(gw.url, { model: 'fashion-hybrid-copy', inputs: [imageTensor([0])] })).body.data).toBeTruthy();

    // A worker that dies is replaced and loads every model again.
    await pool.workers[0]!.thread.terminate();
    // The replacement loads every model before it serves: sized like a start.
    const served = await until('a replacement worker to serve fashion-cnn', () => infer(gw.url, { model: 'fashion-cnn', inputs: [imageTensor([1])] }), {
      accept: (res) => res.body.data != null,
      everyMs: 100,
      timeoutMs: READY_TIMEOUT_MS,
    });
    expect(served.body.data).toBeTruthy();
    expect(gw.logs.text).toContain('inference worker died');
  });

  it('reload under traffic fails no request; unload lets queued requests finish and refuses new ones', async () => {
    const send = (n: number) => Array.from({ length: n }, (_, i) => infer(gw.url, { model: 'reloadable', inputs: [imageTensor([i % 10])] }));
    const during = send(24);
    const reload = gql<{ reloadModel: { status: string } }>(gw.url, 'mutation { reloadModel(name: "reloadable") { status } }');
    const results = await Promise.all(during);
    expect((await reload).body.data!.reloadModel.status).toBe('READY');
    expect(results.filter((r) => r.body.errors).map((r) => r.body.errors![0]!.extensions?.['code'])).toEqual([]);

    const beforeUnload = send(24);
    const unload = gql<{ unloadModel: { status: string } }>(gw.url, 'mutation { unloadModel(name: "reloadable") { status } }');
    const outcomes = (await Promise.all(beforeUnload)).map((r) => (r.body.errors ? String(r.body.errors[0]!.extensions?.['code']) : 'OK'));
    expect((await unload).body.data!.unloadModel.status).toBe('UNLOADED');
    // Requests that reached the queue ran; later ones were told the model is unavailable. None failed otherwise.
    expect(outcomes.filter((o) => o !== 'OK' && o !== 'MODEL_UNAVAILABLE')).toEqual([]);
    expect(outcomes).toContain('OK');
    expect((await gql<{ loadModel: { status: string } }>(gw.url, 'mutation { loadModel(name: "reloadable") { status } }')).body.data!.loadModel.status).toBe('READY');
  });

  it('loadModel picks up a model added to the repository after start', async () => {
    cpSync(cnnOnnx, path.join(repo, 'late', '1', 'model.onnx'));
    const missing = await infer(gw.url, { model: 'late', inputs: [imageTensor([0])] });
    expect(missing.body.errors![0]!.extensions?.['code']).toBe('NOT_FOUND');
    const loaded = await gql<{ loadModel: { status: string; configSource: string } }>(gw.url, 'mutation { loadModel(name: "late") { status configSource } }');
    expect(loaded.body.data!.loadModel).toEqual({ status: 'READY', configSource: 'DERIVED' });
    const unknown = await gql(gw.url, 'mutation { loadModel(name: "ghost") { status } }');
    expect(unknown.body.errors![0]!.extensions?.['code']).toBe('NOT_FOUND');
  });
});
