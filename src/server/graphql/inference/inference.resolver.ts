/**
 * The inference API: models, model, infer, classify, and the model admin
 * mutations. Thin: parse, call the inference pipeline (the service's model
 * views for the queries, the registry for the admin mutations), shape the result.
 */
import { performance } from 'node:perf_hooks';
import type { GraphQLResolveInfo } from 'graphql';
import { Arg, Authorized, Ctx, Info, Int, Mutation, Query, Resolver } from 'type-graphql';
import { assertModelAllowed, modelAllowed } from '../../../auth';
import { hasScope, MODEL_STATISTICS_SCOPE } from '../../../auth/scopes';
import { callerOf, type GraphQLContext } from '../context';
import type { ModelFleet } from '../../../inference/fleet';
import { BadInputError } from '../../../errors';
import type { ModelView } from '../../../inference/inference.service';
import { servedSignature, type ServedTensor } from '../../../inference/served-signature';
import {
  ClassifyResult,
  ExplainInput,
  ImageInput,
  SaliencyMap,
  InferInput,
  InferOutputTensor,
  InferResult,
  ModelConfigSource,
  ModelType,
  ModelCatalogVersionType,
  ModelChangeWait,
  ModelDesiredState,
  ModelWeightsSource,
  VersionWeightInput,
  toModelStatus,
  TensorDatatype,
} from './inference.types';
import type { CallContext, PipelineOutcome } from '../../../inference/pipeline';
import { recordLimitDecision } from '../limits-plugin';
import { deferUsage } from '../pending-usage';

/** `canReadStats`: the caller may read model statistics (MODEL_STATISTICS_SCOPE); otherwise stats is null. */
function toModelType(view: ModelView, canReadStats: boolean): ModelType {
  const config = view.config;
  const signature = servedSignature(config);
  const spec = (t: ServedTensor) => ({ ...t, datatype: TensorDatatype[t.datatype] });
  const s = view.stats;
  return {
    name: view.name,
    version: view.version,
    versions: view.versions.map((v) => ({ version: v.version, status: toModelStatus(v.status), reason: v.reason, executionProvider: v.executionProvider, source: ModelWeightsSource[v.source], digest: v.digest })),
    platform: signature.platform,
    status: toModelStatus(view.status),
    statusReason: view.reason,
    executionProvider: view.executionProvider,
    inputs: signature.inputs.map(spec),
    outputs: signature.outputs.map(spec),
    maxBatchSize: config?.maxBatchSize ?? 0,
    labels: config?.labels ?? [],
    description: config?.description ?? '',
    cost: config?.cost ?? 1,
    configSource: config ? ModelConfigSource[config.source] : null,
    stats: !canReadStats ? null : {
      requests: s.requests,
      failures: s.failures,
      inferences: s.inferences,
      executions: s.executions,
      meanBatchSize: s.executions > 0 ? s.batchedItems / s.executions : 0,
      meanQueueMs: s.requests > 0 ? s.queueMsTotal / s.requests : 0,
      meanComputeMs: s.requests > 0 ? s.computeMsTotal / s.requests : 0,
      pending: s.pending,
    },
  };
}

/** Model statistics count every tenant's traffic: only keys with MODEL_STATISTICS_SCOPE (admin) read them. */
function readsStats(ctx: GraphQLContext): boolean {
  return ctx.principal !== null && ctx.principal !== undefined && hasScope(ctx.principal, MODEL_STATISTICS_SCOPE);
}

/**
 * The protocol-neutral facts of this operation's next inference call. Its
 * usage record is held until the response is complete (pending-usage), so an
 * answer that fails after the resolver returned (an output that cannot be
 * serialized) is not billed as served.
 */
function callContext(ctx: GraphQLContext, info: GraphQLResolveInfo): CallContext {
  ctx.inferenceCalls += 1;
  const responseKey = String(info.path.key);
  return {
    usage: {
      record: (event, reservation) => deferUsage(ctx.pendingUsage, responseKey, event, reservation),
      // Made durable now, while the model runs; the held record supersedes it when the response is complete.
      reserve: (provisional) => ctx.services.usage.reserve(provisional),
    },
    // Authenticated once per operation when the context was built.
    caller: { principal: ctx.principal, authError: ctx.authError },
    requestId: ctx.requestId,
    clientChoseRequestId: ctx.request.headers['x-request-id'] === ctx.requestId,
    protocol: 'GRAPHQL',
    sequence: ctx.inferenceCalls,
    log: ctx.log,
    trace: ctx.trace,
  };
}

