/**
 * @jest-environment ./test/models/ort-environment.js
 *
 * Contract tests for the ONNX models in models/<name>/1/model.onnx.
 *
 * Fixtures (test/fixtures/, written by models/train.py):
 *   fashion-mnist-test-1000.bin         first 1,000 Fashion-MNIST test images, uint8, 1000 x 784
 *   fashion-mnist-test-1000-labels.bin  their labels, uint8 x 1000
 *   manifest.json                       byte length + sha256 of the two files above
 *   reference/<model>.json              PyTorch outputs for the first 16 images (pixel / 255)
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import * as ort from 'onnxruntime-node';

const ROOT = path.resolve(__dirname, '..', '..');
const MODELS_DIR = path.join(ROOT, 'models');
const FIXTURES = path.join(ROOT, 'test', 'fixtures');
const IMAGES_FILE = path.join(FIXTURES, 'fashion-mnist-test-1000.bin');
const LABELS_FILE = path.join(FIXTURES, 'fashion-mnist-test-1000-labels.bin');
const MANIFEST_FILE = path.join(FIXTURES, 'manifest.json');

const MODEL_NAMES = ['fashion-cnn', 'fashion-lstm', 'fashion-attention', 'fashion-hybrid'] as const;
const ATTENTION_MODELS: ReadonlySet<string> = new Set(['fashion-attention', 'fashion-hybrid']);
const N_IMAGES = 1000;
const PIXELS = 28 * 28;
const N_CLASSES = 10;

interface TensorSpec {
  name: string;
  datatype: string;
  dims: number[];
}
interface ModelConfig {
  name: string;
  platform: string;
  max_batch_size: number;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  output_kind: string;
  preprocessing: { layout: string; color: string; width: number; height: number; scale: number; invert: boolean };
  labels: string[];
  cost: number;
  card: {
    test_accuracy: number;
    target_accuracy: number;
    parameters: number;
    flops_per_image: number;
    cpu_ms_per_image_batch1: number;
    cpu_ms_per_image_batch64: number;
    onnx_opset: number;
    size_bytes: number;
  };
}
interface Reference {
  labels: number[];
  probabilities: number[][];
  attention?: number[][];
}
type Outputs = Record<string, { data: Float32Array; dims: readonly number[] }>;

// ------------------------------------------------------------------ helpers

/** Index access that fails loudly instead of yielding undefined. */
function at<T>(xs: ArrayLike<T>, i: number, what = 'value'): T {
  const v = xs[i];
  if (v === undefined) throw new Error(`${what}: index ${i} out of range (length ${xs.length})`);
  return v;
}

function corrupt(file: string, why: string): Error {
  return new Error(`fixture ${file} is missing or corrupt: ${why}`);
}

function readFixture(file: string, expectedBytes: number): Uint8Array {
  let buf: Buffer;
  try {
    buf = fs.readFileSync(file);
  } catch (e) {
    throw corrupt(file, (e as Error).message);
  }
  if (buf.length !== expectedBytes) throw corrupt(file, `${buf.length} bytes, expected ${expectedBytes}`);
  let manifest: { files?: Record<string, { bytes?: number; sha256?: string }> };
  try {
    manifest = JSON.parse(fs.readFileSync(MANIFEST_FILE, 'utf8')) as typeof manifest;
  } catch (e) {
    throw corrupt(MANIFEST_FILE, (e as Error).message);
  }
  const entry = manifest.files?.[path.basename(file)];
  if (!entry || typeof entry.sha256 !== 'string') throw corrupt(MANIFEST_FILE, `no sha256 entry for ${path.basename(file)}`);
  const sha = createHash('sha256').update(buf).digest('hex');
  if (sha !== entry.sha256) throw corrupt(file, `sha256 ${sha} does not match ${entry.sha256} in ${MANIFEST_FILE}`);
  // A Buffer may view a shared pool; copy out exactly its bytes.
  return new Uint8Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength));
}

function readJson<T>(file: string, kind: 'fixture' | 'config'): T {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
  } catch (e) {
    if (kind === 'fixture') throw corrupt(file, (e as Error).message);
    throw new Error(`${file} is missing or not valid JSON: ${(e as Error).message}`);
  }
}

