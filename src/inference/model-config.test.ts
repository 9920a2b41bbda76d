import { mkdtempSync, mkdirSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ModelConfigError, parseModelConfig, scanRepository } from './model-config';
import { parsePbtxtConfig, readModelConfig } from './triton-config';

const MODELS = path.resolve(__dirname, '../../models');

describe('model repository', () => {
  it('finds the five committed models, skipping training folders, and validates their configs', async () => {
    const entries = await scanRepository(MODELS);
    expect(entries.map((e) => e.name)).toEqual(['fashion-attention', 'fashion-cnn', 'fashion-hybrid', 'fashion-lstm', 'word-language']);
    for (const entry of entries) {
      expect(entry.versions).toEqual([1]);
      const config = await readModelConfig(entry);
      if (entry.name === 'word-language') {
        expect(config?.inputs).toEqual([{ name: 'text', datatype: 'BYTES', dims: [1] }]);
        continue;
      }
      expect(config?.labels).toHaveLength(10);
      expect(config?.inputs[0]).toMatchObject({ name: 'image', datatype: 'FP32', dims: [1, 28, 28] });
    }
  });

  it('serves a folder with only an ONNX file (config derived later from the graph)', async () => {
    const root = mkdtempSync(path.join(os.tmpdir(), 'mg-repo-'));
    mkdirSync(path.join(root, 'bare', '3'), { recursive: true });
    copyFileSync(path.join(MODELS, 'fashion-cnn', '1', 'model.onnx'), path.join(root, 'bare', '3', 'model.onnx'));
    mkdirSync(path.join(root, 'notes'));
    const entries = await scanRepository(root);
    expect(entries).toEqual([expect.objectContaining({ name: 'bare', versions: [3], configFile: null })]);
  });

  it.each([
    ['{ not json', /not valid JSON/],
    [JSON.stringify({ name: 'm', platform: 'tensorflow', max_batch_size: 1, inputs: [], outputs: [] }), /platform: Invalid literal value/],
    [
      JSON.stringify({ name: 'm', platform: 'onnxruntime_onnx', max_batch_size: 8, inputs: [{ name: 'x', datatype: 'FP33', dims: [1] }], outputs: [{ name: 'y', datatype: 'FP32', dims: [1] }] }),
      /inputs\.0\.datatype/,
    ],
    [
      JSON.stringify({
        name: 'm', platform: 'onnxruntime_onnx', max_batch_size: 8,
        dynamic_batching: { preferred_batch_size: [16] },
        inputs: [{ name: 'x', datatype: 'FP32', dims: [1] }], outputs: [{ name: 'y', datatype: 'FP32', dims: [1] }],
      }),
      /dynamic_batching\.preferred_batch_size: 16 exceeds max_batch_size 8/,
    ],
  ])('rejects a bad config with the file and field named (%#)', (text, pattern) => {
    expect(() => parseModelConfig('/repo/m/config.json', text)).toThrow(ModelConfigError);
    expect(() => parseModelConfig('/repo/m/config.json', text)).toThrow(/\/repo\/m\/config\.json/);
    expect(() => parseModelConfig('/repo/m/config.json', text)).toThrow(pattern);
  });

  it('requires the name to match the folder', () => {
    const text = JSON.stringify({ name: 'other', platform: 'onnxruntime_onnx', max_batch_size: 0, inputs: [{ name: 'x', datatype: 'FP32', dims: [1] }], outputs: [{ name: 'y', datatype: 'FP32', dims: [1] }] });
    expect(() => parseModelConfig('/r/m/config.json', text, 'm')).toThrow(/must match its folder "m"/);
  });
});