/** Puts the call's limit decision on the context (for the response headers) and unwraps the outcome. */
function settle<T>(ctx: GraphQLContext, outcome: PipelineOutcome<T>): T {
  recordLimitDecision(ctx, outcome.limits);
  if (!outcome.ok) throw outcome.error;
  return outcome.result;
}

/**
 * Runs a model admin operation through the fleet-wide catalog (every replica
 * follows; this one has applied it when the call answers) and answers with
 * the model at the version it touched.
 */
async function adminOperation(
  ctx: GraphQLContext,
  name: string,
  version: string | null | undefined,
  wait: ModelChangeWait,
  waitTimeoutMs: number,
  run: (fleet: ModelFleet, caller: ReturnType<typeof callerOf>) => Promise<bigint>,
): Promise<ModelType> {
  checkWaitTimeout(waitTimeoutMs);
  const generation = await run(ctx.services.fleet, callerOf(ctx));
  const fleet = wait === ModelChangeWait.FLEET ? await ctx.services.fleet.waitForFleet(name, generation, waitTimeoutMs) : null;
  return { ...toModelType(ctx.services.models.describe(name, version), readsStats(ctx)), fleet };
}

/** The longest a mutation may wait for the fleet: 10 minutes (a 200 MB model converges in seconds here). */
const MAX_WAIT_TIMEOUT_MS = 600_000;

function checkWaitTimeout(ms: number): void {
  if (!Number.isInteger(ms) || ms < 0 || ms > MAX_WAIT_TIMEOUT_MS) throw new BadInputError(`waitTimeoutMs must be 0 to ${MAX_WAIT_TIMEOUT_MS}`, 'waitTimeoutMs');
}

/** A model's versions as the catalog and this replica see them. */
async function catalogVersions(ctx: GraphQLContext, model: string): Promise<ModelCatalogVersionType[]> {
  const views = await ctx.services.fleet.versions(callerOf(ctx), model);
  return views.map((v) => ({
    model: v.model,
    version: String(v.version),
    source: ModelWeightsSource[v.source],
    desiredState: ModelDesiredState[v.desiredState],
    digest: v.digest,
    generation: v.generation,
    replicaStatus: toModelStatus(v.replicaStatus),
    replicaReason: v.replicaReason,
    appliedGeneration: v.appliedGeneration,
    trafficPercent: v.trafficPercent,
    shadowPercent: v.shadowPercent,
    warmupMs: v.warmupMs,
    warmupRuns: v.warmupRuns,
    shadowRuns: v.shadow.runs,
    shadowSkipped: v.shadow.skipped,
    shadowFailures: v.shadow.failures,
    shadowTop1Agreement: v.shadow.items > 0 ? v.shadow.top1Agreements / v.shadow.items : null,
    shadowMaxAbsDifference: v.shadow.runs > 0 ? v.shadow.maxAbsDifference : null,
    replicas: v.replicas.map((r) => ({ ...r, status: toModelStatus(r.status) })),
  }));
}

@Resolver()
export class InferenceResolver {
  @Authorized('inference')
  @Query(() => [ModelType], { description: 'Every model in the repository, each at its latest version' })
  models(@Ctx() ctx: GraphQLContext): ModelType[] {
    const models = ctx.services.models;
    const principal = ctx.principal!;
    return models
      .modelNames()
      .filter((name) => modelAllowed(principal, name))
      .map((name) => toModelType(models.describe(name), readsStats(ctx)));
  }

  @Authorized('inference')
  @Query(() => ModelType, { description: 'One model at a version (default: the latest READY one); NOT_FOUND if unknown' })
  model(
    @Ctx() ctx: GraphQLContext,
    @Arg('name', { description: 'Model name' }) name: string,
    @Arg('version', () => String, { nullable: true, description: 'Version folder name; absent: the latest READY one' }) version?: string | null,
  ): ModelType {
    assertModelAllowed(ctx.principal!, name);
    return toModelType(ctx.services.models.describe(name, version), readsStats(ctx));
  }

