/**
 * GraphQL types of the inference API, shaped after the Open Inference
 * Protocol (KServe v2): tensors are {name, datatype, shape, data}, with
 * `dataBase64` (raw little-endian bytes) as the fast alternative to JSON
 * numbers, both for inputs and, as the client selects, for outputs.
 */
import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { EXPLAIN_BOUNDS } from '../../../inference/explain';
import type { Explanation } from '../../../inference/inference.service';
import { DATATYPES, type Datatype } from '../../../inference/model-config';
import { decodeNumbers, decodeStrings } from '../../../inference/tensor';
import { BadInputError } from '../../../errors';
import type { ModelStatus as ModelStatusName } from '../../../inference/registry';

export enum TensorDatatype {
  BOOL = 'BOOL',
  UINT8 = 'UINT8',
  UINT16 = 'UINT16',
  UINT32 = 'UINT32',
  UINT64 = 'UINT64',
  INT8 = 'INT8',
  INT16 = 'INT16',
  INT32 = 'INT32',
  INT64 = 'INT64',
  FP16 = 'FP16',
  FP32 = 'FP32',
  FP64 = 'FP64',
  BYTES = 'BYTES',
}
registerEnumType(TensorDatatype, {
  name: 'TensorDatatype',
  description: `Element types (${DATATYPES.join(', ')}), named as in KServe v2 / Triton; dataBase64 holds them little-endian`,
  valuesConfig: {
    BOOL: { description: 'Boolean, one byte per element (0 or 1)' },
    UINT8: { description: 'Unsigned 8-bit integer' },
    UINT16: { description: 'Unsigned 16-bit integer' },
    UINT32: { description: 'Unsigned 32-bit integer' },
    UINT64: { description: 'Unsigned 64-bit integer (JSON numbers are exact only to 2^53)' },
    INT8: { description: 'Signed 8-bit integer' },
    INT16: { description: 'Signed 16-bit integer' },
    INT32: { description: 'Signed 32-bit integer' },
    INT64: { description: 'Signed 64-bit integer (JSON numbers are exact only to ±2^53)' },
    FP16: { description: 'IEEE 754 half precision (JSON numbers rounded to nearest, ties to even)' },
    FP32: { description: 'IEEE 754 single precision' },
    FP64: { description: 'IEEE 754 double precision' },
    BYTES: { description: 'Strings (onnx tensor(string), UTF-8): strings on input and output; dataBase64 holds each element as a 4-byte little-endian length, then its bytes' },
  },
});

export enum ModelStatus {
  LOADING = 'LOADING',
  READY = 'READY',
  FAILED = 'FAILED',
  UNLOADED = 'UNLOADED',
}
registerEnumType(ModelStatus, {
  name: 'ModelStatus',
  description: 'Lifecycle of a model version in this gateway process',
  valuesConfig: {
    LOADING: { description: 'Workers are loading it; requests wait or get MODEL_UNAVAILABLE' },
    READY: { description: 'Every worker loaded it and a warm-up run succeeded: it serves' },
    FAILED: { description: 'Loading failed (see reason); requests get MODEL_UNAVAILABLE' },
    UNLOADED: { description: 'Unloaded by unloadModel; loadModel brings it back' },
  },
});
export const toModelStatus = (status: ModelStatusName): ModelStatus => ModelStatus[status];

export enum ModelConfigSource {
  CONFIG = 'CONFIG',
  DERIVED = 'DERIVED',
}
registerEnumType(ModelConfigSource, {
  name: 'ModelConfigSource',
  description: 'Where a model version\'s contract (inputs, outputs, batching) comes from',
  valuesConfig: {
    CONFIG: { description: 'Its config.json' },
    DERIVED: { description: 'Read from the ONNX graph (no config.json; no labels or preprocessing)' },
  },
});

@ObjectType('TensorSpec', { description: 'A model input or output' })
export class TensorSpecType {
  @Field({ description: 'Tensor name, as used in infer inputs and outputs' })
  name!: string;

