/**
 * The error contract for everything the HTTP layer answers itself: unknown
 * routes (404), wrong methods (405), bodies too large (413), of a type we do
 * not parse (415) or not valid JSON / UTF-8 (400), Node's own refusals
 * (400/408/431), and anything a route throws. Every such body has the
 * GraphQL error shape, a code from the public list (src/errors) and the
 * request id; messages are fixed or ours, never a library's (fastify, Node,
 * Prisma), which go to the log.
 */
import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import {
  DomainError,
  INTERNALS_PATTERN,
  PUBLIC_ERROR_CODES,
  UnavailableError,
  domainErrorOf,
  errorBody,
  httpCodeForStatus,
  isDependencyUnavailable,
  type HttpErrorCode,
} from '../../errors';
import { retryAfterFor, statusFor } from '../../errors/contract';

/** A refusal decided by the HTTP layer, carried through fastify's error path. */
export class HttpRefusal extends Error {
  constructor(
    readonly statusCode: number,
    readonly publicCode: HttpErrorCode | 'BAD_USER_INPUT',
    message: string,
    readonly extensions: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'HttpRefusal';
  }
}

const FIXED_MESSAGES: Record<number, string> = {
  400: 'Bad request',
  404: 'Not found',
  405: 'Method not allowed',
  408: 'Request timeout',
  413: 'Request body too large',
  414: 'A path parameter is longer than any name this server accepts',
  415: 'Unsupported content type; send application/json',
  431: 'Request headers too large',
  500: 'Internal server error',
  503: 'Service unavailable',
};

function fixedMessage(status: number): string {
  return FIXED_MESSAGES[status] ?? STATUS_CODES[status] ?? 'Error';
}

/**
 * Commas in one chunk of a body (a JSON body's values are at most its commas plus its lists).
 * Buffer#indexOf is a native memchr: a base64 tensor, which holds no commas, is crossed in one
 * call instead of a JavaScript step per byte; where commas are dense (a JSON list of numbers) a
 * call per comma would cost more than the byte loop (~1 ns a byte), which then counts the rest.
 */
export function countCommas(chunk: Buffer): number {
  let count = 0;
  let at = chunk.indexOf(44);
  for (; at !== -1 && count < 64; at = chunk.indexOf(44, at + 1)) count += 1;
  if (at === -1) return count;
  for (let i = at; i < chunk.length; i += 1) if (chunk[i] === 44) count += 1;
  return count;
}

/**
 * The most JSON values a request body may hold, in any door that parses JSON
 * (GraphQL, OIP): GRAPHQL_MAX_LIST_ELEMENTS plus room for the request's own
 * structure. Counted while the body is read, before any parse.
 */
export function maxJsonValues(maxListElements: number): number {
  return maxListElements + 10_000;
}

export interface HttpErrorOptions {
  bodyLimitBytes: number;
  maxListElements: number;
}

