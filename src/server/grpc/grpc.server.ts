/**
 * The Open Inference Protocol over gRPC (Triton's GRPCInferenceService and
 * grpc.health.v1) as a third front door onto the inference pipeline: same
 * keys (metadata `authorization: Bearer …`), limits, batching, timeouts
 * (the call's deadline bounds the run), usage records and error contract as
 * REST and GraphQL. Thin: parse, call the pipeline, shape. It listens on its
 * own port (GRPC_PORT), apart from the HTTP server, so the HTTP path carries
 * none of it.
 */
import { randomUUID } from 'node:crypto';
import {
  Metadata,
  Server,
  ServerCredentials,
  status,
  type sendUnaryData,
  type ServerDuplexStream,
  type ServerUnaryCall,
  type StatusObject,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import { BadInputError, DomainError } from '../../errors';
import { MODEL_STATISTICS_SCOPE, assertModelManageable, modelAllowed } from '../../auth/scopes';
import type { Actor } from '../../auth/actor';
import type { Scope } from '../../auth/principal';
import type { HeaderBag } from '../../auth/authenticator';
import { deferredChild, type Logger } from '../../log/logger';
import type { Tracing } from '../../tracing/tracing';
import type { RequestTrace } from '../../tracing/types';
import type { CallContext, InferencePipeline, PipelineOutcome } from '../../inference/pipeline';
import type { ModelCatalog } from '../../inference/model-catalog';
import { loadFileTarget, type ModelFleet, type TritonLoadParameters } from '../../inference/fleet';
import { tritonStatistics } from '../triton-statistics';
import { modelMetadata, tritonModelConfig } from '../triton-model';
import { VERSION } from '../../version';
import { acceptedRequestId } from '../../ids/request-id';
import { encodeModelInfer, parseModelInfer, type ModelInferRequestMessage, type ModelInferResponseMessage } from './grpc.codec';
import { guardedService, UnreadableMessage } from './grpc.bounds';
import { grpcStatus, limitMetadata } from './grpc.errors';
import { loadOipServices } from './grpc.protos';
import { StreamInfer, type StreamHost } from './grpc.stream';

/** Extensions this door implements (ServerMetadata): Triton's model configuration, statistics and repository. */
export const GRPC_EXTENSIONS = ['model_configuration', 'statistics', 'model_repository'];

/** The fully qualified name health checks may ask about, besides '' (the whole server). */
const SERVICE_NAME = 'inference.GRPCInferenceService';

export interface GrpcDoorDependencies {
  pipeline: InferencePipeline;
  models: ModelCatalog;
  /** The fleet-wide model catalog: RepositoryModelLoad/Unload change it as REST's load/unload do. */
  fleet: ModelFleet;
  /** True while the gateway takes requests (ready and not shutting down). */
  ready(): boolean;
  /** The largest message accepted, from BODY_LIMIT_BYTES (a larger one is RESOURCE_EXHAUSTED). */
  bodyLimitBytes: number;
  /** INFERENCE_MAX_TIMEOUT_MS: a longer deadline runs under this bound. */
  maxTimeoutMs: number;
  /** The JSON doors' value cap (maxJsonValues): a ModelInferRequest whose decoding would create more values is refused unread. */
  maxMessageValues: number;
  /** Server spans per call (and per stream request), continuing `traceparent` or `grpc-trace-bin`, as the HTTP doors do. */
  tracing: Tracing;
  log: Logger;
}

/** The metadata's text values as headers (binary `-bin` entries are not headers). */
export function headersOf(metadata: Metadata): HeaderBag {
  const headers: HeaderBag = {};
  for (const [key, value] of Object.entries(metadata.getMap())) if (typeof value === 'string') headers[key] = value;
  return headers;
}

/** The metadata's text values (what a trace context travels in). */
function textMetadata(metadata: Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata.getMap())) if (typeof value === 'string') out[key] = value;
  return out;
}

/** Milliseconds left of a call's deadline; null when it has none. */
function deadlineLeft(deadline: Date | number): number | null {
  const at = deadline instanceof Date ? deadline.getTime() : deadline;
  return Number.isFinite(at) ? at - Date.now() : null;
}

/** Throws a refused outcome as its gRPC status; keeps an admitted one's RateLimit fields for the trailer. */
type Refuse = (outcome: PipelineOutcome<unknown>) => void;

/** Triton's ModelRepositoryParameter as proto-loader decodes it (oneofs: true names the choice). */
interface RepositoryParameter {
  parameter_choice?: 'bool_param' | 'int64_param' | 'string_param' | 'bytes_param';
  string_param?: string;
  bytes_param?: Buffer;
}

interface RepositoryModelRequest {
  repository_name: string;
  model_name: string;
  parameters?: Record<string, RepositoryParameter>;
}