  @Field(() => TensorDatatype, { description: 'Element type' })
  datatype!: TensorDatatype;

  @Field(() => [Int], { description: 'Full shape as a client sends it; -1 is variable (the batch axis is -1 when the model batches)' })
  shape!: number[];
}

@ObjectType('ModelStats', { description: 'Counters since this gateway process loaded the version' })
export class ModelStatsType {
  @Field(() => Float, { description: 'Successful requests' })
  requests!: number;

  @Field(() => Float, { description: 'Failed requests (any reason)' })
  failures!: number;

  @Field(() => Float, { description: 'Items inferred' })
  inferences!: number;

  @Field(() => Float, { description: 'Model executions (batches run)' })
  executions!: number;

  @Field(() => Float, { description: 'Items per execution' })
  meanBatchSize!: number;

  @Field(() => Float, { description: 'Mean milliseconds a request waited for its batch (0 before the first request)' })
  meanQueueMs!: number;

  @Field(() => Float, { description: 'Mean milliseconds of model execution per request (0 before the first request)' })
  meanComputeMs!: number;

  @Field(() => Int, { description: 'Requests waiting now' })
  pending!: number;
}

export enum ModelWeightsSource {
  SEED = 'SEED',
  CATALOG = 'CATALOG',
}
registerEnumType(ModelWeightsSource, {
  name: 'ModelWeightsSource',
  description: 'Where a version\'s weights come from',
  valuesConfig: {
    SEED: { description: 'The read-only seed repository (MODEL_REPOSITORY) every replica loads at start' },
    CATALOG: { description: 'Published through the API: content-addressed weights in the fleet-wide catalog' },
  },
});

export enum ModelDesiredState {
  LOADED = 'LOADED',
  UNLOADED = 'UNLOADED',
}
registerEnumType(ModelDesiredState, {
  name: 'ModelDesiredState',
  description: 'Whether the fleet-wide catalog wants every replica to serve a version',
  valuesConfig: {
    LOADED: { description: 'Every replica serves it' },
    UNLOADED: { description: 'No replica serves it' },
  },
});

export enum ModelChangeWait {
  REPLICA = 'REPLICA',
  FLEET = 'FLEET',
}
registerEnumType(ModelChangeWait, {
  name: 'ModelChangeWait',
  description: 'When a model management mutation answers',
  valuesConfig: {
    REPLICA: { description: 'Once the replica that took the call applied the change (every other replica follows on its own)' },
    FLEET: { description: 'Once every live replica reached the change\'s catalog generation, or waitTimeoutMs passed; the answer says which replicas lag' },
  },
});

@ObjectType('ReplicaVersionState', { description: 'One model version\'s state on one replica, as that replica last reported it' })
export class ReplicaVersionStateType {
  @Field({ description: 'The replica\'s id (one per gateway process, new at every start)' })
  replica!: string;

  @Field({ description: 'Host name of the replica' })
  host!: string;

  @Field(() => Int, { description: 'Process id of the replica on its host' })
  pid!: number;

  @Field(() => Float, { description: 'The highest catalog generation the replica has reconciled' })
  generation!: number;

  @Field(() => ModelStatus, { description: 'The version\'s state on that replica (UNLOADED when it holds none)' })
  status!: ModelStatus;

  @Field(() => String, { nullable: true, description: 'Why the replica could not apply the version\'s last change, or why it failed; null otherwise' })
  reason!: string | null;

  @Field(() => Float, { nullable: true, description: 'The catalog generation the replica last applied for the version; null: none' })
  appliedGeneration!: number | null;

  @Field({ description: 'True while the replica\'s generation is behind the version\'s catalog generation' })
  lagging!: boolean;
}

@ObjectType('ReplicaConvergence', { description: 'One live replica\'s progress on a change' })
export class ReplicaConvergenceType {
  @Field({ description: 'The replica\'s id' })
  replica!: string;

  @Field({ description: 'Host name of the replica' })
  host!: string;

  @Field(() => Int, { description: 'Process id of the replica on its host' })
  pid!: number;

