/**
 * The OpenAPI 3.1 description of every HTTP route the gateway serves other
 * than GraphQL (/graphql, and the GraphiQL and console static assets).
 * Hand-maintained beside the routes rather than generated from fastify route
 * schemas: the routes parse their own bodies (OIP's JSON-plus-binary tensors,
 * the chunked JSON guard) and answer coded errors, which fastify's schema
 * validation and response serialization would change. Kept true by tests
 * (test/openapi/): a validator, a drift test against fastify's route table,
 * and live responses checked against these schemas.
 */
import { PUBLIC_ERROR_CODES } from '../../../errors';
import { SCOPES, type Scope } from '../../../auth/principal';
import { OIP_EXTENSIONS } from '../oip/oip.routes';
import { CSV_HEADER } from '../../../usage/usage-queries';
import { VERSION } from '../../../version';

type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const header = (name: string): Json => ({ $ref: `#/components/headers/${name}` });
const response = (name: string): Json => ({ $ref: `#/components/responses/${name}` });
const json = (schema: Json): Json => ({ 'application/json': { schema } });

/** The tensor datatypes of the protocol (the engine runs a subset; the rest are refused with 400 naming the input). */
const OIP_DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'];

/** OpenAPI 3.1 lets a non-OAuth requirement list role names: here the scope the key needs (`admin` implies every scope). */
function keyed(scope: Scope): Json {
  return { security: [{ bearerKey: [scope] }, { apiKeyHeader: [scope] }], 'x-modelgate-scope': scope };
}
const open: Json = { security: [] };
/** Where the console links a usage record's trace id (CONSOLE_TRACE_URL_TEMPLATE); null: not configured. */
const TRACE_URL_TEMPLATE: Json = { type: ['string', 'null'], description: 'CONSOLE_TRACE_URL_TEMPLATE: a URL with {traceId}, where the request log links trace ids; null: not configured.' };

