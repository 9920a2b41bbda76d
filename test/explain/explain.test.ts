/**
 * Explanations (issue #15) end to end on a real gateway with the real models:
 * classify(explain: …) returns a saliency map per image, its perturbed
 * copies run as batched items on the workers and are billed per item,
 * limits refuse before anything runs, bad parameters name their field, and
 * the maps are faithful by the deletion metric.
 */
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import sharp from 'sharp';
import { graphql, REPO_ROOT, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey, type TestKey } from '../helpers/auth';
import { decodeFloats, imageFloats, imagePixels, imageTensor, INFER } from '../inference/fixtures';
import { areaUnderCurve, deletionSeries, randomOrder, saliencyOrder } from '../../src/inference/explain-faithfulness';
import { regionProbeModel, vectorModel } from './onnx-bytes';
import { STARTUP_TEST_TIMEOUT_MS } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const MODELS = ['fashion-cnn', 'fashion-lstm', 'fashion-attention', 'fashion-hybrid'];
const GEOMETRY = { layout: 'NCHW' as const, channels: 1, height: 28, width: 28 };
/** The region class 0 of region-probe looks at (rows 4..11, columns 16..23). */
const REGION = { y0: 4, y1: 12, x0: 16, x1: 24 };

const CLASSIFY = `mutation($model: String!, $images: [ImageInput!]!, $explain: ExplainInput, $topK: Int! = 1) {
  classify(model: $model, images: $images, topK: $topK, explain: $explain) {
    batchSize
    results { predictions { index probability } attention
      explanation { method explainedClass explainedLabel explainedScore shape dataBase64 heatmapPng items } }
  }
}`;

interface ExplanationNode {
  method: string;
  explainedClass: number;
  explainedLabel: string;
  explainedScore: number;
  shape: number[];
  dataBase64: string;
  heatmapPng: string | null;
  items: number;
}
interface ClassifyData {
  classify: { batchSize: number; results: { predictions: { index: number; probability: number }[]; attention: number[] | null; explanation: ExplanationNode | null }[] };
}

const fixture = (index: number) => ({ pixels: Array.from(imagePixels(index)), width: 28, height: 28 });