  @Authorized('inference')
  @Mutation(() => InferResult, { description: 'Runs a model on tensors (Open Inference Protocol shape); batched with other callers' })
  async infer(@Ctx() ctx: GraphQLContext, @Info() info: GraphQLResolveInfo, @Arg('input', () => InferInput, { description: 'Model, tensors and options' }) input: InferInput): Promise<InferResult> {
    const started = performance.now();
    const result = settle(ctx, await ctx.services.pipeline.infer(callContext(ctx, info), input));
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
  @Mutation(() => ClassifyResult, { description: 'Classifies images (PNG, JPEG or WebP as base64, or raw pixels) with top-K labels, attention maps and, with explain, saliency maps' })
  async classify(
    @Ctx() ctx: GraphQLContext,
    @Info() info: GraphQLResolveInfo,
    @Arg('model', { description: 'Model name (one that has labels and preprocessing in its config.json)' }) model: string,
    @Arg('images', () => [ImageInput], { description: 'The images, each an encoded file (image) or raw pixels; batched together' }) images: ImageInput[],
    @Arg('topK', () => Int, { defaultValue: 3, description: 'Classes to return per image, 1..the number of classes' }) topK: number,
    @Arg('version', () => String, { nullable: true, description: 'Version folder name; absent: the latest READY one' }) version?: string | null,
    @Arg('timeoutMs', () => Int, { nullable: true, description: 'Deadline in the queue in milliseconds; dropped with TIMEOUT if still queued then (default INFERENCE_DEFAULT_TIMEOUT_MS)' }) timeoutMs?: number | null,
    @Arg('explain', () => ExplainInput, { nullable: true, description: 'Saliency maps; OCCLUSION/RISE bill 1 + perturbations items per image' }) explain?: ExplainInput | null,
  ): Promise<ClassifyResult> {
    const started = performance.now();
    const result = settle(ctx, await ctx.services.pipeline.classify(callContext(ctx, info), { model, version, images, topK, timeoutMs, explain }));
    return {
      modelName: result.modelName,
      modelVersion: result.modelVersion,
      results: result.results.map((r) => ({ ...r, explanation: r.explanation ? new SaliencyMap(r.explanation) : null })),
      timing: { queueMs: result.queueMs, computeMs: result.computeMs, totalMs: performance.now() - started },
      executionProvider: result.executionProvider,
      batchSize: result.batchSize,
    };
  }

  @Authorized('models:manage')
  @Query(() => [ModelCatalogVersionType], { description: 'Every version of a model the fleet knows (the catalog, the seed repository, this replica): its source, the catalog\'s desired state and generation, and this replica\'s state. Scope: admin, or models:manage for the own tenant\'s private models.' })
  async modelVersions(@Ctx() ctx: GraphQLContext, @Arg('model', { description: 'Model name' }) model: string): Promise<ModelCatalogVersionType[]> {
    return catalogVersions(ctx, model);
  }

  @Authorized('models:manage')
  @Mutation(() => [ModelCatalogVersionType], {
    description:
      'Splits the requests that name no version across versions by percent (summing to 100; unlisted versions get none; an empty list clears the split), on every replica. A request that names a version gets that one; every answer names the version that served it. Scope: admin, or models:manage for the own tenant\'s private models.',
  })
  async setModelTraffic(
    @Ctx() ctx: GraphQLContext,
    @Arg('model', { description: 'Model name' }) model: string,
    @Arg('weights', () => [VersionWeightInput], { description: 'Each version\'s percent' }) weights: VersionWeightInput[],
    @Arg('wait', () => ModelChangeWait, { defaultValue: ModelChangeWait.REPLICA, description: 'REPLICA: answer once this replica applied the split; FLEET: once every live replica did (or waitTimeoutMs passed); each version\'s replicas say which lag' }) wait: ModelChangeWait,
    @Arg('waitTimeoutMs', () => Int, { defaultValue: 30_000, description: 'With wait: FLEET, how long to wait for the other replicas (0 to 600000 ms); the split is committed either way' }) waitTimeoutMs: number,
  ): Promise<ModelCatalogVersionType[]> {
    checkWaitTimeout(waitTimeoutMs);
    const generation = await ctx.services.fleet.setTraffic(callerOf(ctx), model, weights);
    if (wait === ModelChangeWait.FLEET) await ctx.services.fleet.waitForFleet(model, generation, waitTimeoutMs);
    return catalogVersions(ctx, model);
  }

  @Authorized('models:manage')
  @Mutation(() => [ModelCatalogVersionType], {
    description:
      'Runs a percentage of the model\'s served requests also on a candidate version, off the request path (never delaying, failing or changing an answer; never billed; skipped first under load), on every replica; its agreement with the serving version shows in modelVersions and /metrics. One shadow per model; percent 0 clears it. Scope: admin, or models:manage for the own tenant\'s private models.',
  })
  async setModelShadow(
    @Ctx() ctx: GraphQLContext,
    @Arg('model', { description: 'Model name' }) model: string,
    @Arg('version', { description: 'The candidate version, e.g. 2' }) version: string,
    @Arg('percent', () => Int, { description: 'Share (0-100) of served requests also run on it; 0 clears the shadow' }) percent: number,
  ): Promise<ModelCatalogVersionType[]> {
    await ctx.services.fleet.setShadow(callerOf(ctx), model, version, percent);
    return catalogVersions(ctx, model);
  }

  @Authorized('models:manage')
  @Mutation(() => [ModelCatalogVersionType], {
    description:
      'Restores the model\'s serving state from before its last serving change (publish, load, unload, reload, traffic split; a second rollback undoes the first) on every replica, in one change with its audit events (action model.rollback). BAD_USER_INPUT when there is no earlier state. Scope: admin, or models:manage for the own tenant\'s private models.',
  })
  async rollbackModel(@Ctx() ctx: GraphQLContext, @Arg('model', { description: 'Model name' }) model: string): Promise<ModelCatalogVersionType[]> {
    await ctx.services.fleet.rollback(callerOf(ctx), model);
    return catalogVersions(ctx, model);
  }

  @Authorized('models:manage')
  @Mutation(() => ModelType, { description: 'Loads a model (all versions, or one) on every replica (the fleet-wide catalog), including ones added to the repository since start; answers once this replica applied it. Scope: admin, or models:manage for the own tenant\'s private models' })
  async loadModel(
    @Ctx() ctx: GraphQLContext,
    @Arg('name', { description: 'Model name' }) name: string,
    @Arg('wait', () => ModelChangeWait, { defaultValue: ModelChangeWait.REPLICA, description: 'REPLICA: answer once this replica applied the change; FLEET: once every live replica did (or waitTimeoutMs passed), reporting which lag in fleet' }) wait: ModelChangeWait,
    @Arg('waitTimeoutMs', () => Int, { defaultValue: 30_000, description: 'With wait: FLEET, how long to wait for the other replicas (0 to 600000 ms); the change is committed either way' }) waitTimeoutMs: number,
    @Arg('version', () => String, { nullable: true, description: 'Only this version; absent: every version' }) version?: string | null,
  ): Promise<ModelType> {
    return adminOperation(ctx, name, version, wait, waitTimeoutMs, (fleet, caller) => fleet.setDesired(caller, name, version, 'LOADED', 'model.load'));
  }

  @Authorized('models:manage')
  @Mutation(() => ModelType, { description: 'Unloads a model (all versions, or one) on every replica (the fleet-wide catalog); new requests are refused at once, queued and running ones finish first. Scope: admin, or models:manage for the own tenant\'s private models' })
  async unloadModel(
    @Ctx() ctx: GraphQLContext,
    @Arg('name', { description: 'Model name' }) name: string,
    @Arg('wait', () => ModelChangeWait, { defaultValue: ModelChangeWait.REPLICA, description: 'REPLICA: answer once this replica applied the change; FLEET: once every live replica did (or waitTimeoutMs passed), reporting which lag in fleet' }) wait: ModelChangeWait,
    @Arg('waitTimeoutMs', () => Int, { defaultValue: 30_000, description: 'With wait: FLEET, how long to wait for the other replicas (0 to 600000 ms); the change is committed either way' }) waitTimeoutMs: number,
    @Arg('version', () => String, { nullable: true, description: 'Only this version; absent: every version' }) version?: string | null,
  ): Promise<ModelType> {
    return adminOperation(ctx, name, version, wait, waitTimeoutMs, (fleet, caller) => fleet.setDesired(caller, name, version, 'UNLOADED', 'model.unload'));
  }

  @Authorized('models:manage')
  @Mutation(() => ModelType, { description: 'Re-reads config and weights on every replica (the fleet-wide catalog); a failed reload leaves the old version serving (MODEL_UNAVAILABLE with the reason). Scope: admin, or models:manage for the own tenant\'s private models' })
  async reloadModel(
    @Ctx() ctx: GraphQLContext,
    @Arg('name', { description: 'Model name' }) name: string,
    @Arg('wait', () => ModelChangeWait, { defaultValue: ModelChangeWait.REPLICA, description: 'REPLICA: answer once this replica applied the change; FLEET: once every live replica did (or waitTimeoutMs passed), reporting which lag in fleet' }) wait: ModelChangeWait,
    @Arg('waitTimeoutMs', () => Int, { defaultValue: 30_000, description: 'With wait: FLEET, how long to wait for the other replicas (0 to 600000 ms); the change is committed either way' }) waitTimeoutMs: number,
    @Arg('version', () => String, { nullable: true, description: 'Only this version; absent: every version' }) version?: string | null,
  ): Promise<ModelType> {
    return adminOperation(ctx, name, version, wait, waitTimeoutMs, (fleet, caller) => fleet.setDesired(caller, name, version, 'LOADED', 'model.reload'));
  }
}
