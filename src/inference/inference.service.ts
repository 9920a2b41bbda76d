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
import { ModelRegistry, type ShadowTarget, type VersionOrigin, type ModelStatus, type ModelVersion, type ServedConfig, type VersionStats } from './registry';
import { ShadowRunner } from './shadow';
import { InferenceMetrics } from './metrics';
import type { Batcher, BatchInput, BatchRequest, BatchResult, OutputTensor } from './batcher';
import { BYTES_PER_ELEMENT, ORT_TYPE, elementCount } from './tensor';
import { preprocessImage, type ImageSource } from './image';
import { validateTensors, type InferRequest, type InferTensorInput } from './request-validation';
import type { StepTrace, TraceAttributes } from '../tracing/types';
import { NOOP_STEPS } from '../tracing/noop';
import { ATTR } from '../tracing/attributes';
import { EXPLAIN_BOUNDS, attentionMap, heatmapPng, planExplanation, riseMasks, saliencyFrom, writePerturbed, type ExplainMethod, type ExplainOptions, type ExplainPlan } from './explain';

export type { InferRequest, InferTensorInput } from './request-validation';

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

/** A saliency map for one image (classify with `explain`). */
export interface Explanation {
  method: ExplainMethod;
  explainedClass: number;
  explainedLabel: string;
  /** The explained class's score on the unperturbed image. */
  explainedScore: number;
  /** [height, width] of the map (the image's, or the attention grid's). */
  shape: [number, number];
  /** Row-major, normalised to 0..1. */
  data: Float32Array;
  heatmapPng: string | null;
  /** Items this image ran: 1 + perturbations. */
  items: number;
}

export interface ImageClassification {
  predictions: ClassPrediction[];
  attention: number[] | null;
  attentionShape: number[] | null;
  explanation?: Explanation | null;
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

/** One model at one version as front doors show it (metadata, config, stats), without the registry's internals. */
export interface ModelView {
  name: string;
  version: string;
  versions: { version: string; status: ModelStatus; reason: string | null; executionProvider: string | null; source: VersionOrigin; digest: string | null }[];
  status: ModelStatus;
  reason: string | null;
  executionProvider: string | null;
  /** null when the version never loaded. */
  config: ServedConfig | null;
  stats: VersionStats & { pending: number };
}

/** A classify call (images preprocessed per the model's config). */
export interface ClassifyRequest {
  model: string;
  version?: string | null;
  images: ImageSource[];
  topK: number;
  timeoutMs?: number | null;
  /** Explain each image (items = 1 + perturbations per image). */
  explain?: ExplainOptions | null;
  /**
   * Images already in the model's input layout, as one batched tensor
   * instead of `images` (the OIP explain route); validated like `infer`.
   */
  tensors?: InferTensorInput[] | null;
}

/**
 * A request looked up and sized against its model, before anything is
 * admitted or validated: what the pipeline charges (items × cost) and
 * records. Opaque to callers but for the facts they meter.
 */
export interface InferencePlan {
  readonly model: string;
  readonly modelVersion: string;
  readonly executionProvider: string | null;
  readonly items: number;
  /** Whole units, as the limiter counts them, so quotas and bills agree. */
  readonly computeUnits: number;
  readonly version: ModelVersion;
  readonly config: ServedConfig;
  readonly batcher: Batcher;
  readonly started: number;
  /** The model's shadow when this request was drawn for it (null: none set, the common case, or not drawn). */
  readonly shadow: ShadowTarget | null;
  /** Set when a classify call explains its images. */
  readonly explain?: ExplainPlan;
}

const PRIORITY_RANGE = 1000;
/** Chunks of one explanation queued at a time: enough to keep the workers fed, few enough to leave queue room to others. */
const EXPLAIN_CHUNKS_IN_FLIGHT = 4;

/** Classes in a model's first output (one item). */
function classCount(config: ServedConfig): number {
  return config.outputs[0] ? elementCount(config.outputs[0].dims.map((d) => Math.max(d, 1))) : 0;
}

export class InferenceService {
  readonly pool: WorkerPool;
  readonly registry: ModelRegistry;
  readonly metrics: InferenceMetrics;
  readonly shadows: ShadowRunner;