/** Why over 80 lines: fastify's not-found, error and onSend hooks share the contract's closure (options, fixed messages) and are read as one answer table. */
export function registerHttpErrorContract(app: FastifyInstance, options: HttpErrorOptions): void {
  // Static routes and their methods, for 405 with Allow instead of a 404.
  const methodsByUrl = new Map<string, Set<string>>();
  app.addHook('onRoute', (route) => {
    const methods = methodsByUrl.get(route.url) ?? new Set<string>();
    for (const m of Array.isArray(route.method) ? route.method : [route.method]) methods.add(m);
    methodsByUrl.set(route.url, methods);
  });

  // The body is read chunk by chunk: UTF-8 is checked and decoded as it
  // arrives (TextDecoder, fatal) and commas are counted, so no single event
  // handles more than one chunk (~64 KiB) until JSON.parse, and a body that
  // could hold far more values than any request may use is refused before it
  // is parsed — or even read whole (4 M numbers took ~100 ms to parse here).
  // The exact per-field check is the GraphQL input guard; this only caps the parse.
  const maxCommas = maxJsonValues(options.maxListElements);
  const secureParse = app.getDefaultJsonParser('error', 'error');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', (request, payload, done) => {
    const tooLarge = () => new HttpRefusal(413, 'PAYLOAD_TOO_LARGE', `Request body exceeds the limit of ${options.bodyLimitBytes} bytes (BODY_LIMIT_BYTES)`);
    if (Number(request.headers['content-length']) > options.bodyLimitBytes) {
      done(tooLarge(), undefined);
      return;
    }
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const invalidUtf8 = () => new HttpRefusal(400, 'BAD_USER_INPUT', 'Request body is not valid UTF-8', { field: 'body' });
    let text = '';
    let received = 0;
    let commas = 0;
    let settled = false;
    // A refusal decided mid-body is answered once the body is in (draining costs no parsing), so the
    // client reads the coded answer instead of a reset; beyond BODY_LIMIT_BYTES it is a 413 at once.
    let refusal: HttpRefusal | undefined;
    const finish = (error: Error | null, value?: unknown) => {
      if (settled) return;
      settled = true;
      payload.removeListener('data', onData);
      payload.removeListener('end', onEnd);
      done(error, value);
    };
    const onData = (chunk: Buffer) => {
      received += chunk.length;
      if (received > options.bodyLimitBytes) return finish(tooLarge());
      if (refusal) return;
      commas += countCommas(chunk);
      if (commas > maxCommas) {
        refusal = new HttpRefusal(400, 'BAD_USER_INPUT', `Request body holds more than ${maxCommas} JSON values; send tensors as dataBase64 and images as image (base64 of the file)`, { field: 'variables' });
        text = '';
        return;
      }
      try {
        text += decoder.decode(chunk, { stream: true });
      } catch {
        refusal = invalidUtf8();
        text = '';
      }
    };
    const onEnd = () => {
      if (refusal) return finish(refusal);
      try {
        text += decoder.decode();
      } catch {
        return finish(invalidUtf8());
      }
      if (text.length === 0) return finish(new HttpRefusal(400, 'BAD_REQUEST', 'Request body is empty'));
      secureParse(request, text, (error, parsed) => {
        if (error) finish(new HttpRefusal(400, 'BAD_REQUEST', 'Request body is not valid JSON'));
        else finish(null, parsed);
      });
    };
    payload.on('data', onData);
    payload.on('end', onEnd);
    payload.on('error', (error: Error) => finish(error));
  });

  app.setNotFoundHandler((request, reply) => {
    const url = request.url.split('?')[0] ?? request.url;
    const allowed = methodsByUrl.get(url);
    if (allowed && !allowed.has(request.method)) {
      const allow = [...allowed].sort().join(', ');
      return reply.code(405).header('allow', allow).send(errorBody('METHOD_NOT_ALLOWED', `${request.method} is not allowed on this route (allowed: ${allow})`, request.id));
    }
    return reply.code(404).send(errorBody('NOT_FOUND', 'No such route', request.id));
  });

  app.setErrorHandler((error: Error & { statusCode?: number; code?: string }, request, reply) => {
    if (error instanceof HttpRefusal) {
      return reply.code(error.statusCode).send(errorBody(error.publicCode, error.message, request.id, error.extensions));
    }
    const domain = domainErrorOf(error);
    if (domain) return sendDomainError(reply, request, domain);
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.code(413).send(errorBody('PAYLOAD_TOO_LARGE', `Request body exceeds the limit of ${options.bodyLimitBytes} bytes (BODY_LIMIT_BYTES)`, request.id));
    }
    if (error.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      return reply.code(415).send(errorBody('UNSUPPORTED_MEDIA_TYPE', fixedMessage(415), request.id));
    }
    const status = error.statusCode ?? 500;
    if (status >= 400 && status < 500) {
      request.log.debug({ err: error }, 'request refused by the HTTP layer');
      return reply.code(status).send(errorBody(httpCodeForStatus(status), fixedMessage(status), request.id));
    }
    if (isDependencyUnavailable(error)) {
      request.log.warn({ err: error }, 'dependency unavailable');
      return sendDomainError(reply, request, new UnavailableError());
    }
    request.log.error({ err: error }, 'unhandled error');
    return reply.code(500).send(errorBody('INTERNAL', fixedMessage(500), request.id));
  });

  // The last word on every error body: whatever produced it (Apollo's own HTTP
  // errors, a plugin, a route), a client sees the contract's shape, a public
  // code and the request id. /readyz's 503 is its report, not an error body.
  app.addHook('onSend', async (request, reply, payload) => {
    if (reply.statusCode < 400) return payload;
    // Every 503 and 504 says when to come back (issue #24 item 6), /readyz's and the OIP readiness routes' too.
    if (request.routeOptions.url === '/readyz' || (typeof payload !== 'string' && !Buffer.isBuffer(payload))) {
      setRetryAfter(reply, undefined, undefined);
      return payload;
    }
    const text = payload.toString();
    // The Open Inference Protocol's own error shape ({"error": ...}) on its routes, with the same code and request id.
    const protocol = request.url.startsWith('/v2') ? 'oip' : 'graphql';
    const normalized = normalizeErrorBody(text, reply.statusCode, request.id, protocol);
    if (normalized.status !== reply.statusCode) reply.code(normalized.status);
    reply.header('content-type', 'application/json; charset=utf-8');
    const first = firstError(normalized.body);
    setRetryAfter(reply, first.code, first.retryAfterSeconds);
    return normalized.body;
  });
}

/** A 503 or 504 without a Retry-After gets the error contract's (the error's own hint first); other statuses are left alone. */
function setRetryAfter(reply: FastifyReply, code: string | undefined, hint: unknown): void {
  if ((reply.statusCode !== 503 && reply.statusCode !== 504) || reply.hasHeader('retry-after')) return;
  const seconds = retryAfterFor(code, { hint, status: reply.statusCode });
  if (seconds !== undefined) reply.header('retry-after', String(seconds));
}

