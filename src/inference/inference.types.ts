/**
 * GraphQL types of the inference API, shaped after the Open Inference
 * Protocol (KServe v2): tensors are {name, datatype, shape, data}, with
 * `dataBase64` (raw little-endian bytes) as the fast alternative to JSON
 * numbers, both for inputs and, as the client selects, for outputs.
 */
import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { EXPLAIN_BOUNDS } from './explain';
import type { Explanation } from './inference.service';
import { DATATYPES, type Datatype } from './model-config';
import { decodeNumbers } from './tensor';
import { BadInputError } from '../errors';
import type { ModelStatus as ModelStatusName } from './registry';

export enum TensorDatatype {
  BOOL = 'BOOL',
  UINT8 = 'UINT8',
  INT8 = 'INT8',
  INT16 = 'INT16',
  INT32 = 'INT32',
  INT64 = 'INT64',
  FP16 = 'FP16',
  FP32 = 'FP32',
  FP64 = 'FP64',
}
registerEnumType(TensorDatatype, { name: 'TensorDatatype', description: `Element types (${DATATYPES.join(', ')}), named as in KServe v2 / Triton` });

export enum ModelStatus {
  LOADING = 'LOADING',
  READY = 'READY',
  FAILED = 'FAILED',
  UNLOADED = 'UNLOADED',
}
registerEnumType(ModelStatus, { name: 'ModelStatus', description: 'READY only after every worker loaded the model and a warm-up run succeeded' });
export const toModelStatus = (status: ModelStatusName): ModelStatus => ModelStatus[status];

export enum ModelConfigSource {
  CONFIG = 'CONFIG',
  DERIVED = 'DERIVED',
}
registerEnumType(ModelConfigSource, { name: 'ModelConfigSource', description: 'CONFIG: from config.json; DERIVED: read from the ONNX graph (no config.json)' });

@ObjectType({ description: 'A model input or output' })
export class TensorSpecType {
  @Field()
  name!: string;

  @Field(() => TensorDatatype)
  datatype!: TensorDatatype;

  @Field(() => [Int], { description: 'Full shape as a client sends it; -1 is variable (the batch axis is -1 when the model batches)' })
  shape!: number[];
}

@ObjectType({ description: 'Counters since this gateway process loaded the version' })
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

  @Field(() => Float)
  meanQueueMs!: number;

  @Field(() => Float)
  meanComputeMs!: number;

  @Field(() => Int, { description: 'Requests waiting now' })
  pending!: number;
}

@ObjectType()
export class ModelVersionType {
  @Field()
  version!: string;

  @Field(() => ModelStatus)
  status!: ModelStatus;

  @Field(() => String, { nullable: true, description: 'Why the version FAILED (or why its last reload failed)' })
  reason!: string | null;

  @Field(() => String, { nullable: true, description: 'cpu or cuda: the provider that actually runs this version' })
  executionProvider!: string | null;
}

@ObjectType({ description: 'A model in the repository, at one version (the latest READY one unless asked)' })
export class ModelType {
  @Field()
  name!: string;

  @Field()
  version!: string;

  @Field(() => [ModelVersionType])
  versions!: ModelVersionType[];

  @Field()
  platform!: string;

  @Field(() => ModelStatus)
  status!: ModelStatus;

  @Field(() => String, { nullable: true })
  statusReason!: string | null;

  @Field(() => String, { nullable: true, description: 'cpu or cuda' })
  executionProvider!: string | null;

  @Field(() => [TensorSpecType])
  inputs!: TensorSpecType[];

  @Field(() => [TensorSpecType])
  outputs!: TensorSpecType[];

  @Field(() => Int, { description: '0 means batching is off' })
  maxBatchSize!: number;

  @Field(() => [String])
  labels!: string[];

  @Field()
  description!: string;

  @Field(() => Float, { description: 'Compute units per item (for limits and billing)' })
  cost!: number;

  @Field(() => ModelConfigSource, { nullable: true })
  configSource!: ModelConfigSource | null;

  @Field(() => ModelStatsType)
  stats!: ModelStatsType;
}

@InputType({ description: 'One input tensor. Give data (JSON numbers) or dataBase64 (raw little-endian bytes), not both.' })
export class InferInputTensor {
  @Field()
  name!: string;

  @Field(() => TensorDatatype)
  datatype!: Datatype;

  @Field(() => [Int], { description: 'Including the batch axis when the model batches, e.g. [4,1,28,28]' })
  shape!: number[];

  @Field(() => [Float], { nullable: true, description: 'Row-major values; INT64 beyond ±2^53 needs dataBase64' })
  data?: number[] | null;

  @Field(() => String, { nullable: true })
  dataBase64?: string | null;
}

@InputType()
export class InferParameters {
  @Field(() => Int, { nullable: true, description: 'Deadline in the queue; dropped with TIMEOUT if still queued then (default INFERENCE_DEFAULT_TIMEOUT_MS)' })
  timeoutMs?: number | null;

  @Field(() => Int, { nullable: true, description: 'Higher runs first among queued requests (-1000..1000, default 0)' })
  priority?: number | null;
}

@InputType()
export class InferInput {
  @Field()
  model!: string;

  @Field(() => String, { nullable: true, description: 'Default: the latest READY version' })
  version?: string | null;

