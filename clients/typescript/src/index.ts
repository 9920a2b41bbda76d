/**
 * modelgate's TypeScript client: typed operations over fetch (Node 18+ or a
 * browser), typed arrays <-> tensors, Buffers -> classify, async iterators
 * over Relay connections, errors typed by the gateway's code, and retries
 * (429, 503, 504 and connection resets) with bounded backoff that honour
 * Retry-After. No dependencies.
 */
import { ApiKeysDocument, ClassifyDocument, InferDocument, MeDocument, ModelsDocument, NodeDocument, TenantsDocument, UsageRecordsDocument, type TypedDocumentString } from './generated/graphql';
import type { ApiKey, ClassifyResult, Connection, InferInput, InferOutputTensor, InferResult, Me, Model, NodeQuery, Tenant, TensorDatatype, UsageRecord, UsageRecordFilter } from './operations';

export * from './operations';

/**
 * Every code a gateway answer can carry (README "Errors"; the test checks this
 * list against the gateway's), plus HTTP_ERROR: this client's own, for an
 * answer that is not JSON.
 */
export const ERROR_CODES = [
  'UNAUTHENTICATED',
  'FORBIDDEN',
  'BAD_USER_INPUT',
  'NOT_FOUND',
  'RATE_LIMITED',
  'QUOTA_EXCEEDED',
  'MODEL_UNAVAILABLE',
  'OVERLOADED',
  'TIMEOUT',
  'UNAVAILABLE',
  'INTERNAL',
  'MODEL_INVALID',
  'MODEL_TOO_LARGE',
  'MODEL_QUOTA_EXCEEDED',
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_REQUEST',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
  'OPERATION_RESOLUTION_FAILURE',
  'METHOD_NOT_ALLOWED',
  'REQUEST_TIMEOUT',
  'PAYLOAD_TOO_LARGE',
  'URI_TOO_LONG',
  'UNSUPPORTED_MEDIA_TYPE',
  'REQUEST_HEADER_FIELDS_TOO_LARGE',
  'HTTP_ERROR',
] as const;

/** A code from ERROR_CODES; `string & {}` keeps codes added later readable without losing completion. */
export type ErrorCode = (typeof ERROR_CODES)[number] | (string & {});

export class ModelgateError extends Error {
  override readonly name = 'ModelgateError';
  constructor(
    message: string,
    readonly code: ErrorCode,
    readonly status: number,
    readonly requestId: string | null = null,
    readonly field: string | null = null,
    readonly retryAfterSeconds: number | null = null,
  ) {
    super(message);
  }
}

export interface ClientOptions {
  /** The gateway's base URL, e.g. http://localhost:4000 */
  url: string;
  apiKey?: string;
  /**
   * Retries (default 3) of an answer worth retrying: 429 and 503 and 504
   * (RATE_LIMITED, QUOTA_EXCEEDED, OVERLOADED, MODEL_UNAVAILABLE, UNAVAILABLE,
   * TIMEOUT), and a connection refused or reset before an answer. Each waits
   * the answer's Retry-After, or without one an exponential backoff with
   * jitter (retryBaseMs × 2^attempt, at most maxRetryWaitMs).
   */
  maxRetries?: number;
  /** A Retry-After longer than this is not waited for: the error is thrown (default 30 000 ms). */
  maxRetryWaitMs?: number;
  /** First backoff step without a Retry-After (default 200 ms). */
  retryBaseMs?: number;
  fetch?: typeof fetch;
}

export type TypedArray = Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | BigInt64Array | Uint8Array | Uint16Array | Uint32Array | BigUint64Array;

const DATATYPE_OF: [new (...args: never[]) => TypedArray, TensorDatatype][] = [
  [Float32Array, 'FP32'],
  [Float64Array, 'FP64'],
  [Int8Array, 'INT8'],
  [Int16Array, 'INT16'],
  [Int32Array, 'INT32'],
  [BigInt64Array, 'INT64'],
  [Uint8Array, 'UINT8'],
  [Uint16Array, 'UINT16'],
  [Uint32Array, 'UINT32'],
  [BigUint64Array, 'UINT64'],
];

function littleEndian(): boolean {
  return new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
}

/** A typed array as an `infer` input: raw little-endian bytes in dataBase64 (no JSON numbers). */
export function toTensor(name: string, data: TypedArray, shape: number[], datatype?: TensorDatatype): InferInput['inputs'][number] {
  const type = datatype ?? DATATYPE_OF.find(([ctor]) => data instanceof ctor)?.[1];
  if (!type) throw new TypeError('unsupported typed array');
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new RangeError(`${data.length} values do not fill shape [${shape.join(',')}] (${count})`);
  if (!littleEndian()) throw new Error('big-endian hosts are not supported');
  return { name, datatype: type, shape, dataBase64: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64') };
}

/** Strings as a BYTES `infer` input (models whose graph takes text; each element UTF-8). */
export function stringTensor(name: string, values: string[], shape: number[]): InferInput['inputs'][number] {
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== values.length) throw new RangeError(`${values.length} strings do not fill shape [${shape.join(',')}] (${count})`);
  return { name, datatype: 'BYTES', shape, strings: values };
}