/** The code and retry hint of the first error in a normalized body (either shape). */
function firstError(body: string): { code: string | undefined; retryAfterSeconds: unknown } {
  const parsed = JSON.parse(body) as { code?: unknown; retryAfterSeconds?: unknown; errors?: { extensions?: { code?: unknown; retryAfterSeconds?: unknown } }[] };
  const ext = parsed.errors?.[0]?.extensions;
  const code = ext?.code ?? parsed.code;
  return { code: typeof code === 'string' ? code : undefined, retryAfterSeconds: ext ? ext.retryAfterSeconds : parsed.retryAfterSeconds };
}

function sendDomainError(reply: FastifyReply, request: FastifyRequest, domain: DomainError): FastifyReply {
  const http = (domain.extensions['http'] as { status?: number } | undefined)?.status;
  const status = http ?? statusFor(domain.code);
  const { http: _http, ...extensions } = domain.extensions;
  return reply.code(status).send(errorBody(domain.code, domain.message, request.id, extensions));
}

interface ErrorEntry {
  message?: unknown;
  extensions?: Record<string, unknown>;
  [key: string]: unknown;
}

/**
 * Rewrites an error response body into the contract; exported for tests.
 * `oip`: the Open Inference Protocol's shape, `{error, code, requestId, …}`
 * (KServe/Triton clients read `error`), with the same public codes.
 */
export function normalizeErrorBody(text: string, status: number, requestId: string, protocol: 'graphql' | 'oip' = 'graphql'): { status: number; body: string } {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined;
  }
  if (protocol === 'oip') {
    const oip = parsed as { error?: unknown; code?: unknown } | undefined;
    if (oip && typeof oip.error === 'string' && typeof oip.code === 'string' && PUBLIC_ERROR_CODES.has(oip.code)) {
      const message = INTERNALS_PATTERN.test(oip.error) ? fixedMessage(status) : oip.error;
      return { status, body: JSON.stringify({ ...oip, error: message, requestId }) };
    }
    const contract = normalizeErrorBody(text, status, requestId);
    const first = (JSON.parse(contract.body) as { errors: ErrorEntry[] }).errors[0];
    const { code, requestId: _id, ...extensions } = first?.extensions ?? {};
    return { status: contract.status, body: JSON.stringify({ error: first?.message ?? fixedMessage(status), code, ...extensions, requestId }) };
  }
  const errors = (parsed as { errors?: unknown } | undefined)?.errors;
  if (Array.isArray(errors) && errors.length > 0) {
    const fixed = (errors as ErrorEntry[]).map((e) => {
      const code = e.extensions?.['code'];
      const publicCode = typeof code === 'string' && PUBLIC_ERROR_CODES.has(code) ? code : httpCodeForStatus(status);
      const message = typeof e.message === 'string' && !INTERNALS_PATTERN.test(e.message) ? e.message : fixedMessage(status);
      return { ...e, message, extensions: { ...e.extensions, code: publicCode, requestId } };
    });
    // A dependency outage reported from outside the pipeline (context creation) is a 503, not a 500.
    const newStatus = status === 500 && fixed.every((e) => e.extensions.code === 'UNAVAILABLE') ? 503 : status;
    return { status: newStatus, body: JSON.stringify({ ...(parsed as object), errors: fixed }) };
  }
  // Plain text (Apollo's CSRF refusal, fastify's 503 while closing) or a foreign JSON shape.
  const own = !parsed && text.length > 0 && text.length < 1000 && !INTERNALS_PATTERN.test(text) ? text.trim() : fixedMessage(status);
  const code = httpCodeForStatus(status);
  return { status, body: JSON.stringify(errorBody(code, status >= 500 ? fixedMessage(status) : own, requestId)) };
}

/**
 * fastify's `frameworkErrors`: what its router refuses before any route or
 * hook runs (a path that is not valid percent-encoding, FST_ERR_BAD_URL; a
 * path parameter over maxParamLength, FST_ERR_MAX_PARAM_LENGTH). Answered
 * here in the contract's shape (OIP's on /v2), with a public code and the
 * request id; fastify's own code and text go to the debug log.
 */
export function frameworkErrorHandler(error: Error & { code?: string; statusCode?: number }, request: FastifyRequest, reply: FastifyReply): void {
  const status = error.code === 'FST_ERR_MAX_PARAM_LENGTH' ? 414 : error.code === 'FST_ERR_BAD_URL' ? 400 : (error.statusCode ?? 400);
  const code = httpCodeForStatus(status);
  request.log.debug({ err: error }, 'request refused by the router');
  const message = status === 400 ? 'The request path is not valid percent-encoding' : fixedMessage(status);
  const body = request.url.startsWith('/v2') ? { error: message, code, requestId: request.id } : errorBody(code, message, request.id);
  void reply.code(status).header('x-request-id', request.id).header('content-type', 'application/json; charset=utf-8').send(JSON.stringify(body));
}

/** fastify's clientErrorHandler: Node's parser refused the request before any route ran. */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  const status = error.code === 'HPE_HEADER_OVERFLOW' ? 431 : error.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
  const requestId = randomUUID();
  const body = JSON.stringify(errorBody(httpCodeForStatus(status), fixedMessage(status), requestId));
  // Write only when nothing of a response went out on this socket yet.
  if (socket.writable && socket.bytesWritten === 0) {
    socket.write(
      `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nx-request-id: ${requestId}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