  constructor(
    private readonly config: Config,
    metrics: Metrics,
    readiness: Readiness,
    private readonly log: Logger,
  ) {
    this.metrics = new InferenceMetrics(metrics.registry);
    this.pool = new WorkerPool(config.models.workers, config.models.intraOpThreads, log.child({ component: 'inference-pool' }), config.models.idleLoopWorkers, undefined, config.models.workerNice);
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
    this.shadows = new ShadowRunner(this.registry, this.pool, metrics.registry, log.child({ component: 'shadow' }));
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

  servesModel(name: string): boolean {
    return this.registry.has(name);
  }

  /** Every model's name, sorted. */
  modelNames(): string[] {
    return this.registry.list().map((m) => m.name);
  }

  /** A model at a version (default: the latest READY one, else the latest); NOT_FOUND if unknown. */
  describe(name: string, version?: string | null): ModelView {
    const found = this.registry.find(name, version);
    const v = found.version;
    return {
      name: found.model.name,
      version: String(v.version),
      versions: [...found.model.versions.values()]
        .sort((a, b) => a.version - b.version)
        .map((x) => ({ version: String(x.version), status: x.status, reason: x.reason, executionProvider: x.provider, source: x.source, digest: x.digest })),
      status: v.status,
      reason: v.reason,
      executionProvider: v.provider,
      config: v.config,
      stats: { ...v.stats, pending: v.batcher?.pending ?? 0 },
    };
  }

  /** Looks the model up (NOT_FOUND, MODEL_UNAVAILABLE) and sizes the request. */
  planInfer(request: InferRequest): InferencePlan {
    return this.plan(request.model, request.version, (config) => {
      const batching = config.maxBatchSize > 0;
      const firstShape = request.inputs[0]?.shape;
      // Items as the (not yet validated) shape claims, clamped to what could ever be accepted,
      // so an absurd shape is refused as bad input rather than charged against limits.
      const claimed = batching && firstShape && Number.isInteger(firstShape[0]) && firstShape[0]! > 0 ? firstShape[0]! : 1;
      return Math.min(claimed, batching ? Math.min(config.maxBatchSize, this.config.models.maxItemsPerRequest) : 1);
    });
  }

  planClassify(request: ClassifyRequest): InferencePlan {
    let explain: ExplainPlan | undefined;
    const planned = this.plan(request.model, request.version, (config) => {
      const claimed = request.tensors ? (request.tensors[0]?.shape[0] ?? 1) : request.images.length;
      const images = Math.min(Math.max(Number.isInteger(claimed) ? claimed : 1, 1), this.config.models.maxItemsPerRequest);
      if (!request.explain) return images;
      // Sized (and its parameters checked) before admission, so limits see every item it will run.
      explain = planExplanation(request.explain, config, classCount(config));
      const items = images * (1 + explain.perturbations);
      const input = config.inputs[0]!;
      const bytes = items * elementCount(input.dims.map((d) => Math.max(d, 1))) * BYTES_PER_ELEMENT.FP32;
      if (items > EXPLAIN_BOUNDS.maxItems || bytes > this.config.models.maxBytesPerRequest) {
        throw new BadInputError(
          `this explanation runs ${items} items (${images} image(s) × (1 + ${explain.perturbations} perturbations), ${bytes} bytes); at most ${EXPLAIN_BOUNDS.maxItems} items and ${this.config.models.maxBytesPerRequest} bytes (INFERENCE_MAX_BYTES_PER_REQUEST): use a larger stride or patch, fewer masks or fewer images`,
          'explain',
        );
      }
      return items;
    });
    return explain ? { ...planned, explain } : planned;
  }

  /** Validates every input, queues, runs; an admitted plan only. */
  async runInfer(plan: InferencePlan, request: InferRequest, trace: StepTrace = NOOP_STEPS): Promise<InferResponse> {
    const { version, config } = plan;
    return this.tracked(plan, async () => {
      const batchRequest = trace.step('validate', () => validateTensors(request, config, this.config.models), { [ATTR.items]: plan.items });
      const result = await this.submit(plan, trace, {
        ...batchRequest,
        priority: this.priority(request.parameters?.priority),
        timeoutMs: this.timeout(request.parameters?.timeoutMs, config),
      });
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

  async runClassify(plan: InferencePlan, args: ClassifyRequest, trace: StepTrace = NOOP_STEPS): Promise<ClassifyResponse> {
    const { version, config } = plan;
    return this.tracked(plan, async () => {
      const prep = config.preprocessing;
      const input = config.inputs[0];
      const validated = { [ATTR.items]: plan.items };
      if (plan.explain && input && !args.tensors) {
        // An explainable model without a preprocessing block (a derived config) takes images as its shape says.
        const images = await trace.step('validate', () => this.explainImages(plan, plan.explain!, args), validated);
        return this.runExplained(plan, plan.explain, args, images, trace);
      }
      if (plan.explain && input && args.tensors) {
        return this.runExplained(plan, plan.explain, args, trace.step('validate', () => this.tensorImages(args, config), validated), trace);
      }
      if (!prep || !input || config.inputs.length !== 1 || input.datatype !== 'FP32') {
        throw new BadInputError(`Model "${config.name}" does not take images (no preprocessing in its config); use infer`, 'model');
      }
      // Decoding and resizing the images is this call's input validation.
      const pixels = await trace.step(
        'validate',
        async () => {
          if (args.images.length === 0) throw new BadInputError('give at least one image', 'images');
          const limit = Math.min(this.config.models.maxItemsPerRequest, config.maxBatchSize > 0 ? config.maxBatchSize : this.config.models.maxItemsPerRequest);
          if (args.images.length > limit) throw new BadInputError(`at most ${limit} images per request`, 'images');
          const classes = config.outputs[0] ? elementCount(config.outputs[0].dims.map((d) => Math.max(d, 1))) : 0;
          if (!Number.isInteger(args.topK) || args.topK < 1 || args.topK > Math.max(classes, 1)) {
            throw new BadInputError(`topK must be between 1 and ${classes}`, 'topK');
          }
          const decoded = await Promise.all(args.images.map((image, i) => preprocessImage(image, prep, `images[${i}]`)));
          const perItem = elementCount(input.dims);
          if (decoded[0]!.length !== perItem) {
            throw new BadInputError(`Model "${config.name}" preprocessing gives ${decoded[0]!.length} values but its input takes ${perItem}`, 'model');
          }
          return decoded;
        },
        validated,
      );
      const timeoutMs = this.timeout(args.timeoutMs, config);
      const run = (items: Float32Array[]): Promise<BatchResult> => {
        const bytes = Buffer.concat(items.map((p) => Buffer.from(p.buffer, p.byteOffset, p.byteLength)));
        const batchInput: BatchInput = { name: input.name, type: ORT_TYPE.FP32, itemShape: input.dims, bytes };
        return this.submit(plan, trace, { items: items.length, inputs: [batchInput], outputNames: null, priority: 0, timeoutMs });
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
      return response;
    });
  }

  /** The images of an explained classify call, preprocessed per the config (a derived config: grey/RGB pixels / 255 in the graph's layout). */
  private async explainImages(plan: InferencePlan, explain: ExplainPlan, args: ClassifyRequest): Promise<Float32Array[]> {
    if (args.images.length === 0) throw new BadInputError('give at least one image', 'images');
    const limit = this.imageLimit(plan.config);
    if (args.images.length > limit) throw new BadInputError(`at most ${limit} images per request`, 'images');
    const g = explain.geometry;
    const prep = plan.config.preprocessing ?? { layout: g.layout, color: g.channels === 1 ? ('grey' as const) : ('rgb' as const), width: g.width, height: g.height, scale: 1 / 255, invert: false };
    const pixels = await Promise.all(args.images.map((image, i) => preprocessImage(image, prep, `images[${i}]`)));
    const perItem = g.channels * g.height * g.width;
    if (pixels[0]!.length !== perItem || elementCount(plan.config.inputs[0]!.dims) !== perItem) {
      throw new BadInputError(`Model "${plan.config.name}" preprocessing gives ${pixels[0]!.length} values but its input takes ${elementCount(plan.config.inputs[0]!.dims)}`, 'model');
    }
    return pixels;
  }

  /** Images given as one input tensor [N, ...dims] (validated as `infer` validates), one Float32Array each. */
  private tensorImages(args: ClassifyRequest, config: ServedConfig): Float32Array[] {
    const validated = validateTensors({ model: args.model, inputs: args.tensors! }, config, this.config.models);
    const bytes = validated.inputs[0]!.bytes;
    // A copy: the request's buffer may be a view into Buffer's shared pool (not 4-byte aligned).
    const all = new Float32Array(bytes.length / 4);
    new Uint8Array(all.buffer).set(bytes);
    const perItem = all.length / validated.items;
    return Array.from({ length: validated.items }, (_, i) => all.subarray(i * perItem, (i + 1) * perItem));
  }

  private imageLimit(config: ServedConfig): number {
    return Math.min(this.config.models.maxItemsPerRequest, config.maxBatchSize > 0 ? config.maxBatchSize : this.config.models.maxItemsPerRequest);
  }

  /**
   * Runs the originals and every perturbed copy as ordinary batcher items
   * (chunks of at most max_batch_size, a few chunks in flight at a time, so
   * they share batches with other callers without filling the queue), then
   * turns the scores into one saliency map per image.
   * Why over 80 lines: the explain steps share the plan, the trace spans and the batch accounting; split, each would take them all.
   */
  private async runExplained(plan: InferencePlan, explain: ExplainPlan, args: ClassifyRequest, images: Float32Array[], trace: StepTrace): Promise<ClassifyResponse> {
    const { config, version } = plan;
    const input = config.inputs[0]!;
    const classes = classCount(config);
    if (!Number.isInteger(args.topK) || args.topK < 1 || args.topK > Math.max(classes, 1)) throw new BadInputError(`topK must be between 1 and ${classes}`, 'topK');
    const timeoutMs = this.timeout(args.timeoutMs, config);
    const perImage = 1 + explain.perturbations;
    const total = images.length * perImage;
    if (total !== plan.items) throw new Error(`explanation planned ${plan.items} items but builds ${total}`);
    const perItem = images[0]!.length;
    const masks = explain.method === 'RISE' ? riseMasks(explain) : null;
    const batching = config.maxBatchSize > 0;
    const chunkSize = batching ? config.maxBatchSize : 1;
    const scores = new Float32Array(total * classes);
    const attention: (number[] | null)[] = new Array<number[] | null>(images.length).fill(null);
    let attentionShape: number[] | null = null;
    let queueMs = 0;
    let computeMs = 0;
    let batchSize = 0;

    const runChunk = async (first: number): Promise<void> => {
      const n = Math.min(chunkSize, total - first);
      const floats = new Float32Array(n * perItem);
      for (let j = 0; j < n; j += 1) {
        const item = first + j;
        const image = images[Math.floor(item / perImage)]!;
        const k = (item % perImage) - 1;
        const out = floats.subarray(j * perItem, (j + 1) * perItem);
        if (k < 0) out.set(image);
        else writePerturbed(explain, image, k, masks, out);
      }
      const bytes = Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength);
      const result = await this.submit(plan, trace, {
        items: n,
        inputs: [{ name: input.name, type: ORT_TYPE.FP32, itemShape: input.dims, bytes }],
        outputNames: null,
        priority: 0,
        timeoutMs,
      });
      queueMs = Math.max(queueMs, result.queueMs);
      computeMs += result.computeMs;
      batchSize = Math.max(batchSize, result.batchSize);
      const main = result.outputs.find((o) => o.name === config.outputs[0]!.name)!;
      const att = result.outputs.find((o) => o.name === 'attention') ?? null;
      for (let j = 0; j < n; j += 1) {
        let row = Array.from({ length: classes }, (_, c) => main.bytes.readFloatLE((j * classes + c) * 4));
        if (config.outputKind === 'logits') row = softmax(row);
        scores.set(row, (first + j) * classes);
        if (att && (first + j) % perImage === 0) {
          const size = att.bytes.length / 4 / n;
          attention[(first + j) / perImage] = Array.from({ length: size }, (_, c) => att.bytes.readFloatLE((j * size + c) * 4));
          attentionShape = att.shape.length > 1 ? att.shape.slice(1) : att.shape;
        }
      }
    };
    const starts = Array.from({ length: Math.ceil(total / chunkSize) }, (_, c) => c * chunkSize);
    // Without batching, one item at a time (as classify runs them); with batching, a small window of chunks.
    const window = batching ? EXPLAIN_CHUNKS_IN_FLIGHT : 1;
    let next = 0;
    await Promise.all(
      Array.from({ length: Math.min(window, starts.length) }, async () => {
        while (next < starts.length) await runChunk(starts[next++]!);
      }),
    );

    const results: ImageClassification[] = [];
    for (let i = 0; i < images.length; i += 1) {
      const base = scores.subarray(i * perImage * classes, (i * perImage + 1) * classes);
      const ranked = Array.from(base, (probability, index) => ({ index, probability, label: config.labels[index] ?? String(index) })).sort((a, b) => b.probability - a.probability);
      const target = explain.targetClass ?? ranked[0]!.index;
      let shape: [number, number];
      let data: Float32Array;
      if (explain.method === 'ATTENTION') {
        if (!attention[i]) throw new Error('the model returned no attention output');
        ({ shape, data } = attentionMap(attention[i]!));
      } else {
        const perturbed = Array.from({ length: explain.perturbations }, (_, k) => scores[(i * perImage + 1 + k) * classes + target]!);
        shape = [explain.geometry.height, explain.geometry.width];
        data = saliencyFrom(explain, base[target]!, perturbed, masks);
      }
      results.push({
        predictions: ranked.slice(0, args.topK),
        attention: attention[i] ?? null,
        attentionShape: attention[i] ? attentionShape : null,
        explanation: {
          method: explain.method,
          explainedClass: target,
          explainedLabel: config.labels[target] ?? String(target),
          explainedScore: base[target]!,
          shape,
          data,
          heatmapPng: explain.heatmap ? await heatmapPng(images[i]!, explain.geometry, data, shape) : null,
          items: perImage,
        },
      });
    }
    return { modelName: config.name, modelVersion: String(version.version), results, queueMs, computeMs, executionProvider: version.provider!, batchSize };
  }

  /**
   * Queues one batcher request; its wait and its run become `queue` and
   * `compute` spans with the times the batcher and the worker measured. A
   * request refused in the queue (deadline, full) gets a failed `queue` span.
   */
  private async submit(plan: InferencePlan, trace: StepTrace, request: BatchRequest): Promise<BatchResult> {
    const result = trace.recording ? await this.submitTraced(plan, trace, request) : await plan.batcher.submit(request);
    // The one place every live run (infer, classify, each image or chunk of an explanation) is offered to the shadow:
    // one field read when the request was not drawn; a drawn run starts after this answer, off the request path.
    if (plan.shadow !== null) {
      this.shadows.offer(plan.shadow, { model: plan.model, version: plan.version, config: plan.config, batcher: plan.batcher, items: request.items, inputs: request.inputs, outputNames: request.outputNames, outputs: result.outputs });
    }
    return result;
  }

  private async submitTraced(plan: InferencePlan, trace: StepTrace, request: BatchRequest): Promise<BatchResult> {
    const submittedAt = performance.now();
    const attributes: TraceAttributes = {
      [ATTR.model]: plan.model,
      [ATTR.modelVersion]: String(plan.version.version),
      [ATTR.executionProvider]: plan.version.provider ?? 'none',
      [ATTR.items]: request.items,
    };
    let result: BatchResult;
    try {
      result = await plan.batcher.submit(request);
    } catch (error) {
      if (error instanceof DomainError && (error.code === 'TIMEOUT' || error.code === 'OVERLOADED')) trace.recorded('queue', submittedAt, performance.now(), attributes, error.code);
      throw error;
    }
    const batch = { ...attributes, [ATTR.batchSize]: result.batchSize };
    trace.recorded('queue', result.enqueuedAt, result.dispatchedAt, batch);
    trace.recorded('compute', result.completedAt - result.computeMs, result.completedAt, batch);
    return result;
  }

  /** Counts a request refused after its lookup and before it ran (limits) in the model's stats and metrics. */
  refused(plan: InferencePlan, error: unknown): void {
    this.countFailure(plan, error);
  }

  private plan(model: string, version: string | null | undefined, itemsFor: (config: ServedConfig) => number): InferencePlan {
    const found = this.registry.findReady(model, version);
    const items = itemsFor(found.config);
    return {
      model: found.version.model,
      modelVersion: String(found.version.version),
      executionProvider: found.version.provider,
      items,
      computeUnits: Math.ceil(items * found.config.cost),
      version: found.version,
      config: found.config,
      batcher: found.batcher,
      started: performance.now(),
      // Drawn once per request, whichever door it came through: every run of a drawn request is offered (submit).
      shadow: found.model.shadow !== null && this.shadows.draws(found.model.shadow, found.version.version) ? found.model.shadow : null,
    };
  }

  /** Runs an admitted request and keeps per-model stats and Triton-style metrics. */
  private async tracked<T extends { queueMs: number; computeMs: number }>(plan: InferencePlan, run: () => Promise<T>): Promise<T> {
    const { version } = plan;
    const labels = { model: version.model, version: String(version.version) };
    try {
      const result = await run();
      version.stats.requests += 1;
      version.stats.inferences += plan.items;
      version.stats.queueMsTotal += result.queueMs;
      version.stats.computeMsTotal += result.computeMs;
      this.metrics.requestSuccess.inc(labels);
      this.metrics.inferenceCount.inc(labels, plan.items);
      this.metrics.queueDuration.observe(labels, result.queueMs / 1000);
      this.metrics.computeDuration.observe(labels, result.computeMs / 1000);
      this.metrics.requestDuration.observe(labels, (performance.now() - plan.started) / 1000);
      return result;
    } catch (error) {
      this.countFailure(plan, error);
      throw error;
    }
  }

  private countFailure(plan: InferencePlan, error: unknown): void {
    const { version } = plan;
    version.stats.failures += 1;
    const code = error instanceof DomainError ? error.code : 'ERROR';
    this.metrics.requestFailure.inc({ model: version.model, version: String(version.version), reason: code === 'BAD_USER_INPUT' ? 'BAD_INPUT' : code });
    if (!(error instanceof DomainError)) {
      this.log.error({ model: version.model, version: version.version, err: error instanceof Error ? error.message : String(error) }, 'inference run failed');
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