/**
 * A RepositoryModelLoad's parameters as Triton's gRPC client sends them:
 * `config` a string_param (Triton's JSON config, or modelgate's form),
 * `file:<v>/model.onnx` bytes_params (the raw weights), `file:warmup/<name>`
 * bytes_params (warm-up samples, Triton's input_data_file). Other names are
 * ignored, as Triton does.
 */
export function loadParameters(parameters: Record<string, RepositoryParameter>, maxUploadBytes: number, tooLarge: () => Error): TritonLoadParameters {
  const loaded: TritonLoadParameters = { files: new Map(), warmupFiles: new Map() };
  for (const [name, value] of Object.entries(parameters)) {
    if (name === 'config') {
      if (value.parameter_choice !== 'string_param') throw new BadInputError('config must be a string_param (the JSON model config)', 'parameters.config');
      loaded.config = value.string_param ?? '';
    } else if (name.startsWith('file:')) {
      const target = loadFileTarget(name);
      if (value.parameter_choice !== 'bytes_param' || !value.bytes_param) throw new BadInputError(`${name} must be a bytes_param (the file's bytes)`, `parameters.${name}`);
      if (value.bytes_param.length > maxUploadBytes) throw tooLarge();
      if ('version' in target) loaded.files.set(target.version, value.bytes_param);
      else loaded.warmupFiles.set(target.warmupFile, value.bytes_param);
    }
  }
  return loaded;
}

