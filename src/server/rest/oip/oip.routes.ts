/**
 * Open Inference Protocol (KServe v2 REST, Triton's HTTP conventions) as a
 * second front door onto the inference pipeline: health, server and model
 * metadata, model readiness, and inference with JSON or binary tensors.
 * Thin: parse, call the pipeline, shape. Same keys, limits, batching and
 * usage records as GraphQL; errors as OIP's `{"error": "..."}` plus
 * modelgate's `code` and `requestId`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError } from '../../../errors';
import { MODEL_STATISTICS_SCOPE, modelAllowed } from '../../../auth/scopes';
import type { Scope } from '../../../auth/principal';
import { tritonStatistics } from '../../triton-statistics';
import { oipErrorBody, statusFor } from '../../../errors/contract';
import type { Logger } from '../../../log/logger';
import { rateLimitHeaders } from '../../../ratelimit/headers';
import type { LimitDecision } from '../../../ratelimit/types';
import { VERSION } from '../../../version';
import { tritonTypeName } from '../../../inference/triton-config';
import type { InferencePipeline, PipelineOutcome } from '../../../inference/pipeline';
import type { ModelCatalog } from '../../../inference/model-catalog';
import type { ModelFleet, ReplicaVersionView } from '../../../inference/fleet';
import { registerRepositoryRoutes, registerUploadRoute } from './oip.repository';
import { encodeInferResponse, headerLength, parseInferRequest } from './oip.codec';
import { readBoundedBody, type BoundedBody } from '../bounded-body';
import { HttpRefusal, maxJsonValues } from '../http-errors';
import { encodeExplainResponse, parseExplainParameters, restField } from './oip.explain';
import { NOOP_STEPS } from '../../../tracing/noop';

/**
 * The protocol extensions this server implements (server metadata
 * `extensions`). Triton's `model_repository`: the index, and load/unload
 * over REST acting on the fleet-wide catalog (oip.repository.ts; not over gRPC).
 * `modelgate_explain` is modelgate's own: POST /v2/models/{m}/explain.
 */
export const OIP_EXTENSIONS = ['binary_tensor_data', 'model_configuration', 'statistics', 'model_repository', 'modelgate_explain'];

type ModelParams = { model: string; version?: string };

function setLimitHeaders(reply: FastifyReply, decision: LimitDecision | null): void {
  if (decision) for (const [name, value] of Object.entries(rateLimitHeaders(decision))) void reply.header(name, value);
}

function sendError(request: FastifyRequest, reply: FastifyReply, error: DomainError, decision: LimitDecision | null): FastifyReply {
  setLimitHeaders(reply, decision);
  const { http: _http, ...extensions } = error.extensions;
  return reply.code(statusFor(error.code)).send(oipErrorBody(error.code, error.message, request.id, extensions));
}

/** Settles a pipeline outcome: limit headers always, the error in OIP shape, else null for the caller to answer. */
function failed<T>(request: FastifyRequest, reply: FastifyReply, outcome: PipelineOutcome<T>): FastifyReply | null {
  if (outcome.ok) {
    setLimitHeaders(reply, outcome.limits);
    return null;
  }
  return sendError(request, reply, outcome.error, outcome.limits);
}

/** request.log is the pino child logger fastify made for the request (it carries the request id); pino's Logger is its run-time type. */
function requestLog(request: FastifyRequest): Logger {
  return request.log as unknown as Logger;
}

/** The bytes the bounded reader kept (inflated), or its refusal of their encoding. */
function bodyBytes(body: unknown): Buffer {
  const read = body as BoundedBody | undefined;
  if (read?.error) throw read.error;
  return read?.bytes ?? Buffer.alloc(0);
}

/** The body the bounded reader kept, parsed as an OIP inference request for the route's model and version. */
function parseRestInfer(request: FastifyRequest<{ Params: ModelParams }>): ReturnType<typeof parseInferRequest> {
  const body = bodyBytes(request.body);
  const { model, version } = request.params;
  return parseInferRequest(body, headerLength(request.headers['inference-header-content-length']), { model, version: version ?? null });
}