const schemas: Record<string, Json> = {
  ErrorCode: { type: 'string', enum: [...PUBLIC_ERROR_CODES].sort(), description: 'The closed list of public error codes (README "Errors").' },
  ErrorBody: {
    type: 'object',
    description: 'The error contract of every non-OIP route: the GraphQL error shape.',
    required: ['errors'],
    properties: {
      errors: {
        type: 'array',
        minItems: 1,
        items: {
          type: 'object',
          required: ['message', 'extensions'],
          properties: {
            message: { type: 'string' },
            extensions: {
              type: 'object',
              required: ['code', 'requestId'],
              properties: {
                code: ref('ErrorCode'),
                requestId: { type: 'string', description: 'Equals the x-request-id response header.' },
                field: { type: 'string', description: 'The parameter or input at fault (BAD_USER_INPUT).' },
                requiredScopes: { type: 'array', items: { type: 'string', enum: [...SCOPES] } },
              },
            },
          },
        },
      },
    },
  },
  OipError: {
    type: 'object',
    description: 'The Open Inference Protocol error shape (`error`, which KServe and Triton clients read) plus the gateway code, request id and the error\'s extensions.',
    required: ['error', 'code', 'requestId'],
    properties: {
      error: { type: 'string' },
      code: ref('ErrorCode'),
      requestId: { type: 'string', description: 'Equals the x-request-id response header.' },
      field: { type: 'string', description: 'The body field, header or parameter at fault (BAD_USER_INPUT), e.g. `inputs[0].shape`.' },
      requiredScopes: { type: 'array', items: { type: 'string', enum: [...SCOPES] } },
      model: { type: 'string' },
      retryAfterSeconds: { type: 'integer', minimum: 0 },
      limit: {
        type: 'object',
        required: ['name', 'limit', 'windowSeconds'],
        properties: { name: { type: 'string' }, limit: { type: 'number' }, windowSeconds: { type: 'integer' } },
      },
    },
  },
  Alive: { type: 'object', required: ['status'], properties: { status: { const: 'alive' } } },
  ReadinessReport: {
    type: 'object',
    required: ['ready', 'components'],
    properties: {
      ready: { type: 'boolean', description: 'True when every required component is ready and the process is not shutting down.' },
      components: {
        type: 'object',
        description: 'Per component (database, redis when configured, models, usage, …).',
        additionalProperties: {
          type: 'object',
          required: ['ready', 'required', 'detail'],
          properties: { ready: { type: 'boolean' }, required: { type: 'boolean', description: 'A component not required is shown but never fails readiness.' }, detail: { type: 'object' } },
        },
      },
      shuttingDown: { const: true },
      shutdown: { type: 'object', required: ['state', 'inFlightRequests'], properties: { state: { type: 'string' }, inFlightRequests: { type: 'integer', minimum: 0 } } },
    },
  },
  Parameters: {
    type: 'object',
    description: 'Protocol parameters: scalar values by name.',
    additionalProperties: { type: ['string', 'number', 'boolean'] },
  },
  TensorData: {
    type: 'array',
    description: 'Tensor elements, row major, flat or nested; BOOL as true/false, BYTES as strings (UTF-8 text, in requests and model outputs; heatmap_png of the explain extension is base64).',
    items: { anyOf: [{ type: ['number', 'boolean', 'string'] }, ref('TensorData')] },
  },
  Datatype: { type: 'string', enum: OIP_DATATYPES },
  ServerLive: { type: 'object', required: ['live'], properties: { live: { type: 'boolean' } } },
  ServerReady: { type: 'object', required: ['ready'], properties: { ready: { type: 'boolean' } } },
  ServerMetadata: {
    type: 'object',
    required: ['name', 'version', 'extensions'],
    properties: { name: { type: 'string' }, version: { type: 'string' }, extensions: { type: 'array', items: { type: 'string', enum: OIP_EXTENSIONS } } },
  },
  MetadataTensor: {
    type: 'object',
    required: ['name', 'datatype', 'shape'],
    properties: { name: { type: 'string' }, datatype: ref('Datatype'), shape: { type: 'array', items: { type: 'integer', minimum: -1 }, description: '-1 for the batch axis of a batching model.' } },
  },
  ModelMetadata: {
    type: 'object',
    required: ['name', 'platform', 'inputs', 'outputs'],
    properties: {
      name: { type: 'string' },
      versions: { type: 'array', items: { type: 'string' } },
      platform: { type: 'string' },
      inputs: { type: 'array', items: ref('MetadataTensor') },
      outputs: { type: 'array', items: ref('MetadataTensor') },
    },
  },
  ModelReady: {
    type: 'object',
    required: ['name', 'version', 'ready'],
    properties: { name: { type: 'string' }, version: { type: 'string' }, ready: { const: true } },
  },
  RequestInput: {
    type: 'object',
    required: ['name', 'shape', 'datatype'],
    description: 'One input tensor: `data`, or `parameters.binary_data_size` bytes after the JSON (binary tensor data extension).',
    properties: {
      name: { type: 'string' },
      shape: { type: 'array', items: { type: 'integer', minimum: 0 } },
      datatype: ref('Datatype'),
      parameters: {
        type: 'object', allOf: [ref('Parameters')],
        properties: { binary_data_size: { type: 'integer', minimum: 0 } },
      },
      data: ref('TensorData'),
    },
  },
  RequestOutput: {
    type: 'object',
    required: ['name'],
    properties: {
      name: { type: 'string' },
      parameters: { type: 'object', allOf: [ref('Parameters')], properties: { binary_data: { type: 'boolean', description: 'This output as bytes after the JSON.' } } },
    },
  },
  InferenceRequest: {
    type: 'object',
    required: ['inputs'],
    properties: {
      id: { type: 'string', description: 'Echoed in the response.' },
      parameters: {
        type: 'object', allOf: [ref('Parameters')],
        description: '`priority` (-1000..1000, higher first), `timeout` (microseconds), `binary_data_output`. The sequence extension (`sequence_id`, …) is refused with 400.',
        properties: { priority: { type: 'integer' }, timeout: { type: 'integer', minimum: 0 }, binary_data_output: { type: 'boolean' } },
      },
      inputs: { type: 'array', minItems: 1, items: ref('RequestInput') },
      outputs: { type: 'array', items: ref('RequestOutput'), description: 'The outputs to return (default: all).' },
    },
  },
  ResponseOutput: {
    type: 'object',
    required: ['name', 'shape', 'datatype'],
    description: '`data` in JSON, or `parameters.binary_data_size` bytes after the JSON.',
    properties: {
      name: { type: 'string' },
      shape: { type: 'array', items: { type: 'integer', minimum: 0 } },
      datatype: ref('Datatype'),
      parameters: { type: 'object', allOf: [ref('Parameters')], properties: { binary_data_size: { type: 'integer', minimum: 0 } } },
      data: ref('TensorData'),
    },
  },
  InferenceResponse: {
    type: 'object',
    required: ['model_name', 'outputs'],
    properties: {
      model_name: { type: 'string' },
      model_version: { type: 'string' },
      id: { type: 'string' },
      parameters: ref('Parameters'),
      outputs: { type: 'array', items: ref('ResponseOutput') },
    },
  },
  ExplainRequest: {
    description: 'An inference request carrying the model\'s image input preprocessed ([N, …dims], pixels / 255), with the explanation\'s settings as request parameters.',
    type: 'object',
    allOf: [ref('InferenceRequest')],
    properties: {
      parameters: {
        type: 'object',
        required: ['method'],
        properties: {
          method: { type: 'string', description: 'occlusion, rise or attention (any case).' },
          patch: { type: 'integer' },
          stride: { type: 'integer' },
          masks: { type: 'integer' },
          mask_grid: { type: 'integer' },
          seed: { type: 'integer' },
          target_class: { type: 'integer' },
          heatmap: { type: 'boolean' },
          timeout: { type: 'integer', minimum: 0 },
        },
      },
    },
  },
  ExplainResponse: {
    description: 'Outputs `saliency` FP32 [N, h, w], `explained_class` INT64 [N], `explained_score` FP32 [N] and, with heatmap, `heatmap_png` BYTES [N].',
    type: 'object',
    allOf: [ref('InferenceResponse')],
    required: ['parameters'],
    properties: {
      parameters: {
        type: 'object',
        required: ['method', 'items', 'items_per_image'],
        properties: { method: { type: 'string', enum: ['OCCLUSION', 'RISE', 'ATTENTION'] }, items: { type: 'integer', minimum: 1 }, items_per_image: { type: 'integer', minimum: 1 } },
      },
    },
  },
  RepositoryIndex: {
    type: 'array',
    items: {
      type: 'object',
      required: ['name', 'version', 'state'],
      properties: {
        name: { type: 'string' },
        version: { type: 'string' },
        state: { type: 'string', description: 'The version\'s status (READY, LOADING, FAILED, …).' },
        reason: { type: 'string' },
        source: { type: 'string', enum: ['SEED', 'CATALOG'] },
        replicas: {
          type: 'array',
          description: 'Every live replica\'s state of the version, as it last reported it (ModelReplica).',
          items: {
            type: 'object',
            required: ['replica', 'state', 'applied_generation', 'lagging'],
            properties: { replica: { type: 'string' }, state: { type: 'string' }, applied_generation: { type: ['integer', 'null'], description: 'The catalog generation the replica last applied for this version' }, lagging: { type: 'boolean' }, reason: { type: 'string' } },
          },
        },
      },
    },
  },
  FleetConvergence: {
    type: 'object',
    description: 'With ?wait=fleet: where every live replica stands on the change.',
    required: ['generation', 'converged', 'waited_ms', 'replicas'],
    properties: {
      generation: { type: 'integer' },
      converged: { type: 'boolean' },
      waited_ms: { type: 'integer' },
      replicas: {
        type: 'array',
        items: {
          type: 'object',
          required: ['replica', 'host', 'pid', 'generation', 'lagging', 'failures'],
          properties: { replica: { type: 'string' }, host: { type: 'string' }, pid: { type: 'integer' }, generation: { type: 'integer' }, lagging: { type: 'boolean' }, failures: { type: 'array', items: { type: 'string' } } },
        },
      },
    },
  },
  ModelConfig: {
    type: 'object',
    description: 'Triton\'s model configuration, JSON form: the fields modelgate serves with.',
    required: ['name', 'platform', 'backend', 'max_batch_size', 'input', 'output', 'parameters'],
    properties: {
      name: { type: 'string' },
      platform: { type: 'string' },
      backend: { type: 'string' },
      max_batch_size: { type: 'integer', minimum: 0 },
      input: { type: 'array', items: ref('ConfigTensor') },
      output: { type: 'array', items: ref('ConfigTensor') },
      dynamic_batching: {
        type: 'object',
        required: ['preferred_batch_size', 'max_queue_delay_microseconds', 'default_queue_policy'],
        properties: {
          preferred_batch_size: { type: 'array', items: { type: 'integer' } },
          max_queue_delay_microseconds: { type: 'integer', minimum: 0 },
          default_queue_policy: { type: 'object', required: ['max_queue_size'], properties: { max_queue_size: { type: 'integer' } } },
        },
      },
      parameters: {
        type: 'object',
        required: ['configSource', 'cost'],
        properties: { configSource: ref('StringValue'), cost: ref('StringValue'), configWarnings: ref('StringValue') },
        additionalProperties: ref('StringValue'),
      },
    },
  },
  StringValue: { type: 'object', required: ['string_value'], properties: { string_value: { type: 'string' } } },
  ConfigTensor: {
    type: 'object',
    required: ['name', 'data_type', 'dims'],
    properties: { name: { type: 'string' }, data_type: { type: 'string', pattern: '^TYPE_[A-Z0-9]+$' }, dims: { type: 'array', items: { type: 'integer' } } },
  },
  Duration: { type: 'object', required: ['count', 'ns'], properties: { count: { type: 'integer', minimum: 0 }, ns: { type: 'integer', minimum: 0 } } },
  ModelStats: {
    type: 'object',
    required: ['model_stats'],
    properties: {
      model_stats: {
        type: 'array',
        items: {
          type: 'object',
          required: ['name', 'version', 'inference_count', 'execution_count', 'inference_stats'],
          properties: {
            name: { type: 'string' },
            version: { type: 'string' },
            inference_count: { type: 'integer', minimum: 0 },
            execution_count: { type: 'integer', minimum: 0 },
            inference_stats: {
              type: 'object',
              required: ['success', 'fail', 'queue', 'compute_infer'],
              properties: { success: ref('Duration'), fail: ref('Duration'), queue: ref('Duration'), compute_infer: ref('Duration') },
            },
          },
        },
      },
    },
  },
};