  @Field(() => Float, { description: 'The highest catalog generation the replica has reconciled' })
  generation!: number;

  @Field({ description: 'True when the replica had not reached the change\'s generation when the wait ended' })
  lagging!: boolean;

  @Field(() => [String], { description: 'The model\'s versions the replica could not apply, each with why' })
  failures!: string[];
}

@ObjectType('FleetConvergence', { description: 'Where every live replica stands on one catalog change' })
export class FleetConvergenceType {
  @Field(() => Float, { description: 'The change\'s catalog generation' })
  generation!: number;

  @Field({ description: 'True when every live replica reached the generation and applied the change without failure' })
  converged!: boolean;

  @Field(() => Int, { description: 'Milliseconds spent waiting for the fleet after this replica applied the change' })
  waitedMs!: number;

  @Field(() => [ReplicaConvergenceType], { description: 'Every live replica (one that reported within three heartbeats), lagging or not' })
  replicas!: ReplicaConvergenceType[];
}

@ObjectType('ModelCatalogVersion', { description: 'One model version as the fleet-wide catalog and this replica see it' })
export class ModelCatalogVersionType {
  @Field({ description: 'Model name' })
  model!: string;

  @Field({ description: 'Version number, e.g. 1' })
  version!: string;

  @Field(() => ModelWeightsSource, { description: 'Where the weights come from: the seed repository or the catalog' })
  source!: ModelWeightsSource;

  @Field(() => ModelDesiredState, { description: 'LOADED unless an unload set it otherwise' })
  desiredState!: ModelDesiredState;

  @Field(() => String, { nullable: true, description: 'SHA-256 (hex) of catalog weights; null for the seed\'s own files' })
  digest!: string | null;

  @Field(() => Float, { nullable: true, description: 'Catalog generation of the version\'s last change; null: never changed through the catalog' })
  generation!: number | null;

  @Field(() => ModelStatus, { description: 'This replica\'s state of the version (UNLOADED when it holds none)' })
  replicaStatus!: ModelStatus;

  @Field(() => String, { nullable: true, description: 'Why this replica could not apply the last change, or why the version failed' })
  replicaReason!: string | null;

  @Field(() => Float, { nullable: true, description: 'The catalog generation this replica last applied for the version' })
  appliedGeneration!: number | null;

  @Field(() => Int, { nullable: true, description: 'Share (0-100) of requests naming no version routed to this one; null when the model has no split' })
  trafficPercent!: number | null;

  @Field(() => Int, { nullable: true, description: 'Share (1-100) of the model\'s served requests also run on this version as a shadow (compared, never answered or billed); null: not the shadow' })
  shadowPercent!: number | null;

  @Field(() => Float, { nullable: true, description: 'How long this replica\'s serving session took to warm up (model_warmup, the slowest worker), in milliseconds; null before it loaded' })
  warmupMs!: number | null;

  @Field(() => Int, { nullable: true, description: 'Warm-up runs of this replica\'s serving session (every model_warmup sample\'s count; 1 without model_warmup); null before it loaded' })
  warmupRuns!: number | null;

  @Field(() => Int, { description: 'Shadow runs of this version compared on this replica since the shadow was set' })
  shadowRuns!: number;

  @Field(() => Int, { description: 'Sampled shadow runs this replica skipped (shed under load, or the version not READY or incompatible)' })
  shadowSkipped!: number;

  @Field(() => Int, { description: 'Shadow runs that failed on this replica (the served answers are unaffected)' })
  shadowFailures!: number;

  @Field(() => Float, { nullable: true, description: 'Share (0-1) of compared items whose top-1 class (argmax of the first output) agreed with the serving version; null before any comparison' })
  shadowTop1Agreement!: number | null;

  @Field(() => Float, { nullable: true, description: 'Largest absolute difference of any output value from the serving version\'s; null before any comparison' })
  shadowMaxAbsDifference!: number | null;
  @Field(() => [ReplicaVersionStateType], { description: 'Every live replica\'s state of the version, as it last reported it (after each reconcile and every MODEL_REPLICA_HEARTBEAT_MS)' })
  replicas!: ReplicaVersionStateType[];
}