/** The pipeline's view of a REST inference call: one call per HTTP request. */
function restCall(request: FastifyRequest) {
  return {
    caller: { headers: request.headers },
    requestId: request.id,
    clientChoseRequestId: request.headers['x-request-id'] === request.id,
    protocol: 'REST' as const,
    sequence: 1,
    log: requestLog(request),
    trace: request.trace ?? NOOP_STEPS,
  };
}

/** What the OIP door needs: the request pipeline, the model catalog, readiness, and the body limit. */
export interface OipDependencies {
  pipeline: InferencePipeline;
  models: ModelCatalog;
  /** The fleet-wide catalog behind the repository load/unload routes. */
  fleet: ModelFleet;
  /** True while the gateway takes requests (ready and not shutting down). */
  ready(): boolean;
  bodyLimitBytes: number;
  /** GraphQL's list-element cap; JSON bodies are bounded by the same count of values (maxJsonValues). */
  maxListElements: number;
}

export function registerOipRoutes(app: FastifyInstance, dependencies: OipDependencies): void {
  // The streamed model upload reads its own body (bounded by MODEL_UPLOAD_MAX_BYTES, not BODY_LIMIT_BYTES).
  void app.register(async (scope) => registerUploadRoute(scope, dependencies));
  void app.register(async (scope) => {
    // Inference bodies are JSON, or JSON followed by raw tensor bytes (any
    // content type, usually application/octet-stream): read them whole and
    // parse here, where Inference-Header-Content-Length says where the JSON ends.
    // The read is bounded as it happens: wire bytes, inflated bytes, JSON values (bounded-body.ts).
    const { bodyLimitBytes } = dependencies;
    const maxValues = maxJsonValues(dependencies.maxListElements);
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', (request, payload, done) => {
      if (Number(request.headers['content-length']) > bodyLimitBytes) {
        done(new HttpRefusal(413, 'PAYLOAD_TOO_LARGE', `Request body exceeds the limit of ${bodyLimitBytes} bytes (BODY_LIMIT_BYTES)`), undefined);
        return;
      }
      const header = request.headers['inference-header-content-length'];
      const jsonBytes = typeof header === 'string' && /^\s*\d{1,15}\s*$/.test(header) ? Number(header) : null;
      readBoundedBody(payload, { encoding: request.headers['content-encoding'], limitBytes: bodyLimitBytes, maxValues, jsonBytes }).then(
        (body) => done(null, body),
        (error: Error) => done(error, undefined),
      );
    });
    registerServerRoutes(scope, dependencies);
    registerModelRoutes(scope, dependencies);
    registerModelExtensionRoutes(scope, dependencies);
    registerRepositoryRoutes(scope, dependencies);
    registerInferRoutes(scope, dependencies);
    registerExplainRoutes(scope, dependencies);
  });
}

/** Server liveness, readiness and metadata. */
function registerServerRoutes(scope: FastifyInstance, { ready: takesRequests }: OipDependencies): void {
  scope.get('/v2/health/live', async () => ({ live: true }));
  scope.get('/v2/health/ready', async (_request, reply) => {
    const ready = takesRequests();
    return reply.code(ready ? 200 : 503).send({ ready });
  });
  scope.get('/v2', async () => ({ name: 'modelgate', version: VERSION, extensions: OIP_EXTENSIONS }));
}

/**
 * A GET route about one model, at /v2/models/{m}<suffix> and
 * /v2/models/{m}/versions/{v}<suffix>: the key is admitted for that model
 * (scope, allowlist, one request of limits) and domain errors answer in the
 * OIP shape, so each route only says what it answers.
 */
function modelRoute(
  scope: FastifyInstance,
  pipeline: InferencePipeline,
  suffix: string,
  answer: (reply: FastifyReply, params: ModelParams) => Promise<FastifyReply>,
  requiredScope: Scope = 'inference',
): void {
  const handler = async (request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
    const admitted = await pipeline.admitModelRoute({ headers: request.headers }, request.params.model, requestLog(request), request.trace ?? NOOP_STEPS, requiredScope);
    const refused = failed(request, reply, admitted);
    if (refused) return refused;
    try {
      return await answer(reply, request.params);
    } catch (error) {
      if (error instanceof DomainError) return sendError(request, reply, error, null);
      throw error;
    }
  };
  scope.get(`/v2/models/:model${suffix}`, handler);
  scope.get(`/v2/models/:model/versions/:version${suffix}`, handler);
}