const headers: Record<string, Json> = {
  RequestId: { description: 'The request id (the client\'s x-request-id when it is safe, else a UUID); also in error bodies and log lines.', required: true, schema: { type: 'string' } },
  RateLimit: {
    description: 'IETF httpapi draft: one item per limit that applies, `"<name>";r=<remaining>;t=<seconds to reset>`. Sent on keyed OIP routes when limits apply.',
    schema: { type: 'string', pattern: '^"[a-z_]+";r=\\d+;t=\\d+(, "[a-z_]+";r=\\d+;t=\\d+)*$' },
  },
  RateLimitPolicy: {
    description: 'IETF httpapi draft: `"<name>";q=<quota>;w=<window seconds>[;qu="compute-units"]` per limit.',
    schema: { type: 'string', pattern: '^"[a-z_]+";q=\\d+;w=\\d+(;qu="compute-units")?(, "[a-z_]+";q=\\d+;w=\\d+(;qu="compute-units")?)*$' },
  },
  RetryAfter: { description: 'Seconds until the refused request may succeed.', required: true, schema: { type: 'string', pattern: '^\\d+$' } },
  InferenceHeaderContentLength: {
    description: 'Length in bytes of the JSON at the start of the body; the binary outputs follow it.',
    required: true,
    schema: { type: 'string', pattern: '^\\d+$' },
  },
};