  @Field(() => ID, { nullable: true, description: 'Echoed back in the result' })
  id?: string | null;

  @Field(() => [InferInputTensor])
  inputs!: InferInputTensor[];

  @Field(() => [String], { nullable: true, description: 'Outputs to return (default: all)' })
  outputs?: string[] | null;

  @Field(() => InferParameters, { nullable: true })
  parameters?: InferParameters | null;
}

@ObjectType({ description: 'One output tensor; select data (JSON numbers) or dataBase64 (raw little-endian bytes)' })
export class InferOutputTensor {
  @Field()
  name!: string;

  @Field(() => TensorDatatype)
  datatype!: Datatype;

  @Field(() => [Int])
  shape!: number[];

  constructor(name: string, datatype: Datatype, shape: number[], private readonly bytes: Buffer) {
    this.name = name;
    this.datatype = datatype;
    this.shape = shape;
  }

  // An output holding NaN or Infinity answers BAD_USER_INPUT here (JSON numbers cannot carry
  // them); dataBase64 carries every value exactly.
  @Field(() => [Float])
  get data(): number[] {
    const values = decodeNumbers(this.datatype, this.bytes);
    if (!values.every(Number.isFinite)) {
      throw new BadInputError(`output "${this.name}" holds NaN or Infinity, which JSON numbers cannot carry; select dataBase64 (little-endian bytes) for it`, 'outputs.data', { output: this.name });
    }
    return values;
  }

  @Field()
  get dataBase64(): string {
    return this.bytes.toString('base64');
  }
}

@ObjectType()
export class InferTiming {
  @Field(() => Float, { description: 'Time queued before its batch ran' })
  queueMs!: number;

  @Field(() => Float, { description: 'Execution time of the batch it ran in' })
  computeMs!: number;

  @Field(() => Float, { description: 'Time in the gateway from the call to the answer' })
  totalMs!: number;
}

@ObjectType()
export class InferResult {
  @Field()
  modelName!: string;

  @Field()
  modelVersion!: string;

  @Field(() => ID, { nullable: true })
  id!: string | null;

  @Field(() => [InferOutputTensor])
  outputs!: InferOutputTensor[];

  @Field(() => InferTiming)
  timing!: InferTiming;

  @Field({ description: 'cpu or cuda' })
  executionProvider!: string;

  @Field(() => Int, { description: 'Items in the batch this request ran in' })
  batchSize!: number;
}

@InputType({ description: 'An image: base64 of an encoded image (PNG, JPEG, WebP; any size, grey or colour), or raw pixels 0–255' })
export class ImageInput {
  @Field(() => String, { nullable: true })
  png?: string | null;

  @Field(() => [Float], { nullable: true, description: 'Row-major, channels interleaved' })
  pixels?: number[] | null;

  @Field(() => Int, { nullable: true })
  width?: number | null;

  @Field(() => Int, { nullable: true })
  height?: number | null;

  @Field(() => Int, { nullable: true, description: '1 (grey, default), 3 (RGB) or 4 (RGBA)' })
  channels?: number | null;
}

@ObjectType()
export class ClassPrediction {
  @Field()
  label!: string;

  @Field(() => Int)
  index!: number;

  @Field(() => Float)
  probability!: number;
}

export enum ExplainMethod {
  OCCLUSION = 'OCCLUSION',
  RISE = 'RISE',
  ATTENTION = 'ATTENTION',
}
registerEnumType(ExplainMethod, {
  name: 'ExplainMethod',
  description: 'OCCLUSION: a patch slid over the image, saliency = drop in the class score; RISE: random masks, saliency = score-weighted mean mask; ATTENTION: the attention output of models that have one',
});

@InputType({ description: 'Explain each image with a saliency map. OCCLUSION and RISE run 1 + perturbations items per image, each billed at the model cost' })
export class ExplainInput {
  @Field(() => ExplainMethod)
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
  @Field(() => ExplainMethod)
  method: ExplainMethod;

  @Field(() => Int, { description: 'The class explained' })
  explainedClass: number;

  @Field()
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

  @Field(() => [Float])
  get data(): number[] {
    return Array.from(this.explanation.data);
  }

  @Field({ description: 'The map as FP32 little-endian bytes' })
  get dataBase64(): string {
    const d = this.explanation.data;
    return Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('base64');
  }
}

@ObjectType()
export class ImageClassification {
  @Field(() => [ClassPrediction])
  predictions!: ClassPrediction[];

  @Field(() => [Float], { nullable: true, description: 'Attention weights, for models with an attention output' })
  attention!: number[] | null;

  @Field(() => [Int], { nullable: true })
  attentionShape!: number[] | null;

  @Field(() => SaliencyMap, { nullable: true, description: 'With classify(explain: …)' })
  explanation?: SaliencyMap | null;
}

@ObjectType()
export class ClassifyResult {
  @Field()
  modelName!: string;

  @Field()
  modelVersion!: string;

  @Field(() => [ImageClassification], { description: 'One per image, in order' })
  results!: ImageClassification[];

  @Field(() => InferTiming)
  timing!: InferTiming;

  @Field()
  executionProvider!: string;

  @Field(() => Int)
  batchSize!: number;
}
