/**
 * A model version's tensor signature as clients see it: the REST OIP model
 * metadata, gRPC ModelMetadata and the GraphQL Model type all answer this one
 * projection of the served config, so the three doors cannot disagree.
 */
import type { Datatype } from './model-config';
import type { ServedConfig, TensorSpec } from './registry';

/** One input or output: its full shape as a client sends it (-1: variable; the batch axis is -1 when the model batches). */
export interface ServedTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
}

export interface ServedSignature {
  platform: string;
  inputs: ServedTensor[];
  outputs: ServedTensor[];
}

/** What a version that never loaded (config null) reports: Triton's ONNX platform and no tensors. */
const DEFAULT_PLATFORM = 'onnxruntime_onnx';

/** The config keeps dims without the batch axis; a batching model (maxBatchSize > 0) takes [-1, …dims]. */
export function servedSignature(config: ServedConfig | null): ServedSignature {
  if (!config) return { platform: DEFAULT_PLATFORM, inputs: [], outputs: [] };
  const batching = config.maxBatchSize > 0;
  const tensor = (t: TensorSpec): ServedTensor => ({ name: t.name, datatype: t.datatype, shape: batching ? [-1, ...t.dims] : [...t.dims] });
  return { platform: config.platform, inputs: config.inputs.map(tensor), outputs: config.outputs.map(tensor) };
}