describe('explanations', () => {
  let gw: TestGateway;
  let repo: string;
  let caller: TestKey;
  // Model statistics sum every tenant's traffic: only admin keys read them.
  let statsReader: TestKey;
  let reader: TestKey;

  beforeAll(async () => {
    // The shipped models plus two built here: one whose output depends on one known region, one without an image input.
    repo = mkdtempSync(path.join(os.tmpdir(), 'modelgate-explain-'));
    for (const name of MODELS) {
      mkdirSync(path.join(repo, name, '1'), { recursive: true });
      cpSync(path.join(REPO_ROOT, 'models', name, 'config.json'), path.join(repo, name, 'config.json'));
      cpSync(path.join(REPO_ROOT, 'models', name, '1', 'model.onnx'), path.join(repo, name, '1', 'model.onnx'));
    }
    mkdirSync(path.join(repo, 'region-probe', '1'), { recursive: true });
    writeFileSync(path.join(repo, 'region-probe', '1', 'model.onnx'), regionProbeModel(28, 28, REGION, 0.05));
    mkdirSync(path.join(repo, 'vector-probe', '1'), { recursive: true });
    writeFileSync(path.join(repo, 'vector-probe', '1', 'model.onnx'), vectorModel(10));
    gw = await startGateway({ MODEL_REPOSITORY: repo, INFERENCE_WORKERS: '1' });
    caller = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 10_000, computeUnitsPerMinute: 1_000_000 } });
    statsReader = await createTestKey({ scopes: ['admin'], keyLimits: { requestsPerMinute: 10_000, computeUnitsPerMinute: 1_000_000 } });
    reader = await createTestKey({ scopes: ['admin'] });
  });
  afterAll(async () => {
    await gw.close();
    await closeTestKeys();
    rmSync(repo, { recursive: true, force: true });
  });

  const classify = (variables: Record<string, unknown>, key = caller.key, headers: Record<string, string> = {}) =>
    graphql<ClassifyData>(gw.url, CLASSIFY, variables, { ...authHeaders(key), ...headers });

  async function stats(name: string): Promise<{ inferences: number; executions: number; requests: number; failures: number }> {
    const res = await graphql<{ model: { stats: { inferences: number; executions: number; requests: number; failures: number } } }>(
      gw.url,
      'query($n: String!) { model(name: $n) { stats { inferences executions requests failures } } }',
      { n: name },
      authHeaders(statsReader.key),
    );
    return res.body.data!.model.stats;
  }

  async function usageRecord(requestId: string): Promise<{ status: string; items: number; computeUnits: number }> {
    await gw.gateway.services.usage.flush();
    const res = await graphql<{ usageRecords: { edges: { node: { id: string; status: string; items: number; computeUnits: number } }[] } }>(
      gw.url,
      'query($f: UsageRecordFilter) { usageRecords(first: 100, filter: $f) { edges { node { id status items computeUnits } } } }',
      { f: { tenantId: caller.tenantId } },
      authHeaders(reader.key),
    );
    const found = res.body.data!.usageRecords.edges.map((e) => e.node).find((n) => n.id.split('~')[0] === requestId);
    if (!found) throw new Error(`no usage record ${requestId}: ${JSON.stringify(res.body)}`);
    return found;
  }

  describe('maps', () => {
    it.each(MODELS.flatMap((model) => [[model, 'OCCLUSION', {}], [model, 'RISE', { masks: 64 }]] as const))(
      '%s %s: a 28×28 map of finite values in 0..1 explaining the top-1 class, one per image',
      async (model, method, params) => {
        const res = await classify({ model, images: [fixture(0), fixture(1)], explain: { method, ...params } });
        expect(res.body.errors).toBeUndefined();
        const results = res.body.data!.classify.results;
        expect(results).toHaveLength(2);
        for (const r of results) {
          const e = r.explanation!;
          expect(e).toMatchObject({ method, shape: [28, 28], explainedClass: r.predictions[0]!.index, heatmapPng: null });
          expect(e.explainedScore).toBeCloseTo(r.predictions[0]!.probability, 5);
          expect(e.items).toBe(method === 'RISE' ? 65 : 1 + 13 * 13);
          const data = decodeFloats(e.dataBase64);
          expect(data).toHaveLength(28 * 28);
          expect(data.every((v) => Number.isFinite(v) && v >= 0 && v <= 1)).toBe(true);
          expect(Math.max(...data)).toBe(1);
        }
      },
    );

    it.each([
      ['fashion-attention', [4, 4]],
      ['fashion-hybrid', [14, 1]],
    ])('%s ATTENTION: today’s attention output as a %j map, one item per image', async (model, shape) => {
      const before = await stats(model);
      const res = await classify({ model, images: [fixture(2)], explain: { method: 'ATTENTION' } });
      expect(res.body.errors).toBeUndefined();
      const r = res.body.data!.classify.results[0]!;
      expect(r.explanation).toMatchObject({ method: 'ATTENTION', shape, items: 1, explainedClass: r.predictions[0]!.index });
      const data = decodeFloats(r.explanation!.dataBase64);
      // The same map, min-max normalised.
      const lo = Math.min(...r.attention!);
      const hi = Math.max(...r.attention!);
      data.forEach((v, i) => expect(v).toBeCloseTo((r.attention![i]! - lo) / (hi - lo), 5));
      expect((await stats(model)).inferences - before.inferences).toBe(1);
    });

    it('explains the class asked for, and returns a PNG heatmap overlay when asked', async () => {
      const res = await classify({ model: 'fashion-cnn', images: [fixture(0)], explain: { method: 'OCCLUSION', targetClass: 3, heatmap: true } });
      expect(res.body.errors).toBeUndefined();
      const e = res.body.data!.classify.results[0]!.explanation!;
      expect(e).toMatchObject({ explainedClass: 3, explainedLabel: 'Dress' });
      const png = Buffer.from(e.heatmapPng!, 'base64');
      const meta = await sharp(png).metadata();
      expect(meta).toMatchObject({ format: 'png', width: 224, height: 224, channels: 3 });
    });

    it('puts the most salient pixels of a model that looks at one region inside that region (OCCLUSION and RISE, derived config)', async () => {
      const white = { pixels: new Array(28 * 28).fill(255), width: 28, height: 28 };
      for (const explain of [{ method: 'OCCLUSION', patch: 4, stride: 2 }, { method: 'RISE', masks: 400 }]) {
        const res = await classify({ model: 'region-probe', images: [white], explain });
        expect(res.body.errors).toBeUndefined();
        const e = res.body.data!.classify.results[0]!.explanation!;
        expect(e.explainedClass).toBe(0);
        const data = decodeFloats(e.dataBase64);
        const inside = (i: number) => {
          const y = Math.floor(i / 28);
          const x = i % 28;
          return y >= REGION.y0 && y < REGION.y1 && x >= REGION.x0 && x < REGION.x1;
        };
        const top = saliencyOrder(data).slice(0, 32);
        expect(top.every(inside)).toBe(true);
        const meanIn = data.filter((_, i) => inside(i)).reduce((a, b) => a + b, 0) / 64;
        const meanOut = data.filter((_, i) => !inside(i)).reduce((a, b) => a + b, 0) / (784 - 64);
        expect(meanIn).toBeGreaterThan(meanOut + 0.3);
      }
    });
  });

  describe('batching and billing', () => {
    it('runs 1 + perturbations items per image in shared batches and bills every item: usage record items and units', async () => {
      const before = await stats('fashion-hybrid');
      const requestId = `explain-bill-${Date.now().toString(36)}`;
      // patch 4, stride 4: 7 × 7 = 49 positions → 2 images × 50 items = 100 items; cost 1.8 → ceil(180) units.
      const res = await classify({ model: 'fashion-hybrid', images: [fixture(3), fixture(4)], explain: { method: 'OCCLUSION', patch: 4, stride: 4 } }, caller.key, { 'x-request-id': requestId });
      expect(res.body.errors).toBeUndefined();
      expect(res.body.data!.classify.results.map((r) => r.explanation!.items)).toEqual([50, 50]);
      const after = await stats('fashion-hybrid');
      expect(after.inferences - before.inferences).toBe(100);
      // Chunks of at most max_batch_size (64): 100 items in at most 2 executions.
      expect(after.executions - before.executions).toBeLessThanOrEqual(2);
      expect(after.executions - before.executions).toBeLessThan(100);
      expect(res.body.data!.classify.batchSize).toBe(64);
      expect(await usageRecord(requestId)).toMatchObject({ status: 'OK', items: 100, computeUnits: 180 });
    });

    it('refuses an explanation that exceeds the limits before anything runs (counters unchanged, record with 0 units)', async () => {
      const small = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 100, computeUnitsPerMinute: 100 } });
      const before = await stats('fashion-cnn');
      const requestId = `explain-limited-${Date.now().toString(36)}`;
      // 1 + 169 items (default patch 4, stride 2) at cost 1: 170 units > 100.
      const res = await classify({ model: 'fashion-cnn', images: [fixture(0)], explain: { method: 'OCCLUSION' } }, small.key, { 'x-request-id': requestId });
      expect(res.body.errors![0]!.extensions).toMatchObject({ code: 'RATE_LIMITED' });
      const after = await stats('fashion-cnn');
      expect(after.inferences).toBe(before.inferences);
      expect(after.executions).toBe(before.executions);
      await gw.gateway.services.usage.flush();
      const records = await graphql<{ usageRecords: { edges: { node: { id: string; status: string; items: number; computeUnits: number } }[] } }>(
        gw.url,
        'query($f: UsageRecordFilter) { usageRecords(first: 10, filter: $f) { edges { node { id status items computeUnits } } } }',
        { f: { tenantId: small.tenantId } },
        authHeaders(reader.key),
      );
      expect(records.body.data!.usageRecords.edges.map((e) => ({ ...e.node, id: e.node.id.split('~')[0] }))).toEqual([
        { id: requestId, status: 'RATE_LIMITED', items: 170, computeUnits: 0 },
      ]);
      // The same explanation with a 1-item image fits: units follow the items.
      const ok = await classify({ model: 'fashion-cnn', images: [fixture(0)], explain: { method: 'OCCLUSION', patch: 7, stride: 7 } }, small.key);
      expect(ok.body.errors).toBeUndefined();
      expect(ok.body.data!.classify.results[0]!.explanation!.items).toBe(17);
    });
  });

  describe('bad input', () => {
    it.each([
      ['vector-probe', { method: 'OCCLUSION' }, 'explain', /no image input/],
      ['fashion-cnn', { method: 'ATTENTION' }, 'explain.method', /no attention output/],
      ['fashion-attention', { method: 'ATTENTION', targetClass: 1 }, 'explain.targetClass', /not class-specific/],
      ['fashion-cnn', { method: 'OCCLUSION', patch: 29 }, 'explain.patch', /between 1 and 28/],
      ['fashion-cnn', { method: 'OCCLUSION', patch: 0 }, 'explain.patch', /between 1 and 28/],
      ['fashion-cnn', { method: 'OCCLUSION', stride: 0 }, 'explain.stride', /between 1 and 28/],
      ['fashion-cnn', { method: 'RISE', masks: 4001 }, 'explain.masks', /between 1 and 4000/],
      ['fashion-cnn', { method: 'RISE', maskGrid: 1 }, 'explain.maskGrid', /between 2 and 28/],
      ['fashion-cnn', { method: 'OCCLUSION', targetClass: 10 }, 'explain.targetClass', /between 0 and 9/],
      ['fashion-cnn', { method: 'RISE', masks: 4000 }, 'explain', /runs 16004 items/],
    ])('%s %j → BAD_USER_INPUT naming %s', async (model, explain, field, message) => {
      const before = await stats(model);
      // Four images: the item bound (8192) is per request.
      const res = await classify({ model, images: [fixture(0), fixture(1), fixture(2), fixture(3)], explain });
      const error = res.body.errors![0]!;
      expect(error.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
      expect(error.message).toMatch(message);
      expect((await stats(model)).inferences).toBe(before.inferences);
    });
  });

  describe('REST: POST /v2/models/{m}/explain', () => {
    const post = (model: string, body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${gw.url}/v2/models/${model}/explain`, { method: 'POST', headers: { ...authHeaders(caller.key), 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

    it('answers OIP-shaped saliency tensors equal to GraphQL’s, billed per item', async () => {
      const requestId = `explain-rest-${Date.now().toString(36)}`;
      const tensor = imageTensor([0, 1]);
      const res = await post('fashion-cnn', { id: 'two', inputs: [{ name: 'image', datatype: 'FP32', shape: [2, 1, 28, 28], data: decodeFloats(tensor.dataBase64) }], parameters: { method: 'occlusion', patch: 7, stride: 7, heatmap: true } }, { 'x-request-id': requestId });
      expect(res.status).toBe(200);
      const body = (await res.json()) as { id: string; parameters: Record<string, unknown>; outputs: { name: string; datatype: string; shape: number[]; data: (number | string)[] }[] };
      expect(body).toMatchObject({ id: 'two', parameters: { method: 'OCCLUSION', items: 34, items_per_image: 17 } });
      const out = Object.fromEntries(body.outputs.map((o) => [o.name, o]));
      expect(out['saliency']).toMatchObject({ datatype: 'FP32', shape: [2, 28, 28] });
      expect(out['explained_class']).toMatchObject({ datatype: 'INT64', shape: [2] });
      expect(out['heatmap_png']).toMatchObject({ datatype: 'BYTES', shape: [2] });
      const gql = await classify({ model: 'fashion-cnn', images: [fixture(0), fixture(1)], explain: { method: 'OCCLUSION', patch: 7, stride: 7 } });
      const maps = gql.body.data!.classify.results.map((r) => decodeFloats(r.explanation!.dataBase64));
      expect(out['explained_class']!.data).toEqual(gql.body.data!.classify.results.map((r) => r.explanation!.explainedClass));
      (out['saliency']!.data as number[]).forEach((v, i) => expect(v).toBeCloseTo(maps[Math.floor(i / 784)]![i % 784]!, 3));
      expect(await usageRecord(requestId)).toMatchObject({ status: 'OK', items: 34, computeUnits: 34 });
    });

    it.each([
      ['fashion-cnn', { method: 'occlusion', patch: 40 }, 'parameters.patch'],
      ['fashion-cnn', { method: 'shap' }, 'parameters.method'],
      ['fashion-cnn', { method: 'rise', masks: 0 }, 'parameters.masks'],
    ])('%s %j → 400 naming %s', async (model, parameters, field) => {
      const res = await post(model, { inputs: [{ ...imageTensor([0]), dataBase64: undefined, data: decodeFloats(imageTensor([0]).dataBase64) }], parameters });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'BAD_USER_INPUT', field });
    });

    it('refuses a model without an image input with 400 and the reason', async () => {
      const res = await post('vector-probe', { inputs: [{ name: 'features', datatype: 'FP32', shape: [1, 10], data: new Array(10).fill(0) }], parameters: { method: 'occlusion' } });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ code: 'BAD_USER_INPUT', field: 'parameters', error: expect.stringMatching(/no image input/) });
    });
  });

  describe('faithfulness (deletion metric)', () => {
    /** Probability of `target` as the top-k% pixels of `order` are deleted, k = 0, 5, …, 100, through infer. */
    async function deletionAuc(image: Float32Array, order: number[], target: number): Promise<number> {
      const series = deletionSeries(image, GEOMETRY, order, 20);
      const res = await graphql<{ infer: { outputs: { dataBase64: string }[] } }>(
        gw.url,
        INFER,
        { input: { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [21, 1, 28, 28], dataBase64: Buffer.from(series.buffer).toString('base64') }] } },
        authHeaders(caller.key),
      );
      const probabilities = decodeFloats(res.body.data!.infer.outputs[0]!.dataBase64);
      return areaUnderCurve(Array.from({ length: 21 }, (_, k) => probabilities[k * 10 + target]!));
    }

    it('occlusion maps of fashion-cnn delete the class faster than random order; a random map does not', async () => {
      const indices = [0, 1, 2, 3, 4, 5];
      const res = await classify({ model: 'fashion-cnn', images: indices.map(fixture), explain: { method: 'OCCLUSION' } });
      expect(res.body.errors).toBeUndefined();
      let saliency = 0;
      let random = 0;
      let randomMap = 0;
      for (const [n, index] of indices.entries()) {
        const e = res.body.data!.classify.results[n]!.explanation!;
        const image = imageFloats([index]);
        saliency += await deletionAuc(image, saliencyOrder(decodeFloats(e.dataBase64)), e.explainedClass);
        random += await deletionAuc(image, randomOrder(784, 1000 + index), e.explainedClass);
        // A "map" of random values, judged by the same check.
        randomMap += await deletionAuc(image, randomOrder(784, 5000 + index), e.explainedClass);
      }
      // The check: mean deletion AUC at most 70% of random order's.
      const faithful = (auc: number) => auc <= 0.7 * random;
      expect(faithful(saliency)).toBe(true);
      expect(faithful(randomMap)).toBe(false);
    });
  });
});
