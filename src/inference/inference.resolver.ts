/**
 * The inference API: models, model, infer, classify, and the model admin
 * mutations. Thin: parse, authorize, call the service, shape the result.
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { GraphQLResolveInfo } from 'graphql';
import { Arg, Authorized, Ctx, Info, Int, Mutation, Query, Resolver } from 'type-graphql';
import { assertModelAllowed } from '../auth';
import type { GraphQLContext } from '../graphql/context';
import type { RegisteredModel, ModelVersion, ModelRegistry } from './registry';
import { MODEL_NAME } from './model-config';
import {
  ClassifyResult,
  ImageInput,
  InferInput,
  InferOutputTensor,
  InferResult,
  ModelConfigSource,
  ModelType,
  toModelStatus,
  type TensorDatatype,
} from './inference.types';
import { newMetering, type AdmitHook, type Metering } from './inference.service';
import { enforceLimits } from '../ratelimit/plugin';
import { BadInputError, DomainError } from '../errors';
import type { UsageStatusName } from '../usage/usage-event';
import { deferUsage } from '../usage/pending-usage';
import { usageModelName } from '../usage/model-label';

function toModelType(model: RegisteredModel, version: ModelVersion): ModelType {
  const config = version.config;
  const batching = (config?.maxBatchSize ?? 0) > 0;
  const spec = (t: { name: string; datatype: string; dims: number[] }) => ({
    name: t.name,
    datatype: t.datatype as TensorDatatype,
    shape: batching ? [-1, ...t.dims] : t.dims,
  });
  const s = version.stats;
  return {
    name: model.name,
    version: String(version.version),
    versions: [...model.versions.values()]
      .sort((a, b) => a.version - b.version)
      .map((v) => ({ version: String(v.version), status: toModelStatus(v.status), reason: v.reason, executionProvider: v.provider })),
    platform: config?.platform ?? 'onnxruntime_onnx',
    status: toModelStatus(version.status),
    statusReason: version.reason,
    executionProvider: version.provider,
    inputs: config?.inputs.map(spec) ?? [],
    outputs: config?.outputs.map(spec) ?? [],
    maxBatchSize: config?.maxBatchSize ?? 0,
    labels: config?.labels ?? [],
    description: config?.description ?? '',
    cost: config?.cost ?? 1,
    configSource: config ? ModelConfigSource[config.source] : null,
    stats: {
      requests: s.requests,
      failures: s.failures,
      inferences: s.inferences,
      executions: s.executions,
      meanBatchSize: s.executions > 0 ? s.batchedItems / s.executions : 0,
      meanQueueMs: s.requests > 0 ? s.queueMsTotal / s.requests : 0,
      meanComputeMs: s.requests > 0 ? s.computeMsTotal / s.requests : 0,
      pending: version.batcher?.pending ?? 0,
    },
  };
}

/**
 * Runs one metered inference call. The hooks for limits and usage records
 * live here so every inference field goes through the same path.
 */
async function metered<T>(ctx: GraphQLContext, responseKey: string, model: string, run: (meter: Metering, admit: AdmitHook | undefined) => Promise<T>): Promise<T> {
  // @Authorized guarantees a principal.
  const principal = ctx.principal!;
  const started = performance.now();
  const meter = newMetering(model);
  // Limits are checked once the model (its cost) and the item count are known, before validation and queueing.
  const admit: AdmitHook = async (info) => {
    await enforceLimits(ctx, info.computeUnits);
  };
  let status: UsageStatusName = 'OK';
  try {
    // Model names are bounded (config.json's rule); anything else is refused
    // before limits and recorded under a placeholder, so a client cannot put
    // arbitrary text into usage records and rollup keys.
    if (!MODEL_NAME.test(model)) throw new BadInputError('model is not a valid model name (letters, digits, _ . -, at most 128)', 'model');
    assertModelAllowed(principal, model);
    return await run(meter, admit);
  } catch (error) {
    status = usageStatusFor(error);
    throw error;
  } finally {
    // One usage record per inference call, whatever happened; written with the response
    // (pending-usage), so an answer that fails after this point is not billed as served.
    deferUsage(ctx, responseKey, {
      id: usageIdFor(ctx),
      tenantId: principal.tenantId,
      apiKeyId: principal.apiKeyId,
      // Only names of served models are stored: never client text (a pasted key, unbounded rollup groups).
      model: usageModelName(model, (name) => ctx.services.inference.registry.list().some((m) => m.name === name)),
      modelVersion: meter.modelVersion,
      items: meter.items,
      // Only served requests are billed; a refused or failed one records its items and 0 units.
      computeUnits: status === 'OK' ? meter.computeUnits : 0,
      status,
      latencyMs: performance.now() - started,
      queueMs: meter.queueMs,
      computeMs: meter.computeMs,
      executionProvider: meter.executionProvider,
      createdAt: new Date(),
    });
  }
}

const inferenceCalls = new WeakMap<GraphQLContext, number>();

/**
 * The usage record id: the request id, "<id>#2" for a second inference field
 * in the same operation, and so on. A request id the client chose (x-request-id)
 * gets a random suffix: inserts are idempotent on this id, so a reused or
 * guessed client id must neither hide a request from billing nor collide with
 * another tenant's record.
 */
function usageIdFor(ctx: GraphQLContext): string {
  const n = (inferenceCalls.get(ctx) ?? 0) + 1;
  inferenceCalls.set(ctx, n);
  const base = n === 1 ? ctx.requestId : `${ctx.requestId}#${n}`;
  return ctx.request.headers['x-request-id'] === ctx.requestId ? `${base}~${randomBytes(6).toString('hex')}` : base;
}