@InputType('VersionWeightInput', { description: 'One version\'s share of a traffic split' })
export class VersionWeightInput {
  @Field({ description: 'Version number, e.g. 2' })
  version!: string;

  @Field(() => Int, { description: 'Percent of the requests that name no version, 0 to 100; a split sums to 100' })
  percent!: number;
}

@ObjectType('ModelVersion', { description: 'One version of a model in the repository (a numbered folder beside config.json)' })
export class ModelVersionType {
  @Field({ description: 'Version folder name, e.g. 1' })
  version!: string;

  @Field(() => ModelStatus, { description: 'Where this version stands in this process' })
  status!: ModelStatus;

  @Field(() => String, { nullable: true, description: 'Why the version FAILED (or why its last reload failed)' })
  reason!: string | null;

  @Field(() => String, { nullable: true, description: 'cpu or cuda: the provider that actually runs this version' })
  executionProvider!: string | null;

  @Field(() => ModelWeightsSource, { description: 'Where the serving weights came from: the seed repository or the fleet-wide catalog' })
  source!: ModelWeightsSource;

  @Field(() => String, { nullable: true, description: 'SHA-256 (hex) of catalog weights; null for the seed\'s own files' })
  digest!: string | null;
}

@ObjectType('Model', { description: 'A model in the repository, at one version (the latest READY one unless asked)' })
export class ModelType {
  @Field({ description: 'Repository folder name, used as model in infer and classify' })
  name!: string;

  @Field({ description: 'The version described here' })
  version!: string;

  @Field(() => [ModelVersionType], { description: 'Every version in the repository, with its status' })
  versions!: ModelVersionType[];

  @Field({ description: 'Runtime platform, onnxruntime_onnx' })
  platform!: string;

  @Field(() => ModelStatus, { description: 'Status of this version' })
  status!: ModelStatus;

  @Field(() => String, { nullable: true, description: 'Why the version FAILED, or why its last reload failed while it kept serving; null otherwise' })
  statusReason!: string | null;

  @Field(() => String, { nullable: true, description: 'cpu or cuda: the provider running this version; null until it is loaded' })
  executionProvider!: string | null;

  @Field(() => [TensorSpecType], { description: 'Inputs infer takes (empty until the contract is known)' })
  inputs!: TensorSpecType[];

  @Field(() => [TensorSpecType], { description: 'Outputs infer returns' })
  outputs!: TensorSpecType[];

  @Field(() => Int, { description: '0 means batching is off' })
  maxBatchSize!: number;

  @Field(() => [String], { description: 'Class labels by output index (empty: none in config.json)' })
  labels!: string[];

  @Field({ description: 'Free text from config.json; empty when it has none' })
  description!: string;

  @Field(() => Float, { description: 'Compute units per item (for limits and billing)' })
  cost!: number;

  @Field(() => ModelConfigSource, { nullable: true, description: 'Where the contract comes from; null until the version is read' })
  configSource!: ModelConfigSource | null;

  @Field(() => ModelStatsType, {
    nullable: true,
    description: "Counters of this version in this gateway process, summed over every tenant's traffic: null unless the key has the admin scope (tenants read their own traffic in usageSummary)",
  })
  stats!: ModelStatsType | null;

  @Field(() => FleetConvergenceType, {
    nullable: true,
    description: 'Where the fleet stands on the change this answer follows: set on loadModel, unloadModel and reloadModel called with wait: FLEET; null otherwise',
  })
  fleet?: FleetConvergenceType | null;
}

@InputType({ description: 'One input tensor. Give one of data (JSON numbers), strings (BYTES) or dataBase64 (raw little-endian bytes; BYTES length-prefixed).' })
export class InferInputTensor {
  @Field({ description: 'Input name, as in Model.inputs' })
  name!: string;

