/** The model answers of the Open Inference Protocol and Triton's extensions that REST and gRPC both give, in one shape. */
import type { ModelView } from '../inference/inference.service';
import type { ServedConfig } from '../inference/registry';
import { servedSignature } from '../inference/served-signature';
import { tritonTypeName } from '../inference/triton-config';

/** OIP model metadata: REST's GET /v2/models/{m}[/versions/{v}] and gRPC's ModelMetadata. */
export function modelMetadata(v: ModelView) {
  const { platform, inputs, outputs } = servedSignature(v.config);
  return { name: v.name, versions: v.versions.map((x) => x.version), platform, inputs, outputs };
}

/** Triton's ModelConfig, for the fields modelgate serves with: REST's /config (its JSON form) and gRPC's ModelConfig answer the same fields. */
export function tritonModelConfig(config: ServedConfig) {
  const tensor = (t: { name: string; datatype: string; dims: number[] }) => ({ name: t.name, data_type: tritonTypeName(t.datatype), dims: t.dims });
  return {
    name: config.name,
    platform: config.platform,
    backend: 'onnxruntime',
    max_batch_size: config.maxBatchSize,
    input: config.inputs.map(tensor),
    output: config.outputs.map(tensor),
    ...(config.maxBatchSize > 0
      ? {
          dynamic_batching: {
            preferred_batch_size: config.preferredBatchSizes,
            max_queue_delay_microseconds: Math.round(config.maxQueueDelayMs * 1000),
            default_queue_policy: { max_queue_size: config.maxQueueSize },
          },
        }
      : {}),
    parameters: {
      configSource: { string_value: config.source },
      cost: { string_value: String(config.cost) },
      // Fields of a Triton config.pbtxt (or a load's Triton JSON) that modelgate does not honour.
      ...(config.warnings.length > 0 ? { configWarnings: { string_value: config.warnings.join('; ') } } : {}),
    },
  };
}