function readReference(name: string, hasAttention: boolean): Reference {
  const file = path.join(FIXTURES, 'reference', `${name}.json`);
  const ref = readJson<Reference>(file, 'fixture');
  const ok2d = (m: unknown, cols: number | null): m is number[][] =>
    Array.isArray(m) &&
    m.length === 16 &&
    m.every((r) => Array.isArray(r) && (cols === null || r.length === cols) && r.every((v) => typeof v === 'number' && Number.isFinite(v)));
  if (!ok2d(ref.probabilities, N_CLASSES)) throw corrupt(file, 'probabilities must be 16 rows of 10 finite numbers');
  if (hasAttention && !ok2d(ref.attention, null)) throw corrupt(file, 'attention must be 16 rows of finite numbers');
  return ref;
}

/** uint8 images [start, start+count) -> float32 NCHW tensor, pixel / 255. */
function imageTensor(images: Uint8Array, start: number, count: number): ort.Tensor {
  const f = new Float32Array(count * PIXELS);
  for (let i = 0; i < f.length; i++) f[i] = at(images, start * PIXELS + i, 'image pixel') / 255;
  return new ort.Tensor('float32', f, [count, 1, 28, 28]);
}

async function run(session: ort.InferenceSession, input: ort.Tensor): Promise<Outputs> {
  const raw = await session.run({ image: input });
  const out: Outputs = {};
  for (const [k, v] of Object.entries(raw)) {
    if (!(v instanceof ort.Tensor) || !(v.data instanceof Float32Array)) throw new Error(`output ${k} is not a float32 tensor`);
    out[k] = { data: v.data, dims: v.dims };
  }
  return out;
}

function output(outs: Outputs, name: string): { data: Float32Array; dims: readonly number[] } {
  const o = outs[name];
  if (!o) throw new Error(`model produced no output named ${name}; got ${Object.keys(outs).join(', ')}`);
  return o;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(at(a, i) - at(b, i)));
  return m;
}

function argmax(row: ArrayLike<number>, offset: number, n: number): number {
  let best = 0;
  for (let k = 1; k < n; k++) if (at(row, offset + k) > at(row, offset + best)) best = k;
  return best;
}

// ------------------------------------------------------------------ fixtures (loaded lazily so a bad file fails the tests, not the module)

let images: Uint8Array | undefined;
let labels: Uint8Array | undefined;
function fixtures(): { images: Uint8Array; labels: Uint8Array } {
  images ??= readFixture(IMAGES_FILE, N_IMAGES * PIXELS);
  if (!labels) {
    labels = readFixture(LABELS_FILE, N_IMAGES);
    const bad = labels.findIndex((l) => l >= N_CLASSES);
    if (bad >= 0) throw corrupt(LABELS_FILE, `label ${at(labels, bad)} at index ${bad} is not a class id`);
  }
  return { images, labels };
}

describe('test fixtures', () => {
  it('are present and intact', () => {
    const f = fixtures();
    expect(f.images.length).toBe(784_000);
    expect(f.labels.length).toBe(1_000);
  });

  it('name the file when one is corrupt', () => {
    expect(() => readFixture(path.join(FIXTURES, 'no-such-fixture.bin'), 10)).toThrow(/fixture .*no-such-fixture\.bin is missing or corrupt/);
    expect(() => readFixture(LABELS_FILE, N_IMAGES + 1)).toThrow(/fixture .*fashion-mnist-test-1000-labels\.bin is missing or corrupt: 1000 bytes/);
  });
});