  @Field(() => TensorDatatype, { description: 'Element type; must match the model input' })
  datatype!: Datatype;

  @Field(() => [Int], { description: 'Including the batch axis when the model batches, e.g. [4,1,28,28]' })
  shape!: number[];

  @Field(() => [Float], { nullable: true, description: 'Row-major values; INT64 beyond ±2^53 needs dataBase64' })
  data?: number[] | null;

  @Field(() => String, { nullable: true, description: 'Base64 of the raw little-endian elements, row-major (exact, and far smaller than data); BYTES: each element a 4-byte little-endian length, then its UTF-8 bytes' })
  dataBase64?: string | null;

  @Field(() => [String], { nullable: true, description: 'BYTES elements as text, row-major' })
  strings?: string[] | null;
}

@InputType({ description: 'Scheduling options of one infer call' })
export class InferParameters {
  @Field(() => Int, { nullable: true, description: 'Deadline in the queue; dropped with TIMEOUT if still queued then (default INFERENCE_DEFAULT_TIMEOUT_MS)' })
  timeoutMs?: number | null;

  @Field(() => Int, { nullable: true, description: 'Higher runs first among queued requests (-1000..1000, default 0)' })
  priority?: number | null;
}

@InputType({ description: 'One inference request in the Open Inference Protocol shape' })
export class InferInput {
  @Field({ description: 'Model name' })
  model!: string;

  @Field(() => String, { nullable: true, description: 'Default: the latest READY version' })
  version?: string | null;

  @Field(() => ID, { nullable: true, description: 'Echoed back in the result' })
  id?: string | null;

  @Field(() => [InferInputTensor], { description: 'One tensor per model input' })
  inputs!: InferInputTensor[];

  @Field(() => [String], { nullable: true, description: 'Outputs to return (default: all)' })
  outputs?: string[] | null;

  @Field(() => InferParameters, { nullable: true, description: 'Deadline and priority; absent: the defaults' })
  parameters?: InferParameters | null;
}

@ObjectType({ description: 'One output tensor; select data (JSON numbers) or dataBase64 (raw little-endian bytes)' })
export class InferOutputTensor {
  @Field({ description: 'Output name, as in Model.outputs' })
  name!: string;

  @Field(() => TensorDatatype, { description: 'Element type' })
  datatype!: Datatype;

  @Field(() => [Int], { description: 'Actual shape, including the batch axis when the model batches' })
  shape!: number[];

  constructor(name: string, datatype: Datatype, shape: number[], private readonly bytes: Buffer) {
    this.name = name;
    this.datatype = datatype;
    this.shape = shape;
  }

  // An output holding NaN or Infinity answers BAD_USER_INPUT here (JSON numbers cannot carry
  // them); dataBase64 carries every value exactly.
  @Field(() => [Float], { description: 'Row-major values as JSON numbers; BAD_USER_INPUT when the output holds NaN or Infinity (select dataBase64)' })
  get data(): number[] {
    if (this.datatype === 'BYTES') throw new BadInputError(`output "${this.name}" is BYTES: select strings for it`, 'outputs.data', { output: this.name });
    const values = decodeNumbers(this.datatype, this.bytes);
    if (!values.every(Number.isFinite)) {
      throw new BadInputError(`output "${this.name}" holds NaN or Infinity, which JSON numbers cannot carry; select dataBase64 (little-endian bytes) for it`, 'outputs.data', { output: this.name });
    }
    return values;
  }

  @Field({ description: 'Base64 of the raw little-endian elements, row-major (exact for every value); BYTES: each element a 4-byte little-endian length, then its bytes' })
  get dataBase64(): string {
    return this.bytes.toString('base64');
  }

  @Field(() => [String], { nullable: true, description: 'BYTES elements as text, row-major (null for numeric outputs)' })
  get strings(): string[] | null {
    return this.datatype === 'BYTES' ? decodeStrings(this.bytes) : null;
  }
}

@ObjectType({ description: 'Where the time of one call went, in milliseconds' })
export class InferTiming {
  @Field(() => Float, { description: 'Time queued before its batch ran' })
  queueMs!: number;