const limitHeaders = { 'x-request-id': header('RequestId'), RateLimit: header('RateLimit'), 'RateLimit-Policy': header('RateLimitPolicy') };
const idHeader = { 'x-request-id': header('RequestId') };

const oipError = (description: string, extraHeaders: Json = {}): Json => ({ description, headers: { ...limitHeaders, ...extraHeaders }, content: json(ref('OipError')) });
const contractError = (description: string): Json => ({ description, headers: idHeader, content: json(ref('ErrorBody')) });

const responses: Record<string, Json> = {
  OipBadRequest: oipError('BAD_USER_INPUT: a malformed body, header or parameter; `field` names it.'),
  OipUnauthenticated: oipError('UNAUTHENTICATED: missing, malformed, unknown, expired or revoked key.'),
  OipForbidden: oipError('FORBIDDEN: the key lacks the scope (`requiredScopes`), the model is outside its allowlist, or the tenant is suspended.'),
  OipNotFound: oipError('NOT_FOUND: no such model or version.'),
  OipPayloadTooLarge: oipError('PAYLOAD_TOO_LARGE: the body (or its inflated form) exceeds BODY_LIMIT_BYTES.'),
  OipTooManyRequests: oipError('RATE_LIMITED or QUOTA_EXCEEDED.', { 'Retry-After': header('RetryAfter') }),
  OipUnavailable: oipError('MODEL_UNAVAILABLE (model not READY), OVERLOADED (queue full, or closed-mode limits without Redis) or UNAVAILABLE (a dependency is unreachable).'),
  OipModelTooLarge: oipError('MODEL_TOO_LARGE (weights over MODEL_UPLOAD_MAX_BYTES) or PAYLOAD_TOO_LARGE (body over BODY_LIMIT_BYTES).'),
  OipModelInvalid: oipError('MODEL_INVALID: weights onnxruntime cannot open, or a config that does not parse or disagrees with the graph; `reason` names which.'),
  OipTimeout: oipError('TIMEOUT: the request\'s deadline passed while queued.'),
  OipDefault: oipError('Any other error (405, 500, …), in the OIP shape.'),
  BadRequest: contractError('BAD_USER_INPUT; `extensions.field` names the parameter.'),
  Unauthenticated: contractError('UNAUTHENTICATED: missing, malformed, unknown, expired or revoked key.'),
  Forbidden: contractError('FORBIDDEN: the key lacks the scope, or reads another tenant.'),
  Unavailable: contractError('UNAVAILABLE: a dependency (PostgreSQL) is unreachable; retry.'),
  Default: contractError('Any other error (404, 405, 500, …), in the contract\'s shape.'),
};

const modelParam: Json = { name: 'model', in: 'path', required: true, schema: { type: 'string', pattern: '^[A-Za-z0-9_.-]{1,128}$' } };
const versionParam: Json = { name: 'version', in: 'path', required: true, schema: { type: 'string' } };
/** `?wait=fleet&timeout_ms=N` on the repository changes. */
const fleetWaitParams: Json[] = [
  { name: 'wait', in: 'query', required: false, schema: { type: 'string', enum: ['replica', 'fleet'], default: 'replica' }, description: 'fleet: answer once every live replica reached the change (or timeout_ms passed)' },
  { name: 'timeout_ms', in: 'query', required: false, schema: { type: 'integer', minimum: 0, maximum: 600000, default: 30000 }, description: 'With wait=fleet, how long to wait for the other replicas' },
];
const changeAnswers = (what: string): Json => ({
  '200': ok(`${what} (with wait=fleet: and every live replica converged).`, { type: 'object', properties: { fleet: ref('FleetConvergence') } }),
  '202': ok('With wait=fleet: committed, but a replica lags or failed it (fleet says which).', { type: 'object', properties: { fleet: ref('FleetConvergence') } }),
});