/** An `infer` output as a typed array of its datatype (copied, so it is aligned). */
export function fromTensor(output: Pick<InferOutputTensor, 'datatype' | 'dataBase64'>): TypedArray {
  const bytes = Buffer.from(output.dataBase64, 'base64');
  const copy = new Uint8Array(bytes).buffer;
  switch (output.datatype) {
    case 'FP32':
      return new Float32Array(copy);
    case 'FP64':
      return new Float64Array(copy);
    case 'INT8':
      return new Int8Array(copy);
    case 'INT16':
      return new Int16Array(copy);
    case 'INT32':
      return new Int32Array(copy);
    case 'INT64':
      return new BigInt64Array(copy);
    case 'UINT8':
    case 'BOOL':
      return new Uint8Array(copy);
    case 'UINT16':
    case 'FP16':
      // FP16 as its raw bits: JavaScript has no half-float array (use @petamoriken/float16 to read them).
      return new Uint16Array(copy);
    case 'UINT32':
      return new Uint32Array(copy);
    case 'UINT64':
      return new BigUint64Array(copy);
    default:
      // BYTES: read the output's strings.
      throw new TypeError(`datatype ${output.datatype} has no typed array here`);
  }
}

/** What classify takes per image: the file's bytes (Buffer, Uint8Array, ArrayBuffer), a Blob or File (browsers), or a file path (Node). */
export type ImageSource = Uint8Array | ArrayBuffer | Blob | string;

async function imageBase64(source: ImageSource): Promise<string> {
  if (typeof source === 'string') {
    // Imported only when a path is given, so browsers never load node:fs.
    const { readFile } = await import('node:fs/promises');
    return (await readFile(source)).toString('base64');
  }
  if (source instanceof ArrayBuffer) return Buffer.from(source).toString('base64');
  if (typeof Blob !== 'undefined' && source instanceof Blob) return Buffer.from(await source.arrayBuffer()).toString('base64');
  const bytes = source as Uint8Array;
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64');
}

/** Statuses worth retrying: limits (429) and capacity or dependency outages and deadlines (503, 504). */
const RETRY_STATUSES = new Set([429, 503, 504]);
/** Errors of a connection that gave no answer (Node's fetch wraps them in its cause). */
const RETRY_NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

/** Whether a fetch rejection is a connection refused or reset (not an abort or a bad URL). */
export function isConnectionFailure(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current && typeof current === 'object'; depth += 1) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && RETRY_NETWORK_CODES.has(code)) return true;
    if ((current as { message?: unknown }).message === 'other side closed') return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

/** The wait before retry `attempt` (0-based): the server's Retry-After when given, else full-jitter exponential backoff. */
export function retryDelayMs(attempt: number, retryAfterSeconds: number | null, baseMs: number, maxMs: number): number {
  if (retryAfterSeconds !== null) return retryAfterSeconds * 1000;
  const ceiling = Math.min(maxMs, baseMs * 2 ** attempt);
  return ceiling / 2 + Math.random() * (ceiling / 2);
}

export class ModelgateClient {
  private readonly endpoint: string;
  private readonly fetchFn: typeof fetch;

  constructor(private readonly options: ClientOptions) {
    this.endpoint = `${options.url.replace(/\/+$/, '')}/graphql`;
    this.fetchFn = options.fetch ?? fetch;
  }

