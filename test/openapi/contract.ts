/**
 * Reads the OpenAPI document as a client would: finds operations, resolves
 * $refs, and checks an actual HTTP response (status, content type, headers,
 * body) against what the document promises, with ajv (JSON Schema 2020-12,
 * OpenAPI 3.1's dialect).
 */
import Ajv2020, { type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import { openApiDocument } from '../../src/server/rest/openapi/openapi.document';

type Json = Record<string, unknown>;
export type OpenApiDocument = Json & { paths: Record<string, Record<string, Json>>; components: Record<string, Record<string, Json>> };

export const HTTP_METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

const COMPONENTS_ID = 'https://modelgate.invalid/components';

export interface Operation {
  method: string;
  path: string;
  operation: Json & { operationId: string; responses: Record<string, Json>; security?: Record<string, string[]>[]; 'x-modelgate-scope'?: string };
}

export interface ActualResponse {
  status: number;
  headers: Headers;
  body: Buffer;
}

export class Contract {
  readonly doc: OpenApiDocument;
  private readonly ajv: Ajv2020;
  private readonly compiled = new Map<string, ValidateFunction>();

  constructor(doc: Json = openApiDocument()) {
    this.doc = doc as OpenApiDocument;
    this.ajv = new Ajv2020({ strict: true, allErrors: true, allowUnionTypes: true });
    addFormats(this.ajv);
    // The schemas' own refs (#/components/schemas/X) point into one registered schema.
    this.ajv.addSchema(this.rewrite({ $id: COMPONENTS_ID, $defs: this.doc.components['schemas'] }));
  }

  operations(): Operation[] {
    const out: Operation[] = [];
    for (const [path, item] of Object.entries(this.doc.paths)) {
      for (const method of HTTP_METHODS) {
        const operation = item[method];
        if (operation) out.push({ method: method.toUpperCase(), path, operation: operation as Operation['operation'] });
      }
    }
    return out;
  }

  operation(operationId: string): Operation {
    const found = this.operations().find((o) => o.operation.operationId === operationId);
    if (!found) throw new Error(`no operation ${operationId} in the document`);
    return found;
  }

  /** Follows a local $ref (#/components/...) to its target. */
  resolve<T = Json>(value: unknown): T {
    let current = value as Json;
    for (let depth = 0; depth < 8 && typeof current['$ref'] === 'string'; depth += 1) {
      const pointer = (current['$ref'] as string).replace(/^#\//, '').split('/');
      current = pointer.reduce<Json>((node, key) => node[key] as Json, this.doc);
      if (!current) throw new Error(`unresolved $ref ${String(value)}`);
    }
    return current as T;
  }

  validator(schema: Json): ValidateFunction {
    const key = JSON.stringify(schema);
    let fn = this.compiled.get(key);
    if (!fn) {
      fn = this.ajv.compile(this.rewrite(schema));
      this.compiled.set(key, fn);
    }
    return fn;
  }

  /** The problems with `actual` as an answer of `op` (empty when it conforms). */
  check(op: Operation, actual: ActualResponse): string[] {
    const problems: string[] = [];
    const declared = op.operation.responses[String(actual.status)] ?? op.operation.responses['default'];
    if (!declared) return [`${op.operation.operationId}: status ${actual.status} is not documented`];
    const response = this.resolve<{ headers?: Record<string, Json>; content?: Record<string, { schema?: Json }> }>(declared);
    for (const [name, h] of Object.entries(response.headers ?? {})) {
      const headerDef = this.resolve<{ required?: boolean; schema?: Json }>(h);
      const value = actual.headers.get(name);
      if (value === null) {
        if (headerDef.required) problems.push(`header ${name} is required but absent`);
        continue;
      }
      if (headerDef.schema) {
        const validate = this.validator(headerDef.schema);
        if (!validate(value)) problems.push(`header ${name}: ${JSON.stringify(value)} ${this.ajv.errorsText(validate.errors)}`);
      }
    }
    const content = response.content;
    if (!content) {
      if (actual.body.length > 0) problems.push(`status ${actual.status} documents no body but ${actual.body.length} bytes came`);
      return problems;
    }
    const mediaType = (actual.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
    const media = content[mediaType];
    if (!media) return [...problems, `content type ${mediaType || '(none)'} is not documented for ${actual.status} (documented: ${Object.keys(content).join(', ')})`];
    if (!media.schema) return problems;
    let value: unknown;
    if (mediaType === 'application/json') {
      try {
        value = JSON.parse(actual.body.toString('utf8'));
      } catch {
        return [...problems, 'the body is not JSON'];
      }
    } else if (mediaType === 'application/octet-stream') {
      value = actual.body.toString('latin1');
    } else {
      value = actual.body.toString('utf8');
    }
    const validate = this.validator(media.schema);
    if (!validate(value)) problems.push(`body: ${this.ajv.errorsText(validate.errors)}`);
    return problems;
  }

  private rewrite<T>(value: T): T {
    return JSON.parse(JSON.stringify(value).replaceAll('"#/components/schemas/', `"${COMPONENTS_ID}#/$defs/`)) as T;
  }
}

/** fastify's /v2/models/:model into OpenAPI's /v2/models/{model}. */
export function openApiPath(fastifyUrl: string): string {
  return fastifyUrl.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}
