import type { ServedConfig } from './registry';
import { servedSignature } from './served-signature';

const config = (maxBatchSize: number): ServedConfig =>
  ({
    platform: 'onnxruntime_onnx',
    maxBatchSize,
    inputs: [{ name: 'image', datatype: 'FP32', dims: [1, 28, 28] }],
    outputs: [{ name: 'probabilities', datatype: 'FP32', dims: [-1] }],
  }) as ServedConfig; // only the fields the signature reads

describe('served tensor signature', () => {
  it('puts the variable batch axis in front of every tensor of a batching model', () => {
    expect(servedSignature(config(32))).toEqual({
      platform: 'onnxruntime_onnx',
      inputs: [{ name: 'image', datatype: 'FP32', shape: [-1, 1, 28, 28] }],
      outputs: [{ name: 'probabilities', datatype: 'FP32', shape: [-1, -1] }],
    });
  });

  it('gives the dims as they are when the model does not batch', () => {
    expect(servedSignature(config(0)).inputs).toEqual([{ name: 'image', datatype: 'FP32', shape: [1, 28, 28] }]);
  });

  it('answers the ONNX platform and no tensors for a version that never loaded', () => {
    expect(servedSignature(null)).toEqual({ platform: 'onnxruntime_onnx', inputs: [], outputs: [] });
  });
});