describe.each(MODEL_NAMES)('%s', (name) => {
  const modelFile = path.join(MODELS_DIR, name, '1', 'model.onnx');
  const hasAttention = ATTENTION_MODELS.has(name);
  let config: ModelConfig;
  let session: ort.InferenceSession;

  beforeAll(async () => {
    config = readJson<ModelConfig>(path.join(MODELS_DIR, name, 'config.json'), 'config');
    session = await ort.InferenceSession.create(modelFile, {
      executionProviders: ['cpu'],
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
      executionMode: 'sequential',
    });
  });

  afterAll(async () => {
    await session?.release();
  });

  it('loads, and config.json matches the ONNX graph', () => {
    expect(config.name).toBe(name);
    expect(config.platform).toBe('onnxruntime_onnx');
    expect(session.inputNames).toEqual(config.inputs.map((i) => i.name));
    expect(session.outputNames).toEqual(config.outputs.map((o) => o.name));
    expect(config.inputs).toEqual([{ name: 'image', datatype: 'FP32', dims: [1, 28, 28] }]);
    expect(config.outputs.map((o) => o.name)).toEqual(hasAttention ? ['probabilities', 'attention'] : ['probabilities']);

    const shapeOf = (meta: readonly ort.InferenceSession.ValueMetadata[], i: number): ReadonlyArray<number | string> => {
      const m = at(meta, i, 'metadata');
      if (!m.isTensor) throw new Error(`${m.name} is not a tensor`);
      expect(m.type).toBe('float32');
      return m.shape;
    };
    config.inputs.forEach((spec, i) => {
      const shape = shapeOf(session.inputMetadata, i);
      expect(typeof shape[0]).toBe('string'); // dynamic batch axis
      expect(shape.slice(1)).toEqual(spec.dims);
    });
    config.outputs.forEach((spec, i) => {
      const shape = shapeOf(session.outputMetadata, i);
      expect(typeof shape[0]).toBe('string');
      expect(shape.slice(1)).toEqual(spec.dims);
      expect(spec.datatype).toBe('FP32');
    });

    expect(config.preprocessing).toEqual({ layout: 'NCHW', color: 'grey', width: 28, height: 28, scale: 1 / 255, invert: false });
    expect(config.labels).toHaveLength(N_CLASSES);
    expect(config.card.size_bytes).toBe(fs.statSync(modelFile).size);
    expect(config.card.size_bytes).toBeLessThanOrEqual(5 * 1024 * 1024);
    expect(config.card.onnx_opset).toBeGreaterThanOrEqual(13);
    expect(config.card.onnx_opset).toBeLessThanOrEqual(17);
    expect(config.cost).toBeGreaterThan(0);
    expect(config.card.cpu_ms_per_image_batch1).toBeGreaterThan(0);
    expect(config.card.cpu_ms_per_image_batch64).toBeGreaterThan(0);
  });

  it('matches the PyTorch reference outputs within 1e-4', async () => {
    const ref = readReference(name, hasAttention);
    const f = fixtures();
    expect(ref.labels).toEqual(Array.from(f.labels.subarray(0, 16)));
    const outs = await run(session, imageTensor(f.images, 0, 16));
    const probs = output(outs, 'probabilities');
    expect(probs.dims).toEqual([16, N_CLASSES]);
    expect(maxAbsDiff(probs.data, ref.probabilities.flat())).toBeLessThanOrEqual(1e-4);
    if (hasAttention) {
      const att = output(outs, 'attention');
      const width = at(config.outputs, 1).dims[0] ?? -1;
      expect(att.dims).toEqual([16, width]);
      expect(maxAbsDiff(att.data, (ref.attention ?? []).flat())).toBeLessThanOrEqual(1e-4);
    }
  });

  it('reaches its card accuracy (minus 0.02) on the 1,000-image fixture, with attention rows that are distributions', async () => {
    const f = fixtures();
    let correct = 0;
    const batch = 250;
    for (let s = 0; s < N_IMAGES; s += batch) {
      const outs = await run(session, imageTensor(f.images, s, batch));
      const probs = output(outs, 'probabilities');
      expect(probs.dims).toEqual([batch, N_CLASSES]);
      for (let i = 0; i < batch; i++) {
        let sum = 0;
        for (let k = 0; k < N_CLASSES; k++) sum += at(probs.data, i * N_CLASSES + k);
        expect(Math.abs(sum - 1)).toBeLessThanOrEqual(1e-4);
        if (argmax(probs.data, i * N_CLASSES, N_CLASSES) === at(f.labels, s + i)) correct++;
      }
      if (hasAttention) {
        const att = output(outs, 'attention');
        const width = at(att.dims, 1, 'attention dims');
        for (let i = 0; i < batch; i++) {
          let sum = 0;
          let min = Infinity;
          for (let k = 0; k < width; k++) {
            const v = at(att.data, i * width + k);
            sum += v;
            min = Math.min(min, v);
          }
          expect(min).toBeGreaterThanOrEqual(0);
          expect(Math.abs(sum - 1)).toBeLessThanOrEqual(1e-4);
        }
      }
    }
    const accuracy = correct / N_IMAGES;
    expect(accuracy).toBeGreaterThanOrEqual(config.card.test_accuracy - 0.02);
  });

  it('gives the same per-image results at batch 1 and batch 64 (within 1e-5)', async () => {
    const f = fixtures();
    const big = await run(session, imageTensor(f.images, 0, 64));
    for (const spec of config.outputs) {
      const width = at(spec.dims, 0, `${spec.name} dims`);
      expect(output(big, spec.name).dims).toEqual([64, width]);
    }
    for (let i = 0; i < 64; i++) {
      const one = await run(session, imageTensor(f.images, i, 1));
      for (const spec of config.outputs) {
        const width = at(spec.dims, 0, `${spec.name} dims`);
        const row = output(big, spec.name).data.subarray(i * width, (i + 1) * width);
        const single = output(one, spec.name);
        expect(single.dims).toEqual([1, width]);
        const diff = maxAbsDiff(single.data, row);
        if (diff > 1e-5) throw new Error(`${spec.name} of image ${i}: batch-1 vs batch-64 differ by ${diff}`);
      }
    }
  });
});