/** The keyed errors every /v2 model route may answer. */
const keyedOipErrors = {
  '400': response('OipBadRequest'),
  '401': response('OipUnauthenticated'),
  '403': response('OipForbidden'),
  '404': response('OipNotFound'),
  '429': response('OipTooManyRequests'),
  '503': response('OipUnavailable'),
  default: response('OipDefault'),
};

const ok = (description: string, schema: Json, extraHeaders: Json = limitHeaders): Json => ({ description, headers: extraHeaders, content: json(schema) });

/** One operation at /v2/models/{m}<suffix> and /v2/models/{m}/versions/{v}<suffix>. */
function modelPaths(suffix: string, method: 'get' | 'post', operation: (versioned: boolean) => Json): Record<string, Json> {
  return {
    [`/v2/models/{model}${suffix}`]: { parameters: [modelParam], [method]: operation(false) },
    [`/v2/models/{model}/versions/{version}${suffix}`]: { parameters: [modelParam, versionParam], [method]: operation(true) },
  };
}

const opId = (base: string, versioned: boolean) => (versioned ? `${base}Version` : base);
const at = (versioned: boolean) => (versioned ? 'the given version' : 'its latest version');

const binaryBody: Json = {
  'application/octet-stream': {
    schema: {
      type: 'string',
      contentMediaType: 'application/octet-stream',
      description: 'Binary tensor data extension: the InferenceRequest JSON (its length in Inference-Header-Content-Length), then each input with `parameters.binary_data_size` as raw little-endian bytes, in input order. Any content type other than JSON is read this way.',
    },
  },
};

const inferenceHeaderParams: Json[] = [
  { name: 'Inference-Header-Content-Length', in: 'header', required: false, description: 'Length of the JSON part when binary tensors follow it.', schema: { type: 'string', pattern: '^\\d+$' } },
  { name: 'Content-Encoding', in: 'header', required: false, description: 'gzip or deflate (inflated to at most BODY_LIMIT_BYTES).', schema: { type: 'string', enum: ['gzip', 'deflate', 'identity'] } },
];