  @Field(() => Float, { description: 'Execution time of the batch it ran in' })
  computeMs!: number;

  @Field(() => Float, { description: 'Time in the gateway from the call to the answer' })
  totalMs!: number;
}

@ObjectType({ description: 'The answer of infer' })
export class InferResult {
  @Field({ description: 'Model that ran' })
  modelName!: string;

  @Field({ description: 'Version that ran' })
  modelVersion!: string;

  @Field(() => ID, { nullable: true, description: 'The id given in InferInput; null when none was given' })
  id!: string | null;

  @Field(() => [InferOutputTensor], { description: 'The requested outputs (all by default)' })
  outputs!: InferOutputTensor[];

  @Field(() => InferTiming, { description: 'Queue, compute and total milliseconds' })
  timing!: InferTiming;

  @Field({ description: 'cpu or cuda' })
  executionProvider!: string;

  @Field(() => Int, { description: 'Items in the batch this request ran in' })
  batchSize!: number;
}

@InputType({ description: 'An image: image (base64 of a PNG, JPEG or WebP file; any size up to 1024×1024, grey or colour), or raw pixels 0–255 with width and height' })
export class ImageInput {
  @Field(() => String, { nullable: true, description: 'Base64 of an encoded PNG, JPEG or WebP file, at most 8 M characters and 1024×1024 pixels' })
  image?: string | null;

  @Field(() => String, { nullable: true, description: 'The old name of image (it takes JPEG and WebP as well)', deprecationReason: 'Use image: the same base64 of a PNG, JPEG or WebP file' })
  png?: string | null;

  @Field(() => [Float], { nullable: true, description: 'Raw pixel values 0–255, row-major, channels interleaved; width × height × channels of them' })
  pixels?: number[] | null;

  @Field(() => Int, { nullable: true, description: 'Width of pixels, 1..1024 (with pixels only)' })
  width?: number | null;

  @Field(() => Int, { nullable: true, description: 'Height of pixels, 1..1024 (with pixels only)' })
  height?: number | null;

  @Field(() => Int, { nullable: true, description: 'Channels of pixels: 1 (grey, default), 3 (RGB) or 4 (RGBA)' })
  channels?: number | null;
}

@ObjectType({ description: 'One of the top-K classes of an image' })
export class ClassPrediction {
  @Field({ description: 'Class label from the model config (the index as text when it has none)' })
  label!: string;

  @Field(() => Int, { description: 'Class index in the model output' })
  index!: number;

  @Field(() => Float, { description: 'Probability, 0..1 (softmax of the logits for models that output logits)' })
  probability!: number;
}

export enum ExplainMethod {
  OCCLUSION = 'OCCLUSION',
  RISE = 'RISE',
  ATTENTION = 'ATTENTION',
}
registerEnumType(ExplainMethod, {
  name: 'ExplainMethod',
  description: 'How a saliency map is made',
  valuesConfig: {
    OCCLUSION: { description: 'A patch slid over the image; saliency = drop in the class score (1 + patch positions items per image)' },
    RISE: { description: 'Random masks; saliency = score-weighted mean mask (1 + masks items per image)' },
    ATTENTION: { description: 'The attention output of models that have one (no extra items)' },
  },
});

@InputType({ description: 'Explain each image with a saliency map. OCCLUSION and RISE run 1 + perturbations items per image, each billed at the model cost' })
export class ExplainInput {
  @Field(() => ExplainMethod, { description: 'OCCLUSION, RISE or ATTENTION' })
  method!: ExplainMethod;

  @Field(() => Int, { nullable: true, description: `OCCLUSION: patch side in model-input pixels, 1..image side (default ${EXPLAIN_BOUNDS.defaultPatch})` })
  patch?: number | null;

  @Field(() => Int, { nullable: true, description: `OCCLUSION: step between patches, 1..image side (default ${EXPLAIN_BOUNDS.defaultStride}); the last row and column of patches always touch the edge` })
  stride?: number | null;