/** Model metadata and readiness, and the repository index. */
function registerModelRoutes(scope: FastifyInstance, { pipeline, models: inference, fleet }: OipDependencies): void {
  const route = (suffix: string, answer: (reply: FastifyReply, params: ModelParams) => Promise<FastifyReply>) => modelRoute(scope, pipeline, suffix, answer);
  route('', async (reply, { model, version }) => {
    const v = inference.describe(model, version ?? null);
    const batching = (v.config?.maxBatchSize ?? 0) > 0;
    const tensor = (t: { name: string; datatype: string; dims: number[] }) => ({
      name: t.name,
      datatype: t.datatype,
      shape: batching ? [-1, ...t.dims] : t.dims,
    });
    return reply.send({
      name: v.name,
      versions: v.versions.map((x) => x.version),
      platform: v.config?.platform ?? 'onnxruntime_onnx',
      inputs: v.config?.inputs.map(tensor) ?? [],
      outputs: v.config?.outputs.map(tensor) ?? [],
    });
  });

  // Ready: 200 when the version takes requests; otherwise 503 (Triton's clients read any non-200 as not ready).
  route('/ready', async (reply, { model, version }) => {
    const v = inference.describe(model, version ?? null);
    const isReady = v.status === 'READY';
    return reply.code(isReady ? 200 : 503).send({ name: v.name, version: v.version, ready: isReady });
  });

  // Triton's repository index: every version of every model the key may see, with its state.
  scope.post('/v2/repository/index', async (request, reply) => {
    const admitted = await pipeline.admitModelRoute({ headers: request.headers }, null, requestLog(request), request.trace ?? NOOP_STEPS);
    const refused = failed(request, reply, admitted);
    if (refused || !admitted.ok) return refused;
    // Each entry also carries every live replica's state of the version (issue #23: convergence), from their reports;
    // per-version fields only: a replica's catalog-wide generation would tell any key that some model changed.
    const replicas = await fleet.replicaStates().catch(() => new Map<string, ReplicaVersionView[]>());
    const index = inference
      .modelNames()
      .filter((name) => modelAllowed(admitted.principal, name))
      .flatMap((name) =>
        inference.describe(name).versions.map((v) => ({
          name,
          version: v.version,
          state: v.status,
          source: v.source,
          ...(v.reason ? { reason: v.reason } : {}),
          replicas: (replicas.get(`${name}/${v.version}`) ?? []).map((r) => ({ replica: r.replica, state: r.status, applied_generation: r.appliedGeneration, lagging: r.lagging, ...(r.reason ? { reason: r.reason } : {}) })),
        })),
      );
    return reply.send(index);
  });

}