const paths: Record<string, Json> = {
  '/healthz': {
    get: { operationId: 'healthz', tags: ['health'], summary: 'Liveness: 200 while the process runs.', ...open, responses: { '200': ok('Alive.', ref('Alive'), idHeader) } },
  },
  '/readyz': {
    get: {
      operationId: 'readyz',
      tags: ['health'],
      summary: 'Readiness per component; 503 until every required component is ready, and during shutdown.',
      ...open,
      responses: { '200': ok('Ready.', ref('ReadinessReport'), idHeader), '503': ok('Not ready (the same report, not an error body).', ref('ReadinessReport'), idHeader) },
    },
  },
  '/metrics': {
    get: {
      operationId: 'metrics',
      tags: ['health'],
      summary: 'Prometheus exposition: process defaults, HTTP durations, event-loop delay, inference, usage and limit metrics.',
      ...open,
      responses: { '200': { description: 'Prometheus text format 0.0.4.', headers: idHeader, content: { 'text/plain': { schema: { type: 'string' } } } } },
    },
  },
  '/openapi.json': {
    get: {
      operationId: 'openapi',
      tags: ['meta'],
      summary: 'This document. Cacheable; answers 304 to a matching If-None-Match.',
      ...open,
      parameters: [{ name: 'If-None-Match', in: 'header', required: false, schema: { type: 'string' } }],
      responses: {
        '200': {
          description: 'The OpenAPI document.',
          headers: { ...idHeader, ETag: { required: true, schema: { type: 'string', pattern: '^"[0-9a-f]+"$' } }, 'Cache-Control': { required: true, schema: { type: 'string' } } },
          content: json({ type: 'object', required: ['openapi', 'info', 'paths'], properties: { openapi: { const: '3.1.0' }, info: { type: 'object' }, paths: { type: 'object' } } }),
        },
        '304': { description: 'Not modified: the ETag matched.', headers: idHeader },
      },
    },
  },
  '/console': {
    get: {
      operationId: 'console',
      tags: ['console'],
      summary: 'The web console (a /graphql client; its key stays in page memory). Assets under /console/assets/ are not listed.',
      ...open,
      responses: { '200': { description: 'The console page.', headers: idHeader, content: { 'text/html': { schema: { type: 'string' } } } }, '503': contractError('The console assets are not built (npm run build:ts).') },
    },
  },
  '/console/': {
    get: {
      operationId: 'consoleSlash',
      tags: ['console'],
      summary: 'The same page as /console.',
      ...open,
      responses: { '200': { description: 'The console page.', headers: idHeader, content: { 'text/html': { schema: { type: 'string' } } } }, '503': contractError('The console assets are not built.') },
    },
  },
  '/console/session': {
    post: {
      operationId: 'consoleSessionCreate',
      tags: ['console'],
      summary:
        'Exchanges an API key (Authorization: Bearer or x-api-key, any scope) for a console session: Set-Cookie mg_session (HttpOnly, SameSite=Strict, Secure over TLS) and the CSRF token to send as x-csrf-token. The key is not kept by the page.',
      ...open,
      responses: {
        '201': {
          description: 'Signed in.',
          headers: { ...idHeader, 'Set-Cookie': { required: true, schema: { type: 'string', pattern: '^mg_session=[A-Za-z0-9_-]+; Path=/; Max-Age=\\d+; HttpOnly; SameSite=Strict' } } },
          content: json({ type: 'object', required: ['signedIn', 'csrfToken', 'expiresAt'], properties: { signedIn: { const: true }, csrfToken: { type: 'string' }, expiresAt: { type: 'string', format: 'date-time' }, traceUrlTemplate: TRACE_URL_TEMPLATE } }),
        },
        '401': response('Unauthenticated'),
        '403': response('Forbidden'),
        '503': response('Unavailable'),
        default: response('Default'),
      },
    },
    get: {
      operationId: 'consoleSessionRead',
      tags: ['console'],
      summary: 'Whether the mg_session cookie is a live session (and its CSRF token again, after a reload); ?passive=1 does not count as use (idle timeout).',
      ...open,
      parameters: [{ name: 'passive', in: 'query', required: false, schema: { type: 'string', enum: ['1'] } }],
      responses: {
        '200': {
          description: 'The session state; signedIn false without a live session (and `ended` when the cookie named one that ended).',
          headers: idHeader,
          content: json({
            type: 'object',
            required: ['signedIn', 'oidc'],
            properties: {
              signedIn: { type: 'boolean' },
              oidc: { type: 'boolean', description: 'OIDC sign-in is configured.' },
              csrfToken: { type: 'string' },
              kind: { type: 'string', enum: ['KEY', 'OIDC'] },
              subject: { type: 'string' },
              expiresAt: { type: 'string', format: 'date-time' },
              idleExpiresAt: { type: 'string', format: 'date-time' },
              ended: { type: 'string' },
              traceUrlTemplate: TRACE_URL_TEMPLATE,
            },
          }),
        },
        '403': response('Forbidden'),
        '503': response('Unavailable'),
        default: response('Default'),
      },
    },
    delete: {
      operationId: 'consoleSessionDelete',
      tags: ['console'],
      summary: 'Signs out: ends the session (x-csrf-token required while it is live) and clears the cookie; an OIDC sign-in\'s key is revoked with it.',
      ...open,
      responses: {
        '204': { description: 'Signed out (also when there was no live session).', headers: idHeader },
        '403': response('Forbidden'),
        '503': response('Unavailable'),
        default: response('Default'),
      },
    },
  },
  '/console/oidc/login': {
    get: {
      operationId: 'consoleOidcLogin',
      tags: ['console'],
      summary: 'Starts OIDC single sign-on: redirects to the identity provider (authorization code with PKCE). 404 when OIDC_ISSUER_URL is not set.',
      ...open,
      responses: {
        '302': { description: 'To the identity provider.', headers: { ...idHeader, Location: { required: true, schema: { type: 'string' } } } },
        '404': contractError('NOT_FOUND: OIDC sign-in is not configured on this gateway.'),
        '503': response('Unavailable'),
        default: response('Default'),
      },
    },
  },
  '/console/oidc/callback': {
    get: {
      operationId: 'consoleOidcCallback',
      tags: ['console'],
      summary: 'The identity provider returns here: a session cookie and back to /console, or back to /console#signin-error=CODE when refused.',
      ...open,
      responses: {
        '303': { description: 'To the console.', headers: { ...idHeader, Location: { required: true, schema: { type: 'string', pattern: '^/console(#signin-error=[A-Z_]+)?$' } } } },
        default: response('Default'),
      },
    },
  },
  '/usage.csv': {
    get: {
      operationId: 'usageCsv',
      tags: ['usage'],
      summary: 'Usage records of a range as CSV, oldest first, priced at their hour; streamed. usage:read reads its own tenant, admin any (or all without tenantId).',
      ...keyed('usage:read'),
      parameters: [
        { name: 'from', in: 'query', required: true, description: 'Inclusive start (ISO 8601).', schema: { type: 'string', format: 'date-time' } },
        { name: 'to', in: 'query', required: true, description: 'Exclusive end (ISO 8601); the range spans at most the usage API\'s maximum days.', schema: { type: 'string', format: 'date-time' } },
        { name: 'tenantId', in: 'query', required: false, description: 'Admin: one tenant; usage:read: its own only.', schema: { type: 'string', format: 'uuid' } },
      ],
      responses: {
        '200': {
          description: `A header line (${CSV_HEADER.join(',')}), then one line per record; the price columns are empty when unpriced.`,
          headers: { ...idHeader, 'Content-Disposition': { required: true, schema: { type: 'string', pattern: '^attachment; filename="usage-[^"]+\\.csv"$' } } },
          content: { 'text/csv': { schema: { type: 'string', pattern: `^${CSV_HEADER.join(',')}\\n` } } },
        },
        '400': response('BadRequest'),
        '401': response('Unauthenticated'),
        '403': response('Forbidden'),
        '503': response('Unavailable'),
        default: response('Default'),
      },
    },
  },
  '/v2/health/live': {
    get: { operationId: 'serverLive', tags: ['oip'], summary: 'OIP server liveness.', ...open, responses: { '200': ok('Live.', ref('ServerLive'), idHeader), default: response('OipDefault') } },
  },
  '/v2/health/ready': {
    get: {
      operationId: 'serverReady',
      tags: ['oip'],
      summary: 'OIP server readiness: 200 when /readyz is, else 503 (while loading or shutting down).',
      ...open,
      responses: { '200': ok('Ready.', ref('ServerReady'), idHeader), '503': oipError('Not ready (code UNAVAILABLE).'), default: response('OipDefault') },
    },
  },
  '/v2': {
    get: { operationId: 'serverMetadata', tags: ['oip'], summary: 'OIP server metadata and the protocol extensions implemented.', ...open, responses: { '200': ok('Server metadata.', ref('ServerMetadata'), idHeader), default: response('OipDefault') } },
  },
  ...modelPaths('', 'get', (v) => ({
    operationId: opId('modelMetadata', v),
    tags: ['oip'],
    summary: `Model metadata at ${at(v)}; consumes one request of the limits.`,
    ...keyed('inference'),
    responses: { '200': ok('Model metadata.', ref('ModelMetadata')), ...keyedOipErrors },
  })),
  ...modelPaths('/ready', 'get', (v) => ({
    operationId: opId('modelReady', v),
    tags: ['oip'],
    summary: `Whether ${at(v)} takes requests: 200, or 503 when not READY.`,
    ...keyed('inference'),
    responses: { '200': ok('Ready.', ref('ModelReady')), ...keyedOipErrors },
  })),
  ...modelPaths('/config', 'get', (v) => ({
    operationId: opId('modelConfig', v),
    tags: ['oip'],
    summary: `Triton's model configuration extension, at ${at(v)}.`,
    ...keyed('inference'),
    responses: { '200': ok('The configuration.', ref('ModelConfig')), ...keyedOipErrors },
  })),
  ...modelPaths('/stats', 'get', (v) => ({
    operationId: opId('modelStats', v),
    tags: ['oip'],
    summary: `Triton's statistics extension: ${v ? 'the given version' : 'every version'}. Admin keys only: the counters sum every tenant's traffic.`,
    ...keyed('admin'),
    responses: { '200': ok('Statistics.', ref('ModelStats')), ...keyedOipErrors },
  })),
  ...modelPaths('/infer', 'post', (v) => ({
    operationId: opId('modelInfer', v),
    tags: ['oip'],
    summary: `Inference at ${at(v)}: JSON or binary tensors; consumes one request and items × the model's cost in compute units, and records one usage record.`,
    ...keyed('inference'),
    parameters: inferenceHeaderParams,
    requestBody: { required: true, content: { ...json(ref('InferenceRequest')), ...binaryBody } },
    responses: {
      '200': {
        description: 'The outputs: JSON, or (when an output asked for binary_data) application/octet-stream with the JSON first and the binary outputs after it.',
        headers: limitHeaders,
        content: {
          ...json(ref('InferenceResponse')),
          'application/octet-stream': {
            schema: {
              type: 'string',
              contentMediaType: 'application/octet-stream',
              description: 'InferenceResponse JSON (Inference-Header-Content-Length bytes), then the binary outputs in output order.',
            },
          },
        },
      },
      ...keyedOipErrors,
      '413': response('OipPayloadTooLarge'),
      '504': response('OipTimeout'),
    },
  })),
  ...modelPaths('/explain', 'post', (v) => ({
    operationId: opId('modelExplain', v),
    tags: ['oip'],
    summary: `modelgate extension (modelgate_explain): saliency maps at ${at(v)}, the same pipeline step as GraphQL classify(explain: …).`,
    ...keyed('inference'),
    parameters: inferenceHeaderParams,
    requestBody: { required: true, content: { ...json(ref('ExplainRequest')), ...binaryBody } },
    responses: { '200': ok('The explanation as OIP output tensors.', ref('ExplainResponse')), ...keyedOipErrors, '413': response('OipPayloadTooLarge'), '504': response('OipTimeout') },
  })),
  '/v2/models/stats': {
    get: {
      operationId: 'allModelStats',
      tags: ['oip'],
      summary: "Triton's statistics extension for every version of every model the key may see. Admin keys only: the counters sum every tenant's traffic.",
      ...keyed('admin'),
      responses: { '200': ok('Statistics.', ref('ModelStats')), ...keyedOipErrors },
    },
  },
  '/v2/repository/index': {
    post: {
      operationId: 'repositoryIndex',
      tags: ['oip'],
      summary: 'Triton\'s repository index: every version of every model the key may see, with its state. The body is ignored.',
      ...keyed('inference'),
      requestBody: { required: false, content: json({ type: 'object', properties: { ready: { type: 'boolean' } } }) },
      responses: { '200': ok('The index.', ref('RepositoryIndex')), ...keyedOipErrors },
    },
  },
  '/v2/repository/models/{model}/load': {
    post: {
      operationId: 'repositoryModelLoad',
      tags: ['oip'],
      summary:
        'Triton\'s repository load, fleet-wide: loads every version of the model on every replica, or (with `parameters.config` and `file:<v>/model.onnx` base64 files, Triton\'s override semantics) publishes those versions and unloads the others. Answers once this replica applied the change. Scope: admin (any model) or models:manage (the own tenant\'s private models, named `<tenant id>.<name>`; another tenant\'s answers as an unknown model).',
      ...keyed('models:manage'),
      parameters: [modelParam, ...fleetWaitParams],
      requestBody: {
        required: false,
        content: json({ type: 'object', properties: { parameters: { type: 'object', properties: { config: { type: 'string', description: 'Triton JSON model config, or modelgate config.json form' } }, additionalProperties: { type: 'string' } } } }),
      },
      responses: { ...changeAnswers('Applied on this replica; the others follow'), ...keyedOipErrors, '413': response('OipModelTooLarge'), '422': response('OipModelInvalid') },
    },
  },
  '/v2/repository/models/{model}/versions/{version}/model.onnx': {
    put: {
      operationId: 'repositoryModelUpload',
      tags: ['oip'],
      summary:
        'modelgate\'s streamed upload: raw model.onnx bytes for one version (no base64, no JSON body limit), bounded by MODEL_UPLOAD_MAX_BYTES and hashed while streaming, validated in an isolated child process (bounded in time and memory), then published LOADED on every replica with the model\'s config. Answers once this replica applied it.',
      ...keyed('models:manage'),
      parameters: [modelParam, versionParam, ...fleetWaitParams],
      requestBody: { required: true, content: { 'application/octet-stream': { schema: { type: 'string', format: 'binary' } } } },
      responses: {
        '200': ok('Published (with wait=fleet: and every live replica converged).', { type: 'object', properties: { name: { type: 'string' }, version: { type: 'string' }, digest: { type: 'string' }, size_bytes: { type: 'integer' }, fleet: ref('FleetConvergence') } }),
        '202': ok('With wait=fleet: published, but a replica lags or failed it (fleet says which).', { type: 'object', properties: { name: { type: 'string' }, version: { type: 'string' }, digest: { type: 'string' }, size_bytes: { type: 'integer' }, fleet: ref('FleetConvergence') } }),
        ...keyedOipErrors,
        '413': response('OipModelTooLarge'),
        '422': response('OipModelInvalid'),
      },
    },
  },
  '/v2/repository/models/{model}/unload': {
    post: {
      operationId: 'repositoryModelUnload',
      tags: ['oip'],
      summary: 'Triton\'s repository unload, fleet-wide: every version of the model, on every replica. Answers once this replica applied it.',
      ...keyed('models:manage'),
      parameters: [modelParam, ...fleetWaitParams],
      requestBody: { required: false, content: json({ type: 'object' }) },
      responses: { ...changeAnswers('Applied on this replica; the others follow'), ...keyedOipErrors },
    },
  },
};

