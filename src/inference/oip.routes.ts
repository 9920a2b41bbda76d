/**
 * Open Inference Protocol (KServe v2 REST, Triton's HTTP conventions) as a
 * second front door onto the inference pipeline: health, server and model
 * metadata, model readiness, and inference with JSON or binary tensors.
 * Thin: parse, call the pipeline, shape. Same keys, limits, batching and
 * usage records as GraphQL; errors as OIP's `{"error": "..."}` plus
 * modelgate's `code` and `requestId`.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Services } from '../server/services';
import { DomainError, httpStatusFor } from '../errors';
import type { Logger } from '../log/logger';
import { rateLimitHeaders } from '../ratelimit/headers';
import type { LimitDecision } from '../ratelimit/types';
import { VERSION } from '../version';
import type { PipelineOutcome } from './pipeline';
import { decodeBody, encodeInferResponse, headerLength, parseInferRequest } from './oip.codec';

/** The protocol extensions this server implements (server metadata `extensions`). */
export const OIP_EXTENSIONS = ['binary_tensor_data'];

type ModelParams = { model: string; version?: string };

/** OIP's statuses: the gateway's own where it has one (401, 403, 429, 503, 504), else 404 / 400 / 500. */
export function oipStatusFor(code: string): number {
  const status = httpStatusFor(code);
  if (status) return status;
  if (code === 'NOT_FOUND') return 404;
  if (code === 'INTERNAL') return 500;
  return 400;
}

function setLimitHeaders(reply: FastifyReply, decision: LimitDecision | null): void {
  if (decision) for (const [name, value] of Object.entries(rateLimitHeaders(decision))) void reply.header(name, value);
}

function sendError(request: FastifyRequest, reply: FastifyReply, error: DomainError, decision: LimitDecision | null): FastifyReply {
  setLimitHeaders(reply, decision);
  const { http: _http, ...extensions } = error.extensions;
  return reply.code(oipStatusFor(error.code)).send({ error: error.message, code: error.code, ...extensions, requestId: request.id });
}

/** Settles a pipeline outcome: limit headers always, the error in OIP shape, else null for the caller to answer. */
function failed<T>(request: FastifyRequest, reply: FastifyReply, outcome: PipelineOutcome<T>): FastifyReply | null {
  if (outcome.ok) {
    setLimitHeaders(reply, outcome.limits);
    return null;
  }
  return sendError(request, reply, outcome.error, outcome.limits);
}

export function registerOipRoutes(app: FastifyInstance, services: Services): void {
  const { pipeline, readiness, lifecycle, inference } = services;

  void app.register(async (scope) => {
    // Inference bodies are JSON, or JSON followed by raw tensor bytes (any
    // content type, usually application/octet-stream): read them whole and
    // parse here, where Inference-Header-Content-Length says where the JSON ends.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => done(null, body));

    scope.get('/v2/health/live', async () => ({ live: true }));
    scope.get('/v2/health/ready', async (_request, reply) => {
      const ready = readiness.report().ready && !lifecycle.isShuttingDown;
      return reply.code(ready ? 200 : 503).send({ ready });
    });
    scope.get('/v2', async () => ({ name: 'modelgate', version: VERSION, extensions: OIP_EXTENSIONS }));

    const metadata = async (request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
      const { model, version } = request.params;
      const admitted = await pipeline.admitModelRoute({ headers: request.headers }, model, request.log as unknown as Logger);
      const refused = failed(request, reply, admitted);
      if (refused) return refused;
      try {
        const { model: registered, version: v } = inference.registry.find(model, version ?? null);
        const batching = (v.config?.maxBatchSize ?? 0) > 0;
        const tensor = (t: { name: string; datatype: string; dims: number[] }) => ({
          name: t.name,
          datatype: t.datatype,
          shape: batching ? [-1, ...t.dims] : t.dims,
        });
        return reply.send({
          name: registered.name,
          versions: [...registered.versions.keys()].sort((a, b) => a - b).map(String),
          platform: v.config?.platform ?? 'onnxruntime_onnx',
          inputs: v.config?.inputs.map(tensor) ?? [],
          outputs: v.config?.outputs.map(tensor) ?? [],
        });
      } catch (error) {
        if (error instanceof DomainError) return sendError(request, reply, error, null);
        throw error;
      }
    };
    scope.get('/v2/models/:model', metadata);
    scope.get('/v2/models/:model/versions/:version', metadata);

    // Ready: 200 when the version takes requests; otherwise 503 (Triton's clients read any non-200 as not ready).
    const ready = async (request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
      const { model, version } = request.params;
      const admitted = await pipeline.admitModelRoute({ headers: request.headers }, model, request.log as unknown as Logger);
      const refused = failed(request, reply, admitted);
      if (refused) return refused;
      try {
        const { version: v } = inference.registry.find(model, version ?? null);
        const isReady = v.status === 'READY';
        return reply.code(isReady ? 200 : 503).send({ name: model, version: String(v.version), ready: isReady });
      } catch (error) {
        if (error instanceof DomainError) return sendError(request, reply, error, null);
        throw error;
      }
    };
    scope.get('/v2/models/:model/ready', ready);
    scope.get('/v2/models/:model/versions/:version/ready', ready);

    const infer = async (request: FastifyRequest<{ Params: ModelParams }>, reply: FastifyReply) => {
      const { model, version } = request.params;
      const log = request.log as unknown as Logger;
      const call = {
        caller: { headers: request.headers },
        requestId: request.id,
        clientChoseRequestId: request.headers['x-request-id'] === request.id,
        sequence: 1,
        log,
      };
      let parsed: ReturnType<typeof parseInferRequest>;
      try {
        const raw = Buffer.isBuffer(request.body) ? request.body : Buffer.alloc(0);
        const body = decodeBody(raw, request.headers['content-encoding'], services.config.bodyLimitBytes);
        parsed = parseInferRequest(body, headerLength(request.headers['inference-header-content-length']), { model, version: version ?? null });
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
  });
}
