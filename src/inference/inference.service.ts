/**
 * The inference path: look the model up, admit the request (limits), validate
 * every input before anything is queued, batch, run on a worker, and shape
 * the answer. Nothing malformed reaches onnxruntime; a failing run becomes
 * INTERNAL and the gateway keeps serving.
 */
import { performance } from 'node:perf_hooks';
import type { Config } from '../config';
import type { Logger } from '../log/logger';
import { BadInputError, DomainError } from '../errors';
import type { Metrics } from '../metrics/metrics';
import type { Readiness } from '../health/readiness';
import { WorkerPool } from './pool';
import { ModelRegistry, type ModelVersion, type ServedConfig } from './registry';
import { InferenceMetrics } from './metrics';
import type { BatchInput, BatchResult, OutputTensor } from './batcher';
import type { Datatype } from './model-config';
import { BYTES_PER_ELEMENT, ORT_TYPE, TensorEncodingError, base64Length, base64LengthFits, checkBytes, decodeBase64, elementCount, encodeNumbers } from './tensor';
import { preprocessImage, type ImageSource } from './image';

export interface InferTensorInput {
  name: string;
  datatype: Datatype;
  shape: number[];
  data?: number[] | null;
  dataBase64?: string | null;
}

export interface InferRequest {
  model: string;
  version?: string | null;
  id?: string | null;
  inputs: InferTensorInput[];
  outputs?: string[] | null;
  parameters?: { timeoutMs?: number | null; priority?: number | null } | null;
}

export interface InferResponse {
  modelName: string;
  modelVersion: string;
  id: string | null;
  outputs: OutputTensor[];
  queueMs: number;
  computeMs: number;
  executionProvider: string;
  batchSize: number;
}

export interface ClassPrediction {
  label: string;
  index: number;
  probability: number;
}

export interface ImageClassification {
  predictions: ClassPrediction[];
  attention: number[] | null;
  attentionShape: number[] | null;
}

export interface ClassifyResponse {
  modelName: string;
  modelVersion: string;
  results: ImageClassification[];
  queueMs: number;
  computeMs: number;
  executionProvider: string;
  batchSize: number;
}

/** What the request cost, filled in as far as the request got (for usage records even on failure). */
export interface Metering {
  model: string;
  modelVersion: string | null;
  items: number;
  computeUnits: number;
  queueMs: number;
  computeMs: number;
  executionProvider: string | null;
}

export function newMetering(model: string): Metering {
  return { model, modelVersion: null, items: 0, computeUnits: 0, queueMs: 0, computeMs: 0, executionProvider: null };
}

/** Called after the model is known and before validation: the place limits are checked and consumed. */
export type AdmitHook = (info: { model: string; modelVersion: string; items: number; computeUnits: number }) => Promise<void>;

const PRIORITY_RANGE = 1000;

export class InferenceService {
  readonly pool: WorkerPool;
  readonly registry: ModelRegistry;
  readonly metrics: InferenceMetrics;

  constructor(
    private readonly config: Config,
    metrics: Metrics,
    readiness: Readiness,
    private readonly log: Logger,
  ) {
    this.metrics = new InferenceMetrics(metrics.registry);
    this.pool = new WorkerPool(config.models.workers, config.models.intraOpThreads, log.child({ component: 'inference-pool' }));
    this.registry = new ModelRegistry(
      this.pool,
      {
        repository: config.models.repository,
        providers: config.models.executionProviders,
        maxQueueSize: config.models.maxQueueSize,
        drainTimeoutMs: config.models.maxTimeoutMs,
      },
      this.metrics,
      log.child({ component: 'models' }),
    );
    readiness.register('models', () => {
      const models: Record<string, unknown> = {};
      for (const model of this.registry.list()) {
        for (const v of model.versions.values()) {
          models[`${model.name}/${v.version}`] = { status: v.status, executionProvider: v.provider, ...(v.reason ? { reason: v.reason } : {}) };
        }
      }
      return { ready: this.registry.ready, detail: { loading: !this.registry.ready, workers: this.pool.size, models } };
    });
  }

