/**
 * Triton's model repository extension, fleet-wide (issue #23):
 * `POST /v2/repository/models/{m}/load` with optional
 * `{"parameters": {"config": "<JSON>", "file:<v>/model.onnx": "<base64>"}}`
 * (Triton's override semantics) and `POST /v2/repository/models/{m}/unload`.
 * Both change the catalog, so every replica follows; the call answers once
 * this replica applied the change. Admin keys only. The gRPC
 * RepositoryModelLoad/Unload RPCs are not built (only REST).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { BadInputError, DomainError } from '../../../errors';
import { oipErrorBody, statusFor } from '../../../errors/contract';
import { requireScope } from '../../../auth/scopes';
import type { Actor } from '../../../auth/actor';
import type { InferencePipeline } from '../../../inference/pipeline';
import type { ModelFleet } from '../../../inference/fleet';
import { NOOP_STEPS } from '../../../tracing/noop';
import type { Logger } from '../../../log/logger';
import type { BoundedBody } from '../bounded-body';

const FILE_PARAMETER = /^file:([1-9]\d{0,8})\/model\.onnx$/;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

type Params = { model: string };

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

/** `file:<v>/model.onnx` parameters, base64-decoded; any other `file:` path is refused. */
function filesOf(parameters: Record<string, unknown>, maxBytes: number, fleet: ModelFleet): Map<number, Uint8Array> {
  const files = new Map<number, Uint8Array>();
  for (const [name, value] of Object.entries(parameters)) {
    if (!name.startsWith('file:')) continue;
    const match = FILE_PARAMETER.exec(name);
    if (!match) throw new BadInputError(`${name}: only file:<version>/model.onnx is accepted`, `parameters.${name}`);
    if (typeof value !== 'string' || !BASE64.test(value) || value.length % 4 !== 0) throw new BadInputError(`${name} must be base64`, `parameters.${name}`);
    if ((value.length / 4) * 3 - (value.endsWith('==') ? 2 : value.endsWith('=') ? 1 : 0) > maxBytes) throw fleet.tooLarge();
    files.set(Number(match[1]), Buffer.from(value, 'base64'));
  }
  return files;
}

export function registerRepositoryRoutes(scope: FastifyInstance, { pipeline, fleet }: { pipeline: InferencePipeline; fleet: ModelFleet }): void {
  const route = (suffix: 'load' | 'unload', act: (caller: Actor, request: FastifyRequest<{ Params: Params }>) => Promise<void>) => {
    scope.post<{ Params: Params }>(`/v2/repository/models/:model/${suffix}`, async (request, reply: FastifyReply) => {
      const log = request.log as unknown as Logger;
      const admitted = await pipeline.admitModelRoute({ headers: request.headers }, null, log, request.trace ?? NOOP_STEPS);
      try {
        if (!admitted.ok) throw admitted.error;
        requireScope(admitted.principal, 'admin');
        const ua = request.headers['user-agent'];
        await act({ principal: admitted.principal, ip: request.ip, userAgent: typeof ua === 'string' ? ua : null, requestId: request.id }, request);
        return await reply.code(200).send({});
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
        const { http: _http, ...extensions } = error.extensions;
        return reply.code(statusFor(error.code)).send(oipErrorBody(error.code, error.message, request.id, extensions));
      }
    });
  };
  route('load', async (caller, request) => {
    const parameters = parseBody(request.body);
    const files = filesOf(parameters, fleet.maxUploadBytes, fleet);
    await fleet.tritonLoad(caller, request.params.model, { config: parameters['config'], files });
  });
  route('unload', async (caller, request) => {
    parseBody(request.body);
    await fleet.setDesired(caller, request.params.model, null, 'UNLOADED', 'model.unload');
  });
}