type Unary<Req, Res> = (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => void;

export class GrpcDoor implements StreamHost {
  private readonly server: Server;
  private readonly streams = new Set<StreamInfer>();
  private draining = false;

  constructor(private readonly deps: GrpcDoorDependencies) {
    // The message bound is the HTTP body bound: grpc-js refuses a larger message with RESOURCE_EXHAUSTED before it is parsed.
    this.server = new Server({ 'grpc.max_receive_message_length': deps.bodyLimitBytes });
    const { inference, health } = loadOipServices();
    this.server.addService(guardedService(inference, deps.maxMessageValues), this.inferenceService());
    this.server.addService(guardedService(health, deps.maxMessageValues), { Check: this.unary<{ service: string }, { status: string }>(async (call) => this.healthCheck(call.request.service)) });
  }

  /** Binds host:port (0: any free port) and resolves with the port bound. */
  listen(host: string, port: number): Promise<number> {
    const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound)));
    });
  }

  /**
   * Graceful drain, as gRPC's graceful stop: no new calls (grpc-js sends
   * GOAWAY and closes the listener), calls in flight answered, open streams
   * served until their clients close them; whatever is left at the drain
   * timeout is cut.
   */
  async close(drainTimeoutMs: number): Promise<void> {
    this.draining = true;
    this.deps.log.info({ openStreams: this.streams.size }, 'gRPC door draining: no new calls; calls in flight and open streams finish');
    let timer: NodeJS.Timeout | undefined;
    const drained = new Promise<'drained'>((resolve) => this.server.tryShutdown(() => resolve('drained')));
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), drainTimeoutMs);
    });
    const result = await Promise.race([drained, timedOut]);
    clearTimeout(timer);
    if (result === 'timeout') {
      this.deps.log.warn({ drainTimeoutMs }, 'gRPC drain timeout reached; cutting the calls left');
      this.server.forceShutdown();
    }
  }

  private healthCheck(service: string): { status: string } {
    if (service !== '' && service !== SERVICE_NAME) throw new DomainError('NOT_FOUND', `unknown service "${service}"`);
    return { status: this.deps.ready() ? 'SERVING' : 'NOT_SERVING' };
  }

  /** The pipeline's view of one gRPC call (a stream's requests each get their own sequence). */
  callContext(metadata: Metadata, sequence = 1): CallContext {
    return this.openCall(metadata, sequence, null).context;
  }

  /**
   * A call's context and, given its method, its server span under the
   * caller's trace context (`traceparent`, else `grpc-trace-bin`): the
   * pipeline's step spans hang under it. One log child per call, naming the
   * request and its span (a child per binding would cost a second one).
   */
  private openCall(metadata: Metadata, sequence: number, method: string | null): { context: CallContext; trace: RequestTrace | null } {
    const headers = textMetadata(metadata);
    const chosen = acceptedRequestId(headers['x-request-id']);
    const clientChose = chosen !== null;
    const requestId = chosen ?? randomUUID();
    const trace = method === null ? null : this.startTrace(metadata, headers, method, requestId);
    const log = deferredChild(this.deps.log, trace ? { requestId, door: 'grpc', trace_id: trace.traceId, span_id: trace.spanId } : { requestId, door: 'grpc' });
    return { trace, context: { caller: { headers }, requestId, clientChoseRequestId: clientChose, protocol: 'GRPC', sequence, log, ...(trace ? { trace } : {}) } };
  }

  private startTrace(metadata: Metadata, headers: Record<string, string>, method: string, requestId: string): RequestTrace {
    const bin = metadata.get('grpc-trace-bin')[0];
    return this.deps.tracing.startRpc({ service: SERVICE_NAME, method, headers, ...(Buffer.isBuffer(bin) ? { traceBin: bin } : {}), requestId });
  }

  /** A stream request's server span under the stream's trace context, and the context carrying it. */
  traced(context: CallContext, metadata: Metadata, method: string): { context: CallContext; trace: RequestTrace } {
    const trace = this.startTrace(metadata, textMetadata(metadata), method, context.requestId);
    return { trace, context: { ...context, trace, log: context.log.child({ trace_id: trace.traceId, span_id: trace.spanId }) } };
  }

  /**
   * A unary handler: `answer` gets the call's pipeline context and resolves
   * with the response; `refuse` throws a pipeline outcome's refusal and keeps
   * an admitted outcome's RateLimit fields for the trailer. Domain errors
   * become their status, anything else INTERNAL without its text (logged whole).
   */
  private unary<Req, Res>(answer: (call: ServerUnaryCall<Req, Res>, refuse: Refuse, context: CallContext) => Promise<Res> | Res, readsUnreadable = false): Unary<Req, Res> {
    return (call, callback) => {
      // The inference service's calls are traced (as REST's /v2 routes); health checks are not (probes would bury the traces).
      const path = call.getPath();
      const { context, trace } = this.openCall(call.metadata, 1, path.startsWith(`/${SERVICE_NAME}/`) ? path.slice(SERVICE_NAME.length + 2) : null);
      // Every answer names the call's span, as REST's `traceparent` response header does.
      const reply = (error: StatusObject | null, response?: Res, trailer?: Metadata) => {
        const metadata = error ? (error.metadata ?? new Metadata()) : trailer;
        if (trace && metadata) metadata.set('traceparent', trace.traceparent);
        if (error) callback({ ...error, metadata });
        else callback(null, response, metadata);
        trace?.end(error ? error.code : status.OK);
      };
      // A message the guard refused (grpc.bounds.ts) is answered BAD_INPUT, unless the handler charges it (ModelInfer).
      const unreadable: unknown = call.request;
      if (unreadable instanceof UnreadableMessage && !readsUnreadable) return reply(grpcStatus(unreadable.error, null, context.requestId));
      let trailer = limitMetadata(null, context.requestId);
      const refuse: Refuse = (outcome) => {
        if (!outcome.ok) throw new GrpcRefusal(grpcStatus(outcome.error, outcome.limits, context.requestId));
        trailer = limitMetadata(outcome.limits, context.requestId);
      };
      Promise.resolve()
        .then(() => answer(call, refuse, context))
        .then(
          (response) => reply(null, response, trailer),
          (error: unknown) => {
            if (error instanceof GrpcRefusal) return reply(error.status);
            if (error instanceof DomainError) return reply(grpcStatus(error, null, context.requestId));
            context.log.error({ err: error }, 'unexpected error in a gRPC call');
            return reply({ code: status.INTERNAL, details: 'Internal server error', metadata: limitMetadata(null, context.requestId) });
          },
        );
    };
  }

  /** Admits a model route's caller (scope, allowlist, one request of limits) as REST's model routes do. */
  private async admitted(context: CallContext, model: string | null, refuse: Refuse, scope: Scope = 'inference') {
    const outcome = await this.deps.pipeline.admitModelRoute(context.caller, model, context.log, context.trace, scope);
    refuse(outcome);
    // refuse threw unless the outcome is ok.
    return (outcome as Extract<typeof outcome, { ok: true }>).principal;
  }

  /** Who may change a model in the catalog: as REST's load/unload (admin, or `models:manage` for its tenant's private names). */
  private async managerCaller(call: { getPeer(): string; metadata: Metadata }, context: CallContext, refuse: Refuse, model: string): Promise<Actor> {
    const principal = await this.admitted(context, null, refuse);
    assertModelManageable(principal, model);
    const ua = headersOf(call.metadata)['user-agent'];
    return { principal, ip: call.getPeer(), userAgent: typeof ua === 'string' ? ua : null, requestId: context.requestId };
  }

  /** One ModelInfer through the pipeline: a message that does not parse is still charged and recorded. */
  async infer(call: CallContext, message: ModelInferRequestMessage | UnreadableMessage, deadline: Date | number): Promise<PipelineOutcome<ModelInferResponseMessage>> {
    if (message instanceof UnreadableMessage) return this.deps.pipeline.rejected(call, '', message.error);
    const left = deadlineLeft(deadline);
    let request;
    try {
      request = parseModelInfer(message, left === null ? null : Math.min(left, this.deps.maxTimeoutMs));
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      return this.deps.pipeline.rejected(call, message.model_name, error);
    }
    const outcome = await this.deps.pipeline.infer(call, request);
    return outcome.ok ? { ...outcome, result: encodeModelInfer(outcome.result) } : outcome;
  }

  /** Why over 80 lines: the service's handler table, one short entry per RPC, kept together so what is served reads in one place. */
  private inferenceService(): UntypedServiceImplementation {
    const { models, fleet } = this.deps;
    const describe = (name: string, version: string) => models.describe(name, version === '' ? null : version);
    return {
      ServerLive: this.unary(() => ({ live: true })),
      ServerReady: this.unary(() => ({ ready: this.deps.ready() })),
      ServerMetadata: this.unary(() => ({ name: 'modelgate', version: VERSION, extensions: GRPC_EXTENSIONS })),
      ModelReady: this.unary<{ name: string; version: string }, { ready: boolean }>(async (call, refuse, context) => {
        await this.admitted(context, call.request.name, refuse);
        return { ready: describe(call.request.name, call.request.version).status === 'READY' };
      }),
      ModelMetadata: this.unary<{ name: string; version: string }, unknown>(async (call, refuse, context) => {
        await this.admitted(context, call.request.name, refuse);
        return modelMetadata(describe(call.request.name, call.request.version));
      }),
      ModelConfig: this.unary<{ name: string; version: string }, unknown>(async (call, refuse, context) => {
        await this.admitted(context, call.request.name, refuse);
        const config = describe(call.request.name, call.request.version).config;
        if (!config) throw new DomainError('MODEL_UNAVAILABLE', `Model "${call.request.name}" has no served configuration (it failed to load)`);
        return { config: tritonModelConfig(config) };
      }),
      ModelStatistics: this.unary<{ name: string; version: string }, unknown>(async (call, refuse, context) => {
        const { name, version } = call.request;
        // Counters of every tenant's traffic: admin keys only (MODEL_STATISTICS_SCOPE), as over REST.
        const principal = await this.admitted(context, name === '' ? null : name, refuse, MODEL_STATISTICS_SCOPE);
        const names = name === '' ? models.modelNames().filter((n) => modelAllowed(principal, n)) : [name];
        const views = names.flatMap((n) => {
          const found = describe(n, version);
          return version !== '' ? [found] : found.versions.map((v) => models.describe(n, v.version));
        });
        return { model_stats: views.map(tritonStatistics) };
      }),
      RepositoryIndex: this.unary<{ repository_name: string; ready: boolean }, unknown>(async (call, refuse, context) => {
        const principal = await this.admitted(context, null, refuse);
        const index = models
          .modelNames()
          .filter((name) => modelAllowed(principal, name))
          .flatMap((name) => models.describe(name).versions.map((v) => ({ name, version: v.version, state: v.status, reason: v.reason ?? '' })))
          .filter((entry) => !call.request.ready || entry.state === 'READY');
        return { models: index };
      }),
      // Triton's model repository extension, fleet-wide: the same fleet calls as REST's load/unload (oip.repository.ts).
      RepositoryModelLoad: this.unary<RepositoryModelRequest, Record<string, never>>(async (call, refuse, context) => {
        const caller = await this.managerCaller(call, context, refuse, call.request.model_name);
        const parameters = loadParameters(call.request.parameters ?? {}, fleet.maxUploadBytes, () => fleet.tooLarge());
        await fleet.tritonLoad(caller, call.request.model_name, parameters);
        return {};
      }),
      RepositoryModelUnload: this.unary<RepositoryModelRequest, Record<string, never>>(async (call, refuse, context) => {
        const caller = await this.managerCaller(call, context, refuse, call.request.model_name);
        await fleet.setDesired(caller, call.request.model_name, null, 'UNLOADED', 'model.unload');
        return {};
      }),
      ModelInfer: this.unary<ModelInferRequestMessage, unknown>(async (call, refuse, context) => {
        const outcome = await this.infer(context, call.request, call.getDeadline());
        refuse(outcome);
        return (outcome as Extract<typeof outcome, { ok: true }>).result;
      }, true),
      ModelStreamInfer: (call: ServerDuplexStream<ModelInferRequestMessage | UnreadableMessage, unknown>) => this.openStream(call),
    };
  }

  private openStream(call: ServerDuplexStream<ModelInferRequestMessage | UnreadableMessage, unknown>): void {
    if (this.draining) {
      call.emit('error', { code: status.UNAVAILABLE, details: 'the server is shutting down; reconnect', metadata: new Metadata() } satisfies StatusObject);
      return;
    }
    const stream = new StreamInfer(call, this, () => this.streams.delete(stream));
    this.streams.add(stream);
  }
}

/** A pipeline refusal on its way to the unary callback. */
class GrpcRefusal extends Error {
  constructor(readonly status: StatusObject) {
    super(status.details);
  }
}
