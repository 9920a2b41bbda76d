/**
 * modelgate's TypeScript client: typed operations over fetch (Node 18+ or a
 * browser), typed arrays <-> tensors, Buffers -> classify, async iterators
 * over Relay connections, errors typed by the gateway's code, and retries on
 * 429/503 that honour Retry-After. No dependencies.
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
  /** Retries of a 429/503 answer, each after its Retry-After (default 3). */
  maxRetries?: number;
  /** A Retry-After longer than this is not waited for: the error is thrown (default 30 000 ms). */
  maxRetryWaitMs?: number;
  fetch?: typeof fetch;
}

export type TypedArray = Float32Array | Float64Array | Int8Array | Int16Array | Int32Array | BigInt64Array | Uint8Array;

const DATATYPE_OF: [new (...args: never[]) => TypedArray, TensorDatatype][] = [
  [Float32Array, 'FP32'],
  [Float64Array, 'FP64'],
  [Int8Array, 'INT8'],
  [Int16Array, 'INT16'],
  [Int32Array, 'INT32'],
  [BigInt64Array, 'INT64'],
  [Uint8Array, 'UINT8'],
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
    default:
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
    for (let attempt = 0; ; attempt += 1) {
      const res = await this.fetchFn(this.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', ...(this.options.apiKey ? { authorization: `Bearer ${this.options.apiKey}` } : {}) },
        body: JSON.stringify({ query, variables }),
      });
      const text = await res.text();
      let body: { data?: T; errors?: { message: string; extensions?: Record<string, unknown> }[] };
      try {
        body = JSON.parse(text) as typeof body;
      } catch {
        throw new ModelgateError(`HTTP ${res.status}: ${text.slice(0, 200)}`, 'HTTP_ERROR', res.status);
      }
      const first = body.errors?.[0];
      if (!first) return body.data as T;
      const ext = first.extensions ?? {};
      const header = res.headers.get('retry-after');
      const retryAfter = header !== null && Number.isFinite(Number(header)) ? Number(header) : typeof ext['retryAfterSeconds'] === 'number' ? ext['retryAfterSeconds'] : null;
      if ((res.status === 429 || res.status === 503) && attempt < maxRetries && retryAfter !== null && retryAfter * 1000 <= maxWaitMs) {
        await new Promise((resolve) => setTimeout(resolve, retryAfter * 1000));
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