  /** Loads the repository in the background; /readyz reports `models` not ready until it is done. */
  start(): Promise<void> {
    return this.registry.loadAll();
  }

  async close(): Promise<void> {
    await this.registry.close();
    await this.pool.close();
  }

  async infer(request: InferRequest, meter: Metering, admit?: AdmitHook): Promise<InferResponse> {
    const started = performance.now();
    const { version, config, batcher } = await this.lookup(request.model, request.version, meter, admit, (config) => {
      const batching = config.maxBatchSize > 0;
      const firstShape = request.inputs[0]?.shape;
      // Items as the (not yet validated) shape claims, clamped to what could ever be accepted,
      // so an absurd shape is refused as bad input rather than charged against limits.
      const claimed = batching && firstShape && Number.isInteger(firstShape[0]) && firstShape[0]! > 0 ? firstShape[0]! : 1;
      return Math.min(claimed, batching ? Math.min(config.maxBatchSize, this.config.models.maxItemsPerRequest) : 1);
    });
    return this.tracked(version, config, meter, started, admit, async () => {
      const batchRequest = this.validateTensors(request, config);
      const result = await batcher.submit({
        ...batchRequest,
        priority: this.priority(request.parameters?.priority),
        timeoutMs: this.timeout(request.parameters?.timeoutMs, config),
      });
      meter.queueMs = result.queueMs;
      meter.computeMs = result.computeMs;
      return {
        modelName: config.name,
        modelVersion: String(version.version),
        id: request.id ?? null,
        outputs: result.outputs,
        queueMs: result.queueMs,
        computeMs: result.computeMs,
        executionProvider: version.provider!,
        batchSize: result.batchSize,
      };
    });
  }