function usageStatusFor(error: unknown): UsageStatusName {
  const code = error instanceof DomainError ? error.code : 'INTERNAL';
  switch (code) {
    case 'BAD_USER_INPUT':
    case 'NOT_FOUND':
    case 'FORBIDDEN':
      return 'BAD_INPUT';
    case 'RATE_LIMITED':
      return 'RATE_LIMITED';
    case 'QUOTA_EXCEEDED':
      return 'QUOTA_EXCEEDED';
    case 'TIMEOUT':
      return 'TIMEOUT';
    case 'OVERLOADED':
    case 'MODEL_UNAVAILABLE':
      return 'OVERLOADED';
    default:
      return 'ERROR';
  }
}

/** Runs a model admin operation and answers with the model at the version it touched. */
async function adminOperation(
  ctx: GraphQLContext,
  name: string,
  version: string | null | undefined,
  run: (registry: ModelRegistry) => Promise<RegisteredModel>,
): Promise<ModelType> {
  const registry = ctx.services.inference.registry;
  const model = await run(registry);
  return toModelType(model, registry.find(name, version).version);
}

@Resolver()
export class InferenceResolver {
  @Authorized('inference')
  @Query(() => [ModelType], { description: 'Every model in the repository, each at its latest version' })
  models(@Ctx() ctx: GraphQLContext): ModelType[] {
    const registry = ctx.services.inference.registry;
    const allowed = ctx.principal!.allowedModels;
    return registry.list().filter((m) => allowed.length === 0 || allowed.includes(m.name)).map((m) => {
      const { version } = registry.find(m.name);
      return toModelType(m, version);
    });
  }

  @Authorized('inference')
  @Query(() => ModelType, { description: 'One model at a version (default: the latest READY one); NOT_FOUND if unknown' })
  model(
    @Ctx() ctx: GraphQLContext,
    @Arg('name') name: string,
    @Arg('version', () => String, { nullable: true }) version?: string | null,
  ): ModelType {
    assertModelAllowed(ctx.principal!, name);
    const { model, version: v } = ctx.services.inference.registry.find(name, version);
    return toModelType(model, v);
  }

  @Authorized('inference')
  @Mutation(() => InferResult, { description: 'Runs a model on tensors (Open Inference Protocol shape); batched with other callers' })
  async infer(@Ctx() ctx: GraphQLContext, @Info() info: GraphQLResolveInfo, @Arg('input', () => InferInput) input: InferInput): Promise<InferResult> {
    const started = performance.now();
    const result = await metered(ctx, String(info.path.key), input.model, (meter, admit) => ctx.services.inference.infer(input, meter, admit));
    return {
      modelName: result.modelName,
      modelVersion: result.modelVersion,
      id: result.id,
      outputs: result.outputs.map((o) => new InferOutputTensor(o.name, o.datatype, o.shape, o.bytes)),
      timing: { queueMs: result.queueMs, computeMs: result.computeMs, totalMs: performance.now() - started },
      executionProvider: result.executionProvider,
      batchSize: result.batchSize,
    };
  }

  @Authorized('inference')
  @Mutation(() => ClassifyResult, { description: 'Classifies images (PNG etc. as base64, or raw pixels) with top-K labels and attention maps' })
  async classify(
    @Ctx() ctx: GraphQLContext,
    @Info() info: GraphQLResolveInfo,
    @Arg('model') model: string,
    @Arg('images', () => [ImageInput]) images: ImageInput[],
    @Arg('topK', () => Int, { defaultValue: 3 }) topK: number,
    @Arg('version', () => String, { nullable: true }) version?: string | null,
    @Arg('timeoutMs', () => Int, { nullable: true }) timeoutMs?: number | null,
  ): Promise<ClassifyResult> {
    const started = performance.now();
    const result = await metered(ctx, String(info.path.key), model, (meter, admit) =>
      ctx.services.inference.classify({ model, version, images, topK, timeoutMs }, meter, admit),
    );
    return {
      modelName: result.modelName,
      modelVersion: result.modelVersion,
      results: result.results,
      timing: { queueMs: result.queueMs, computeMs: result.computeMs, totalMs: performance.now() - started },
      executionProvider: result.executionProvider,
      batchSize: result.batchSize,
    };
  }

  @Authorized('admin')
  @Mutation(() => ModelType, { description: 'Loads a model (all versions, or one) from the repository, including ones added since start' })
  async loadModel(
    @Ctx() ctx: GraphQLContext,
    @Arg('name') name: string,
    @Arg('version', () => String, { nullable: true }) version?: string | null,
  ): Promise<ModelType> {
    return adminOperation(ctx, name, version, (registry) => registry.load(name, version));
  }

  @Authorized('admin')
  @Mutation(() => ModelType, { description: 'Unloads a model (all versions, or one); new requests are refused at once, queued and running ones finish first' })
  async unloadModel(
    @Ctx() ctx: GraphQLContext,
    @Arg('name') name: string,
    @Arg('version', () => String, { nullable: true }) version?: string | null,
  ): Promise<ModelType> {
    return adminOperation(ctx, name, version, (registry) => registry.unload(name, version));
  }

  @Authorized('admin')
  @Mutation(() => ModelType, { description: 'Re-reads config.json and weights; a failed reload leaves the old version serving (MODEL_UNAVAILABLE with the reason)' })
  async reloadModel(
    @Ctx() ctx: GraphQLContext,
    @Arg('name') name: string,
    @Arg('version', () => String, { nullable: true }) version?: string | null,
  ): Promise<ModelType> {
    return adminOperation(ctx, name, version, (registry) => registry.reload(name, version));
  }
}