describe('model_warmup (Triton\'s warm-up samples)', () => {
  const base = {
    name: 'm',
    platform: 'onnxruntime_onnx',
    max_batch_size: 8,
    inputs: [{ name: 'x', datatype: 'FP32', dims: [2, -1] }],
    outputs: [{ name: 'y', datatype: 'FP32', dims: [1] }],
  };
  const parse = (model_warmup: unknown) => parseModelConfig('/r/m/config.json', JSON.stringify({ ...base, model_warmup }));

  it('takes zero, random, file and inline samples with Triton\'s defaults (batch_size 1, count 1) and TYPE_ names', () => {
    const config = parse([
      { inputs: { x: { dims: [2, 3], zero_data: true } } },
      { name: 'r', batch_size: 8, count: 5, inputs: { x: { data_type: 'TYPE_FP32', dims: [2, 4], random_data: true } } },
      { inputs: { x: { dims: [2, 1], input_data_file: 'x.raw' } } },
      { inputs: { x: { dims: [2, 1], data: [0.5, 1] } } },
    ]);
    expect(config.model_warmup?.map((w) => [w.name, w.batch_size, w.count])).toEqual([['warmup', 1, 1], ['r', 8, 5], ['warmup', 1, 1], ['warmup', 1, 1]]);
    expect(config.model_warmup?.[1]?.inputs['x']?.data_type).toBe('FP32');
  });

  it.each([
    [[{ inputs: { x: { dims: [2, 3] } } }], /exactly one of zero_data, random_data, input_data_file or data/],
    [[{ inputs: { x: { dims: [2, 3], zero_data: true, random_data: true } } }], /exactly one of/],
    [[{ inputs: { x: { zero_data: true } } }], /does not fit the input's dims \[2,-1\]/],
    [[{ inputs: { x: { dims: [3, 3], zero_data: true } } }], /model_warmup\.0\.inputs\.x\.dims/],
    [[{ inputs: { x: { dims: [2, 3], data_type: 'INT64', zero_data: true } } }], /is INT64 but the input is FP32/],
    [[{ inputs: { x: { dims: [2, 3], data: [1, 2] } } }], /has 2 values; dims \[2,3\] take 6/],
    [[{ batch_size: 9, inputs: { x: { dims: [2, 3], zero_data: true } } }], /9 exceeds max_batch_size 8/],
    [[{ inputs: { z: { dims: [2, 3], zero_data: true } } }], /no input "z"/],
    [[{ inputs: { x: { dims: [2, 3], input_data_file: '../x.raw' } } }], /warmup\/ \(no path\)/],
    [[{ count: 10_001, inputs: { x: { dims: [2, 3], zero_data: true } } }], /count/],
  ])('refuses a sample that cannot feed the model (%#)', (samples, pattern) => {
    expect(() => parse(samples)).toThrow(pattern);
  });

  it('warms a BYTES input up with zero_data (empty strings) only, TYPE_STRING naming it', () => {
    const strings = { ...base, inputs: [{ name: 't', datatype: 'BYTES', dims: [1] }] };
    const config = parseModelConfig('/r/m/config.json', JSON.stringify({ ...strings, model_warmup: [{ inputs: { t: { data_type: 'TYPE_STRING', zero_data: true } } }] }));
    expect(config.model_warmup?.[0]?.inputs['t']?.data_type).toBe('BYTES');
    expect(() => parseModelConfig('/r/m/config.json', JSON.stringify({ ...strings, model_warmup: [{ inputs: { t: { random_data: true } } }] }))).toThrow(/a BYTES input warms up with zero_data/);
  });

  it('reads model_warmup from config.pbtxt as Triton writes it', () => {
    const config = parsePbtxtConfig(
      'm',
      `max_batch_size: 8
       input [ { name: "x" data_type: TYPE_FP32 dims: [ 2, -1 ] } ]
       output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
       model_warmup [ { name: "w" batch_size: 4 count: 3 inputs { key: "x" value: { data_type: TYPE_FP32 dims: [ 2, 5 ] random_data: true } } } ]`,
    );
    expect(config.model_warmup).toEqual([{ name: 'w', batch_size: 4, count: 3, inputs: { x: { data_type: 'FP32', dims: [2, 5], random_data: true } } }]);
    expect(config.warnings ?? []).toEqual([]);
  });
});
