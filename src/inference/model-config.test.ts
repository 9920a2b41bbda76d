import { mkdtempSync, mkdirSync, copyFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ModelConfigError, parseModelConfig, scanRepository } from './model-config';
import { readModelConfig } from './triton-config';

const MODELS = path.resolve(__dirname, '../../models');

describe('model repository', () => {
  it('finds the four committed models, skipping training folders, and validates their configs', async () => {
    const entries = await scanRepository(MODELS);
    expect(entries.map((e) => e.name)).toEqual(['fashion-attention', 'fashion-cnn', 'fashion-hybrid', 'fashion-lstm']);
    for (const entry of entries) {
      expect(entry.versions).toEqual([1]);
      const config = await readModelConfig(entry);
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
