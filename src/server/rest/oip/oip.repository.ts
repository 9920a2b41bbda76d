/**
 * Triton's model repository extension, fleet-wide (issue #23):
 * `POST /v2/repository/models/{m}/load` with optional
 * `{"parameters": {"config": "<JSON>", "file:<v>/model.onnx": "<base64>"}}`
 * (Triton's override semantics) and `POST /v2/repository/models/{m}/unload`.
 * Both change the catalog, so every replica follows; the call answers once
 * this replica applied the change. Admin keys any model; `models:manage`
 * keys their own tenant's private models (`<tenant id>.<name>`), another
 * tenant's name answering as an unknown model. Large weights go
 * through the streamed upload instead (`registerUploadRoute`). The gRPC
 * door's RepositoryModelLoad/Unload call the same fleet methods.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BadInputError, DomainError } from '../../../errors';
import { oipErrorBody, statusFor } from '../../../errors/contract';
import { assertModelManageable } from '../../../auth/scopes';
import type { Actor } from '../../../auth/actor';
import type { InferencePipeline } from '../../../inference/pipeline';
import { loadFileTarget, type ModelFleet, type TritonLoadParameters } from '../../../inference/fleet';
import { NOOP_STEPS } from '../../../tracing/noop';
import { requestLogger } from '../../../log/logger';
import type { BoundedBody } from '../bounded-body';
import type { Readable } from 'node:stream';

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

type Params = { model: string };

/** The most a REST call may wait for the fleet (`timeout_ms`), as GraphQL's waitTimeoutMs. */
const MAX_WAIT_MS = 600_000;
const DEFAULT_WAIT_MS = 30_000;

/**
 * `?wait=fleet[&timeout_ms=N]`: the timeout to wait for every live replica
 * after this one applied the change; null without `wait=fleet`.
 */
function fleetWait(query: unknown): number | null {
  const q = (query ?? {}) as Record<string, unknown>;
  const wait = q['wait'];
  if (wait === undefined || wait === 'replica') return null;
  if (wait !== 'fleet') throw new BadInputError('wait must be replica or fleet', 'wait');
  const raw = q['timeout_ms'];
  if (raw === undefined) return DEFAULT_WAIT_MS;
  const ms = Number(raw);
  if (typeof raw !== 'string' || !/^\d+$/.test(raw) || ms > MAX_WAIT_MS) throw new BadInputError(`timeout_ms must be 0 to ${MAX_WAIT_MS}`, 'timeout_ms');
  return ms;
}

/**
 * The answer of a change: `{}` (Triton's) without a fleet wait; with one,
 * `{fleet: {...}}`, 200 when every live replica converged, 202 when the
 * change is committed but some replica lags or failed it (listed).
 */
async function answerChange(reply: FastifyReply, fleet: ModelFleet, model: string, generation: bigint, waitMs: number | null, body: Record<string, unknown> = {}): Promise<FastifyReply> {
  if (waitMs === null) return reply.code(200).send(body);
  const c = await fleet.waitForFleet(model, generation, waitMs);
  const report = {
    generation: c.generation,
    converged: c.converged,
    waited_ms: c.waitedMs,
    replicas: c.replicas.map((r) => ({ replica: r.replica, host: r.host, pid: r.pid, generation: r.generation, lagging: r.lagging, failures: r.failures })),
  };
  return reply.code(c.converged ? 200 : 202).send({ ...body, fleet: report });
}

function parseBody(body: unknown): Record<string, unknown> {
  const read = body as BoundedBody | undefined;
  if (read?.error) throw read.error;
  const bytes = read?.bytes ?? Buffer.alloc(0);
  if (bytes.length === 0) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new BadInputError('The body is not valid JSON', 'body');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new BadInputError('The body must be a JSON object', 'body');
  const parameters = (parsed as Record<string, unknown>)['parameters'];
  if (parameters === undefined) return {};
  if (typeof parameters !== 'object' || parameters === null || Array.isArray(parameters)) throw new BadInputError('parameters must be an object', 'parameters');
  return parameters as Record<string, unknown>;
}

/** `file:<v>/model.onnx` and `file:warmup/<name>` parameters, base64-decoded; any other `file:` path is refused. */
function filesOf(parameters: Record<string, unknown>, maxBytes: number, fleet: ModelFleet): Pick<TritonLoadParameters, 'files' | 'warmupFiles'> {
  const files = new Map<number, Uint8Array>();
  const warmupFiles = new Map<string, Uint8Array>();
  for (const [name, value] of Object.entries(parameters)) {
    if (!name.startsWith('file:')) continue;
    const target = loadFileTarget(name);
    if (typeof value !== 'string' || !BASE64.test(value) || value.length % 4 !== 0) throw new BadInputError(`${name} must be base64`, `parameters.${name}`);
    if ((value.length / 4) * 3 - (value.endsWith('==') ? 2 : value.endsWith('=') ? 1 : 0) > maxBytes) throw fleet.tooLarge();
    if ('version' in target) files.set(target.version, Buffer.from(value, 'base64'));
    else warmupFiles.set(target.warmupFile, Buffer.from(value, 'base64'));
  }
  return { files, warmupFiles };
}