/** The document served at GET /openapi.json. */
export function openApiDocument(): Json {
  return {
    openapi: '3.1.0',
    info: {
      title: 'modelgate HTTP routes',
      version: VERSION,
      description:
        'Every route except GraphQL (POST/GET /graphql, described by schema.graphql) and the GraphiQL and console static assets. ' +
        'Keyed routes take an API key as `Authorization: Bearer <key>` or `x-api-key: <key>`; each names the scope it needs (`x-modelgate-scope`, and as the role in its security requirement); `admin` implies every scope. ' +
        'Errors: the GraphQL error shape (ErrorBody) everywhere except /v2, which answers the Open Inference Protocol shape (OipError); both carry a code from ErrorCode and the request id.',
      license: { name: 'MIT', identifier: 'MIT' },
    },
    tags: [
      { name: 'health', description: 'Probes and metrics.' },
      { name: 'meta', description: 'This document.' },
      { name: 'console', description: 'The web console.' },
      { name: 'usage', description: 'Usage export.' },
      { name: 'oip', description: 'Open Inference Protocol (KServe v2 / Triton) REST.' },
    ],
    paths,
    components: {
      schemas,
      headers,
      responses,
      securitySchemes: {
        bearerKey: { type: 'http', scheme: 'bearer', description: 'A modelgate API key (mg_live_… / mg_test_…).' },
        apiKeyHeader: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'The same key in x-api-key.' },
      },
    },
  };
}