  /** One operation as a JSON POST (Apollo's CSRF guard needs no preflight header for it). */
  async request<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const maxRetries = this.options.maxRetries ?? 3;
    const maxWaitMs = this.options.maxRetryWaitMs ?? 30_000;
    const baseMs = this.options.retryBaseMs ?? 200;
    const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    for (let attempt = 0; ; attempt += 1) {
      let res: Response;
      let text: string;
      try {
        res = await this.fetchFn(this.endpoint, {
          method: 'POST',
          headers: { 'content-type': 'application/json', accept: 'application/json', ...(this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {}) },
          body: JSON.stringify({ query, variables }),
        });
        text = await res.text();
      } catch (error) {
        // Refused or reset before an answer (a replica restarting, a load balancer's idle cut): back off and retry.
        if (attempt < maxRetries && isConnectionFailure(error)) {
          await wait(retryDelayMs(attempt, null, baseMs, maxWaitMs));
          continue;
        }
        throw error;
      }
      const header = res.headers.get('retry-after');
      const headerSeconds = header !== null && header.trim() !== '' && Number.isFinite(Number(header)) ? Math.max(0, Number(header)) : null;
      let body: { data?: T; errors?: { message: string; extensions?: Record<string, unknown> }[] };
      try {
        body = JSON.parse(text) as typeof body;
      } catch {
        // A 503/504 from something in front of the gateway (a proxy's HTML page) is retried like the gateway's own.
        if ((res.status === 503 || res.status === 504) && attempt < maxRetries && (headerSeconds ?? 0) * 1000 <= maxWaitMs) {
          await wait(retryDelayMs(attempt, headerSeconds, baseMs, maxWaitMs));
          continue;
        }
        throw new ModelgateError(`HTTP ${res.status}: ${text.slice(0, 200)}`, 'HTTP_ERROR', res.status, null, null, headerSeconds);
      }
      const first = body.errors?.[0];
      if (!first) return body.data as T;
      const ext = first.extensions ?? {};
      const retryAfter = headerSeconds ?? (typeof ext['retryAfterSeconds'] === 'number' ? ext['retryAfterSeconds'] : null);
      // A 429 without a hint is not retried blindly (its limit says when); 503 and 504 back off when they carry none.
      const retryable = RETRY_STATUSES.has(res.status) && (retryAfter !== null || res.status !== 429);
      if (retryable && attempt < maxRetries && (retryAfter ?? 0) * 1000 <= maxWaitMs) {
        await wait(retryDelayMs(attempt, retryAfter, baseMs, maxWaitMs));
        continue;
      }
      throw new ModelgateError(
        first.message,
        typeof ext['code'] === 'string' ? ext['code'] : 'INTERNAL',
        res.status,
        typeof ext['requestId'] === 'string' ? ext['requestId'] : null,
        typeof ext['field'] === 'string' ? ext['field'] : null,
        retryAfter,
      );
    }
  }

  /** A generated document (src/generated/graphql.ts) with its variables, answered with its typed result. */
  async execute<R, V>(document: TypedDocumentString<R, V>, ...variables: V extends Record<string, never> ? [] : [V]): Promise<R> {
    return this.request<R>(document.toString(), (variables[0] ?? {}) as Record<string, unknown>);
  }

  async infer(input: InferInput): Promise<InferResult> {
    return (await this.execute(InferDocument, { input })).infer;
  }

  /** Encoded image files (PNG, JPEG, WebP): Buffers, Uint8Arrays, ArrayBuffers, Blobs/Files, or file paths in Node. */
  async classify(model: string, images: ImageSource[], options: { topK?: number; version?: string } = {}): Promise<ClassifyResult> {
    const encoded = await Promise.all(images.map(async (img) => ({ image: await imageBase64(img) })));
    return (await this.execute(ClassifyDocument, { model, version: options.version ?? null, images: encoded, topK: options.topK ?? 3 })).classify;
  }

  async me(): Promise<Me> {
    return (await this.execute(MeDocument)).me;
  }

  async models(): Promise<Model[]> {
    return (await this.execute(ModelsDocument)).models;
  }

  /** Any object by the id the API returned (Tenant, ApiKey, …); null when unknown or not readable by this key. */
  async node(id: string): Promise<NodeQuery['node']> {
    return (await this.execute(NodeDocument, { id })).node;
  }

  /** Every node of a Relay connection, fetching `pageSize` at a time as the loop asks for more. */
  async *paginate<T>(query: string, field: string, variables: Record<string, unknown> = {}, pageSize = 100): AsyncGenerator<T> {
    let after: string | null = null;
    for (;;) {
      const data: Record<string, Connection<T>> = await this.request<Record<string, Connection<T>>>(query, { ...variables, first: pageSize, after });
      const page = data[field];
      if (!page) throw new ModelgateError(`no field ${field} in the answer`, 'INTERNAL', 200);
      for (const edge of page.edges) yield edge.node;
      if (!page.pageInfo.hasNextPage) return;
      after = page.pageInfo.endCursor;
    }
  }

  tenants(pageSize = 100): AsyncGenerator<Tenant> {
    return this.paginate<Tenant>(TenantsDocument.toString(), 'tenants', {}, pageSize);
  }

  apiKeys(filter: { tenant?: string; revoked?: boolean } = {}, pageSize = 100): AsyncGenerator<ApiKey> {
    return this.paginate<ApiKey>(ApiKeysDocument.toString(), 'apiKeys', { tenant: filter.tenant ?? null, revoked: filter.revoked ?? null }, pageSize);
  }

  /** Usage records, newest first (scope usage:read), up to 1000 per page request. */
  usageRecords(filter: UsageRecordFilter = {}, pageSize = 500): AsyncGenerator<UsageRecord> {
    return this.paginate<UsageRecord>(UsageRecordsDocument.toString(), 'usageRecords', { filter }, pageSize);
  }
}