export function registerRepositoryRoutes(scope: FastifyInstance, { pipeline, fleet }: { pipeline: InferencePipeline; fleet: ModelFleet }): void {
  const route = (suffix: 'load' | 'unload', act: (caller: Actor, request: FastifyRequest<{ Params: Params }>) => Promise<bigint>) => {
    scope.post<{ Params: Params }>(`/v2/repository/models/:model/${suffix}`, async (request, reply: FastifyReply) => {
      const log = requestLogger(request);
      const admitted = await pipeline.admitModelRoute({ headers: request.headers }, null, log, request.trace ?? NOOP_STEPS);
      try {
        if (!admitted.ok) throw admitted.error;
        assertModelManageable(admitted.principal, request.params.model);
        const waitMs = fleetWait(request.query);
        const ua = request.headers['user-agent'];
        const generation = await act({ principal: admitted.principal, ip: request.ip, userAgent: typeof ua === 'string' ? ua : null, requestId: request.id }, request);
        return await answerChange(reply, fleet, request.params.model, generation, waitMs);
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
        const { http: _http, ...extensions } = error.extensions;
        return reply.code(statusFor(error.code)).send(oipErrorBody(error.code, error.message, request.id, extensions));
      }
    });
  };
  route('load', async (caller, request) => {
    const parameters = parseBody(request.body);
    return fleet.tritonLoad(caller, request.params.model, { config: parameters['config'], ...filesOf(parameters, fleet.maxUploadBytes, fleet) });
  });
  route('unload', async (caller, request) => {
    parseBody(request.body);
    return fleet.setDesired(caller, request.params.model, null, 'UNLOADED', 'model.unload');
  });
}

function isReadable(body: unknown): body is Readable {
  return typeof body === 'object' && body !== null && typeof (body as Readable).pipe === 'function';
}

async function* empty(): AsyncIterable<Uint8Array> {
  // no bytes
}

/**
 * `PUT /v2/repository/models/{m}/versions/{v}/model.onnx`: raw bytes, no
 * base64 and no JSON body limit, bounded by MODEL_UPLOAD_MAX_BYTES and hashed
 * while streaming into the weight store; then validated and published like
 * a load. Registered in a scope of its own whose parser hands the request
 * stream through unread.
 */
export function registerUploadRoute(scope: FastifyInstance, { pipeline, fleet }: { pipeline: InferencePipeline; fleet: ModelFleet }): void {
  scope.removeAllContentTypeParsers();
  scope.addContentTypeParser('*', (_request, payload, done) => done(null, payload));
  scope.put<{ Params: { model: string; version: string } }>('/v2/repository/models/:model/versions/:version/model.onnx', async (request, reply) => {
    const log = requestLogger(request);
    const admitted = await pipeline.admitModelRoute({ headers: request.headers }, null, log, request.trace ?? NOOP_STEPS);
    const body = request.body;
    try {
      if (!admitted.ok) throw admitted.error;
      assertModelManageable(admitted.principal, request.params.model);
      if (request.headers['content-encoding'] !== undefined && request.headers['content-encoding'] !== 'identity') {
        throw new BadInputError('Send model.onnx unencoded (no Content-Encoding)', 'content-encoding');
      }
      if (Number(request.headers['content-length']) > fleet.maxUploadBytes) throw fleet.tooLarge();
      const waitMs = fleetWait(request.query);
      const ua = request.headers['user-agent'];
      const caller = { principal: admitted.principal, ip: request.ip, userAgent: typeof ua === 'string' ? ua : null, requestId: request.id };
      const source = isReadable(body) ? (body as AsyncIterable<Uint8Array>) : empty();
      const stored = await fleet.uploadVersion(caller, request.params.model, request.params.version, source);
      return await answerChange(reply, fleet, request.params.model, stored.generation, waitMs, { name: request.params.model, version: request.params.version, digest: stored.digest, size_bytes: stored.sizeBytes });
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      // The rest of a refused body is not read: close the connection after the answer.
      if (isReadable(body) && !body.readableEnded) void reply.header('connection', 'close');
      const { http: _http, ...extensions } = error.extensions;
      return reply.code(statusFor(error.code)).send(oipErrorBody(error.code, error.message, request.id, extensions));
    }
  });
}