/**
 * word-language (models/word-language): the seed model that takes strings.
 * Its graph's tensors are the config's, it runs onnxruntime string tensors,
 * and on 600 of its held-out words (100 per language; sha256 in the
 * manifest) it scores near the card's accuracy on all 18,000.
 */
describe('word-language', () => {
  const dir = path.join(MODELS_DIR, 'word-language');
  const fixture = path.join(FIXTURES, 'word-language-heldout-600.tsv');
  let session: ort.InferenceSession;
  let config: { inputs: TensorSpec[]; outputs: TensorSpec[]; labels: string[]; card: { heldout_accuracy: number; size_bytes: number } };

  beforeAll(async () => {
    config = readJson(path.join(dir, 'config.json'), 'config');
    session = await ort.InferenceSession.create(path.join(dir, '1', 'model.onnx'), { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  });
  afterAll(async () => {
    await session?.release();
  });

  it('declares in its graph the tensors its config names (text BYTES in; probabilities FP32 and language BYTES out) and stays small', () => {
    expect(session.inputNames).toEqual(config.inputs.map((i) => i.name));
    expect(session.outputNames).toEqual(config.outputs.map((o) => o.name));
    expect(config.inputs).toEqual([{ name: 'text', datatype: 'BYTES', dims: [1] }]);
    const size = fs.statSync(path.join(dir, '1', 'model.onnx')).size;
    expect(size).toBe(config.card.size_bytes);
    expect(size).toBeLessThan(1024 * 1024);
  });

  it('labels held-out words near its card accuracy, with probabilities that sum to 1 and agree with the label', async () => {
    const entry = (readJson<{ files: Record<string, { bytes: number }> }>(MANIFEST_FILE, 'fixture').files['word-language-heldout-600.tsv'])!;
    const rows = Buffer.from(readFixture(fixture, entry.bytes)).toString('utf8').trim().split('\n').map((line) => line.split('\t') as [string, string]);
    expect(rows).toHaveLength(600);
    const out = await session.run({ text: new ort.Tensor('string', rows.map(([, word]) => word), [rows.length, 1]) });
    const labels = out['language']!.data as string[];
    const probabilities = out['probabilities']!.data as Float32Array;
    let correct = 0;
    rows.forEach(([language], i) => {
      const row = Array.from(probabilities.subarray(i * 6, i * 6 + 6));
      expect(Math.abs(row.reduce((a, b) => a + b, 0) - 1)).toBeLessThan(1e-5);
      expect(labels[i]).toBe(config.labels[row.indexOf(Math.max(...row))]);
      if (labels[i] === language) correct += 1;
    });
    // 600 of the 18,000: the sampling error of an 0.85 accuracy is about 0.015.
    expect(correct / rows.length).toBeGreaterThanOrEqual(config.card.heldout_accuracy - 0.05);
  });
});