  async classify(
    args: { model: string; version?: string | null; images: ImageSource[]; topK: number; timeoutMs?: number | null },
    meter: Metering,
    admit?: AdmitHook,
  ): Promise<ClassifyResponse> {
    const started = performance.now();
    const { version, config, batcher } = await this.lookup(args.model, args.version, meter, admit, () =>
      Math.min(Math.max(args.images.length, 1), this.config.models.maxItemsPerRequest),
    );
    return this.tracked(version, config, meter, started, admit, async () => {
      const prep = config.preprocessing;
      const input = config.inputs[0];
      if (!prep || !input || config.inputs.length !== 1 || input.datatype !== 'FP32') {
        throw new BadInputError(`Model "${config.name}" does not take images (no preprocessing in its config); use infer`, 'model');
      }
      if (args.images.length === 0) throw new BadInputError('give at least one image', 'images');
      const limit = Math.min(this.config.models.maxItemsPerRequest, config.maxBatchSize > 0 ? config.maxBatchSize : this.config.models.maxItemsPerRequest);
      if (args.images.length > limit) throw new BadInputError(`at most ${limit} images per request`, 'images');
      const classes = config.outputs[0] ? elementCount(config.outputs[0].dims.map((d) => Math.max(d, 1))) : 0;
      if (!Number.isInteger(args.topK) || args.topK < 1 || args.topK > Math.max(classes, 1)) {
        throw new BadInputError(`topK must be between 1 and ${classes}`, 'topK');
      }
      const pixels = await Promise.all(args.images.map((image, i) => preprocessImage(image, prep, `images[${i}]`)));
      const perItem = elementCount(input.dims);
      if (pixels[0]!.length !== perItem) {
        throw new BadInputError(`Model "${config.name}" preprocessing gives ${pixels[0]!.length} values but its input takes ${perItem}`, 'model');
      }
      const timeoutMs = this.timeout(args.timeoutMs, config);
      const run = (items: Float32Array[]): Promise<BatchResult> => {
        const bytes = Buffer.concat(items.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
        const batchInput: BatchInput = { name: input.name, type: ORT_TYPE.FP32, itemShape: input.dims, bytes };
        return batcher.submit({ items: items.length, inputs: [batchInput], outputNames: null, priority: 0, timeoutMs });
      };
      // Without batching each image runs alone (the graph's batch axis is fixed),
      // one after another, so one request never holds many queue slots at once.
      const results: BatchResult[] = [];
      if (config.maxBatchSize > 0) results.push(await run(pixels));
      else for (const p of pixels) results.push(await run([p]));
      const response: ClassifyResponse = {
        modelName: config.name,
        modelVersion: String(version.version),
        results: results.flatMap((r) => this.toClassifications(r.outputs, config, args.topK, config.maxBatchSize > 0 ? pixels.length : 1)),
        queueMs: Math.max(...results.map((r) => r.queueMs)),
        computeMs: Math.max(...results.map((r) => r.computeMs)),
        executionProvider: version.provider!,
        batchSize: Math.max(...results.map((r) => r.batchSize)),
      };
      meter.queueMs = response.queueMs;
      meter.computeMs = response.computeMs;
      return response;
    });
  }

  /**
   * The model to run, with the request's version, items and units filled into
   * the meter. When it is unknown or not READY the request still counts
   * against the caller's request limits (order: authenticate, limits, validate),
   * so probing for models is not free.
   */
  private async lookup(
    model: string,
    version: string | null | undefined,
    meter: Metering,
    admit: AdmitHook | undefined,
    itemsFor: (config: ServedConfig) => number,
  ) {
    let found: ReturnType<ModelRegistry['findReady']>;
    try {
      found = this.registry.findReady(model, version);
    } catch (error) {
      if (admit) await admit({ model, modelVersion: version ?? '', items: 0, computeUnits: 0 });
      throw error;
    }
    meter.modelVersion = String(found.version.version);
    meter.executionProvider = found.version.provider;
    meter.items = itemsFor(found.config);
    // Whole units, as the limiter counts them, so quotas and bills agree.
    meter.computeUnits = Math.ceil(meter.items * found.config.cost);
    return found;
  }

  /** Admits the request (limits), runs it, and keeps per-model stats and Triton-style metrics. */
  private async tracked<T>(
    version: ModelVersion,
    config: ServedConfig,
    meter: Metering,
    started: number,
    admit: AdmitHook | undefined,
    run: () => Promise<T>,
  ): Promise<T> {
    const labels = { model: version.model, version: String(version.version) };
    try {
      if (admit) await admit({ model: config.name, modelVersion: meter.modelVersion!, items: meter.items, computeUnits: meter.computeUnits });
      const result = await run();
      version.stats.requests += 1;
      version.stats.inferences += meter.items;
      version.stats.queueMsTotal += meter.queueMs;
      version.stats.computeMsTotal += meter.computeMs;
      this.metrics.requestSuccess.inc(labels);
      this.metrics.inferenceCount.inc(labels, meter.items);
      this.metrics.queueDuration.observe(labels, meter.queueMs / 1000);
      this.metrics.computeDuration.observe(labels, meter.computeMs / 1000);
      this.metrics.requestDuration.observe(labels, (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      version.stats.failures += 1;
      const code = error instanceof DomainError ? error.code : 'ERROR';
      this.metrics.requestFailure.inc({ ...labels, reason: code === 'BAD_USER_INPUT' ? 'BAD_INPUT' : code });
      if (!(error instanceof DomainError)) {
        this.log.error({ model: version.model, version: version.version, err: error instanceof Error ? error.message : String(error) }, 'inference run failed');
      }
      throw error;
    }
  }

  private priority(value: number | null | undefined): number {
    if (value === undefined || value === null) return 0;
    if (!Number.isInteger(value) || Math.abs(value) > PRIORITY_RANGE) {
      throw new BadInputError(`priority must be a whole number between -${PRIORITY_RANGE} and ${PRIORITY_RANGE} (higher runs first)`, 'parameters.priority');
    }
    return value;
  }

  private timeout(value: number | null | undefined, config: ServedConfig): number {
    const max = this.config.models.maxTimeoutMs;
    if (value === undefined || value === null) return Math.min(config.defaultTimeoutMs ?? this.config.models.defaultTimeoutMs, max);
    if (!Number.isInteger(value) || value < 1 || value > max) {
      throw new BadInputError(`timeoutMs must be between 1 and ${max} (INFERENCE_MAX_TIMEOUT_MS)`, 'parameters.timeoutMs');
    }
    return value;
  }

  /** Every check of issue #4's list, naming the field; returns the request ready to queue. */
  private validateTensors(request: InferRequest, config: ServedConfig): { items: number; inputs: BatchInput[]; outputNames: string[] | null } {
    const batching = config.maxBatchSize > 0;
    if (request.id != null && request.id.length > 256) throw new BadInputError('id must be at most 256 characters', 'id');
    const seen = new Set<string>();
    request.inputs.forEach((input, i) => {
      if (seen.has(input.name)) throw new BadInputError(`input "${input.name}" is given twice`, `inputs[${i}].name`);
      seen.add(input.name);
      if (!config.inputs.some((spec) => spec.name === input.name)) {
        throw new BadInputError(`Model "${config.name}" has no input "${input.name}" (inputs: ${config.inputs.map((s) => s.name).join(', ')})`, `inputs[${i}].name`);
      }
    });
    const missing = config.inputs.filter((spec) => !seen.has(spec.name));
    if (missing.length > 0) throw new BadInputError(`missing input ${missing.map((m) => `"${m.name}"`).join(', ')}`, 'inputs');

    let items = 1;
    let totalBytes = 0;
    const byName = new Map<string, BatchInput>();
    request.inputs.forEach((input, i) => {
      const spec = config.inputs.find((s) => s.name === input.name)!;
      const field = `inputs[${i}]`;
      if (input.datatype !== spec.datatype) throw new BadInputError(`input "${input.name}" is ${spec.datatype}, got ${input.datatype}`, `${field}.datatype`);
      const expectedRank = spec.dims.length + (batching ? 1 : 0);
      const shown = `[${batching ? 'batch,' : ''}${spec.dims.join(',')}]`;
      if (input.shape.length !== expectedRank) throw new BadInputError(`input "${input.name}" has shape [${input.shape.join(',')}]; the model takes ${shown}`, `${field}.shape`);
      if (input.shape.some((d) => !Number.isInteger(d) || d < 1)) throw new BadInputError('shape dimensions must be positive whole numbers', `${field}.shape`);
      const itemShape = batching ? input.shape.slice(1) : input.shape;
      itemShape.forEach((d, k) => {
        const want = spec.dims[k]!;
        if (want !== -1 && d !== want) throw new BadInputError(`input "${input.name}" has shape [${input.shape.join(',')}]; the model takes ${shown}`, `${field}.shape`);
      });
      if (batching) {
        const n = input.shape[0]!;
        if (i === 0) items = n;
        else if (n !== items) throw new BadInputError(`every input must have the same batch size (${items}), got ${n}`, `${field}.shape`);
        const max = Math.min(config.maxBatchSize, this.config.models.maxItemsPerRequest);
        if (n > max) throw new BadInputError(`batch of ${n} exceeds the maximum of ${max} items per request`, `${field}.shape`);
      }
      const count = elementCount(input.shape);
      const byteLength = count * BYTES_PER_ELEMENT[spec.datatype];
      totalBytes += byteLength;
      if (totalBytes > this.config.models.maxBytesPerRequest) {
        throw new BadInputError(`inputs exceed ${this.config.models.maxBytesPerRequest} bytes (INFERENCE_MAX_BYTES_PER_REQUEST)`, `${field}.shape`);
      }
      const hasData = input.data !== undefined && input.data !== null;
      const hasBase64 = input.dataBase64 !== undefined && input.dataBase64 !== null;
      if (hasData === hasBase64) throw new BadInputError('give exactly one of data or dataBase64', `${field}.data`);
      let bytes: Buffer;
      if (hasData) {
        if (input.data!.length !== count) throw new BadInputError(`data has ${input.data!.length} elements; shape [${input.shape.join(',')}] needs ${count}`, `${field}.data`);
        try {
          bytes = encodeNumbers(spec.datatype, input.data!);
        } catch (error) {
          if (error instanceof TensorEncodingError) throw new BadInputError(`data ${error.message}`, `${field}.data`);
          throw error;
        }
      } else {
        if (!base64LengthFits(input.dataBase64!, byteLength)) {
          throw new BadInputError(`dataBase64 has ${input.dataBase64!.length} characters; shape [${input.shape.join(',')}] of ${spec.datatype} needs ${byteLength} bytes (${base64Length(byteLength)} characters)`, `${field}.dataBase64`);
        }
        const decoded = decodeBase64(input.dataBase64!);
        if (!decoded) throw new BadInputError('dataBase64 is not valid base64', `${field}.dataBase64`);
        if (decoded.length !== byteLength) {
          throw new BadInputError(`dataBase64 holds ${decoded.length} bytes; shape [${input.shape.join(',')}] of ${spec.datatype} needs ${byteLength}`, `${field}.dataBase64`);
        }
        const problem = checkBytes(spec.datatype, decoded);
        if (problem) throw new BadInputError(`dataBase64 ${problem}`, `${field}.dataBase64`);
        bytes = decoded;
      }
      byName.set(input.name, { name: input.name, type: ORT_TYPE[spec.datatype], itemShape, bytes });
    });

    let outputNames: string[] | null = null;
    if (request.outputs && request.outputs.length > 0) {
      request.outputs.forEach((name, i) => {
        if (!config.outputs.some((o) => o.name === name)) {
          throw new BadInputError(`Model "${config.name}" has no output "${name}" (outputs: ${config.outputs.map((o) => o.name).join(', ')})`, `outputs[${i}]`);
        }
      });
      outputNames = [...new Set(request.outputs)];
    }
    // Inputs in config order, so batches of different callers line up.
    return { items: batching ? items : 1, inputs: config.inputs.map((spec) => byName.get(spec.name)!), outputNames };
  }

  /** `n`: the images in this run (its outputs may or may not carry a batch axis). */
  private toClassifications(outputs: OutputTensor[], config: ServedConfig, topK: number, n: number): ImageClassification[] {
    const main = outputs.find((o) => o.name === config.outputs[0]!.name)!;
    const attention = outputs.find((o) => o.name === 'attention') ?? null;
    const classes = main.bytes.length / 4 / n;
    const results: ImageClassification[] = [];
    for (let item = 0; item < n; item += 1) {
      let scores = Array.from({ length: classes }, (_, k) => main.bytes.readFloatLE((item * classes + k) * 4));
      if (config.outputKind === 'logits') scores = softmax(scores);
      const predictions = scores
        .map((probability, index) => ({ index, probability, label: config.labels[index] ?? String(index) }))
        .sort((a, b) => b.probability - a.probability)
        .slice(0, topK);
      let map: number[] | null = null;
      let mapShape: number[] | null = null;
      if (attention) {
        const size = attention.bytes.length / 4 / n;
        map = Array.from({ length: size }, (_, k) => attention.bytes.readFloatLE((item * size + k) * 4));
        mapShape = attention.shape.length > 1 && attention.shape[0] === n ? attention.shape.slice(1) : attention.shape;
      }
      results.push({ predictions, attention: map, attentionShape: mapShape });
    }
    return results;
  }
}

function softmax(values: number[]): number[] {
  const max = Math.max(...values);
  const exps = values.map((v) => Math.exp(v - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}