/** Triton's model configuration and statistics extensions. */
function registerModelExtensionRoutes(scope: FastifyInstance, { pipeline, models: inference }: OipDependencies): void {
  const route = (suffix: string, answer: (reply: FastifyReply, params: ModelParams) => Promise<FastifyReply>) => modelRoute(scope, pipeline, suffix, answer);

  // Triton's model configuration extension, in its JSON form (the fields modelgate serves with).
  route('/config', async (reply, { model, version }) => {
    const config = inference.describe(model, version ?? null).config;
    if (!config) throw new DomainError('MODEL_UNAVAILABLE', `Model "${model}" has no served configuration (it failed to load)`);
    const tensor = (t: { name: string; datatype: string; dims: number[] }) => ({ name: t.name, data_type: tritonTypeName(t.datatype), dims: t.dims });
    return reply.send({
      name: config.name,
      platform: config.platform,
      backend: 'onnxruntime',
      max_batch_size: config.maxBatchSize,
      input: config.inputs.map(tensor),
      output: config.outputs.map(tensor),
      ...(config.maxBatchSize > 0
        ? { dynamic_batching: { preferred_batch_size: config.preferredBatchSizes, max_queue_delay_microseconds: Math.round(config.maxQueueDelayMs * 1000), default_queue_policy: { max_queue_size: config.maxQueueSize } } }
        : {}),
      parameters: {
        configSource: { string_value: config.source },
        cost: { string_value: String(config.cost) },
        // Fields of a Triton config.pbtxt (or a load's Triton JSON) that modelgate does not honour.
        ...(config.warnings.length > 0 ? { configWarnings: { string_value: config.warnings.join('; ') } } : {}),
      },
    });
  });

  // Triton's statistics extension, from the same per-version counters as the GraphQL `model { stats }`.
  // They count every tenant's traffic: admin keys only (MODEL_STATISTICS_SCOPE).
  const versionsOf = (model: string, version: string | null) => {
    const found = inference.describe(model, version);
    return version ? [found] : found.versions.map((x) => inference.describe(model, x.version));
  };
  modelRoute(scope, pipeline, '/stats', async (reply, { model, version }) => reply.send({ model_stats: versionsOf(model, version ?? null).map(tritonStatistics) }), MODEL_STATISTICS_SCOPE);
  // Every version of every model the key may see (a static route: it wins over /v2/models/:model).
  scope.get('/v2/models/stats', async (request, reply) => {
    const admitted = await pipeline.admitModelRoute({ headers: request.headers }, null, requestLog(request), request.trace ?? NOOP_STEPS, MODEL_STATISTICS_SCOPE);
    const refused = failed(request, reply, admitted);
    if (refused || !admitted.ok) return refused;
    const names = inference.modelNames().filter((name) => modelAllowed(admitted.principal, name));
    return reply.send({ model_stats: names.flatMap((name) => versionsOf(name, null)).map(tritonStatistics) });
  });
}

/** Triton's inference route, JSON or binary tensors. */
function registerInferRoutes(scope: FastifyInstance, { pipeline }: OipDependencies): void {
  const infer = async (request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
    const { model } = request.params;
    const call = restCall(request);
    let parsed: ReturnType<typeof parseInferRequest>;
    try {
      parsed = parseRestInfer(request);
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      // A body that does not parse is still an inference call of this key: the pipeline
      // authenticates, charges and records it like any other bad input.
      const outcome = await pipeline.rejected(call, model, error);
      return sendError(request, reply, outcome.error, outcome.limits);
    }
    const outcome = await pipeline.infer(call, parsed.request);
    const refused = failed(request, reply, outcome);
    if (refused || !outcome.ok) return refused;
    const encoded = encodeInferResponse(parsed, outcome.result);
    if (encoded.headerLength !== null) void reply.header('inference-header-content-length', String(encoded.headerLength));
    return reply.type(encoded.contentType).send(encoded.body);
  };
  scope.post('/v2/models/:model/infer', infer);
  scope.post('/v2/models/:model/versions/:version/infer', infer);
}

/** modelgate's explain extension. */
function registerExplainRoutes(scope: FastifyInstance, { pipeline }: OipDependencies): void {
  // modelgate extension: saliency maps, the same pipeline step as GraphQL classify(explain: …).
  const explain = async (request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
    const { model, version } = request.params;
    const call = restCall(request);
    let parsed: ReturnType<typeof parseInferRequest>;
    let options: ReturnType<typeof parseExplainParameters>;
    try {
      parsed = parseRestInfer(request);
      options = parseExplainParameters(parsed.parameters ?? {});
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      const outcome = await pipeline.rejected(call, model, error);
      return sendError(request, reply, outcome.error, outcome.limits);
    }
    const outcome = await pipeline.classify(call, {
      model,
      version: version ?? null,
      images: [],
      tensors: parsed.request.inputs,
      topK: 1,
      timeoutMs: parsed.request.parameters?.timeoutMs ?? null,
      explain: options,
    });
    if (!outcome.ok && outcome.error.code === 'BAD_USER_INPUT' && outcome.error.extensions['field'] !== undefined) {
      const error = new DomainError(outcome.error.code, outcome.error.message, { ...outcome.error.extensions, field: restField(outcome.error.extensions['field']) });
      return sendError(request, reply, error, outcome.limits);
    }
    const refused = failed(request, reply, outcome);
    if (refused || !outcome.ok) return refused;
    return reply.send(encodeExplainResponse(outcome.result, parsed.request.id ?? null));
  };
  scope.post('/v2/models/:model/explain', explain);
  scope.post('/v2/models/:model/versions/:version/explain', explain);
}