  @Field(() => Int, { nullable: true, description: `RISE: random masks, 1..${EXPLAIN_BOUNDS.maxMasks} (default ${EXPLAIN_BOUNDS.defaultMasks})` })
  masks?: number | null;

  @Field(() => Int, { nullable: true, description: `RISE: cells per side of the random grid, ${EXPLAIN_BOUNDS.minMaskGrid}..image side (default ${EXPLAIN_BOUNDS.defaultMaskGrid})` })
  maskGrid?: number | null;

  @Field(() => Int, { nullable: true, description: `RISE: seed of the masks, 0..2^31-1 (default ${EXPLAIN_BOUNDS.defaultSeed}); the same seed gives the same map` })
  seed?: number | null;

  @Field(() => Int, { nullable: true, description: 'Class index to explain (default: the top-1 prediction); not for ATTENTION' })
  targetClass?: number | null;

  @Field(() => Boolean, { nullable: true, defaultValue: false, description: 'Also return heatmapPng' })
  heatmap?: boolean | null;
}

@ObjectType({ description: 'A saliency map, row-major, normalised to 0..1 (1 = most important)' })
export class SaliencyMap {
  @Field(() => ExplainMethod, { description: 'Method that made the map' })
  method: ExplainMethod;

  @Field(() => Int, { description: 'The class explained' })
  explainedClass: number;

  @Field({ description: 'Label of the class explained' })
  explainedLabel: string;

  @Field(() => Float, { description: 'Its score on the unperturbed image' })
  explainedScore: number;

  @Field(() => [Int], { description: '[height, width]: the image for OCCLUSION/RISE, the attention grid for ATTENTION' })
  shape: number[];

  @Field(() => String, { nullable: true, description: 'PNG (base64): the image in grey with the map over it, at least 224 px wide' })
  heatmapPng: string | null;

  @Field(() => Int, { description: 'Items run for this image: 1 + perturbations' })
  items: number;

  constructor(private readonly explanation: Explanation) {
    this.method = ExplainMethod[explanation.method];
    this.explainedClass = explanation.explainedClass;
    this.explainedLabel = explanation.explainedLabel;
    this.explainedScore = explanation.explainedScore;
    this.shape = explanation.shape;
    this.heatmapPng = explanation.heatmapPng;
    this.items = explanation.items;
  }

  @Field(() => [Float], { description: 'The map as JSON numbers, row-major over shape, 0..1' })
  get data(): number[] {
    return Array.from(this.explanation.data);
  }

  @Field({ description: 'The map as FP32 little-endian bytes' })
  get dataBase64(): string {
    const d = this.explanation.data;
    return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64');
  }
}

@ObjectType({ description: 'The answer for one image of classify' })
export class ImageClassification {
  @Field(() => [ClassPrediction], { description: 'The topK classes, most probable first' })
  predictions!: ClassPrediction[];

  @Field(() => [Float], { nullable: true, description: 'Attention weights, row-major over attentionShape; null for models without an attention output' })
  attention!: number[] | null;

  @Field(() => [Int], { nullable: true, description: 'Shape of attention; null for models without an attention output' })
  attentionShape!: number[] | null;

  @Field(() => SaliencyMap, { nullable: true, description: 'With classify(explain: …)' })
  explanation?: SaliencyMap | null;
}

@ObjectType({ description: 'The answer of classify' })
export class ClassifyResult {
  @Field({ description: 'Model that ran' })
  modelName!: string;

  @Field({ description: 'Version that ran' })
  modelVersion!: string;

  @Field(() => [ImageClassification], { description: 'One per image, in order' })
  results!: ImageClassification[];

  @Field(() => InferTiming, { description: 'Queue, compute and total milliseconds (total includes decoding the images)' })
  timing!: InferTiming;

  @Field({ description: 'cpu or cuda' })
  executionProvider!: string;

  @Field(() => Int, { description: 'Items in the batch this request ran in' })
  batchSize!: number;
}
