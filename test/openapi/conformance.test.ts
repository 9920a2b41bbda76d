/**
 * Live conformance: every documented operation is called on a real gateway
 * (real models, Postgres, Redis), and each answer — successes and the error
 * cases — is checked against the document: the status is documented, the
 * content type is one it lists, required headers are there and every
 * documented header matches its schema, and the body validates against the
 * response schema. The scope each operation names is the one it enforces.
 */
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { startGateway, type TestGateway } from '../helpers/gateway';
import { binaryInfer, jsonInfer } from '../oip/helpers';
import { Contract, type ActualResponse, type Operation } from './contract';
import { STARTUP_TEST_TIMEOUT_MS } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const contract = new Contract();
const exercised = new Set<string>();

let gw: TestGateway;
let keys: Record<'inference' | 'usage:read' | 'limited' | 'admin', Record<string, string>>;

const BODY_LIMIT = 256 * 1024;
const generous = { requestsPerMinute: 100_000, computeUnitsPerMinute: 10_000_000 };

beforeAll(async () => {
  gw = await startGateway({ INFERENCE_WORKERS: '1', BODY_LIMIT_BYTES: String(BODY_LIMIT) });
  const inference = await createTestKey({ scopes: ['inference'], tenantLimits: generous, keyLimits: generous });
  const usage = await createTestKey({ scopes: ['usage:read'], tenantLimits: generous, keyLimits: generous });
  const limited = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 1 } });
  const admin = await createTestKey({ scopes: ['admin'], tenantLimits: generous, keyLimits: generous });
  keys = { inference: authHeaders(inference.key), 'usage:read': authHeaders(usage.key), limited: authHeaders(limited.key), admin: authHeaders(admin.key) };
});
afterAll(async () => {
  await gw.close();
  await closeTestKeys();
});

interface Call {
  params?: Record<string, string>;
  query?: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}

/** Calls the operation, expects `status`, and returns the problems the contract finds with the answer. */
async function call(operationId: string, status: number, init: Call = {}): Promise<ActualResponse & { problems: string[]; op: Operation }> {
  const op = contract.operation(operationId);
  const params = { model: 'fashion-cnn', version: '1', ...init.params };
  const path = op.path.replace(/\{([^}]+)\}/g, (_, name: string) => encodeURIComponent(params[name as keyof typeof params] ?? ''));
  // Redirects are answers to check, not to follow (the console's OIDC routes).
  const res = await fetch(`${gw.url}${path}${init.query ? `?${init.query}` : ''}`, { method: op.method, headers: init.headers, body: init.body, redirect: 'manual' });
  const actual = { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
  if (actual.status !== status) throw new Error(`${op.method} ${path}: expected ${status}, got ${actual.status}: ${actual.body.toString('utf8').slice(0, 400)}`);
  exercised.add(operationId);
  return { ...actual, problems: contract.check(op, actual), op };
}

const json = { 'content-type': 'application/json' };
const explainBody = jsonInfer([0], { id: 'explain-1', parameters: { method: 'occlusion', patch: 7, stride: 7 } });

describe('successful answers match the document', () => {
  it.each(['healthz', 'readyz', 'metrics', 'openapi', 'console', 'consoleSlash', 'serverLive', 'serverReady', 'serverMetadata'])('%s (no key)', async (id) => {
    expect((await call(id, 200)).problems).toEqual([]);
  });

  it('console sessions: a key exchanged for a cookie, the state read, sign-out; OIDC routes when OIDC is off', async () => {
    const created = await call('consoleSessionCreate', 201, { headers: keys['usage:read'] });
    expect(created.problems).toEqual([]);
    const cookie = (created.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const { csrfToken } = JSON.parse(created.body.toString('utf8')) as { csrfToken: string };
    expect((await call('consoleSessionCreate', 401)).problems).toEqual([]);
    expect((await call('consoleSessionRead', 200, { headers: { cookie } })).problems).toEqual([]);
    expect((await call('consoleSessionRead', 200, { query: 'passive=1' })).problems).toEqual([]);
    expect((await call('consoleSessionDelete', 403, { headers: { cookie } })).problems).toEqual([]);
    expect((await call('consoleSessionDelete', 204, { headers: { cookie, 'x-csrf-token': csrfToken } })).problems).toEqual([]);
    expect((await call('consoleOidcLogin', 404)).problems).toEqual([]);
    const back = await call('consoleOidcCallback', 303, { query: 'code=x&state=y' });
    expect(back.problems).toEqual([]);
    expect(back.headers.get('location')).toBe('/console#signin-error=NOT_FOUND');
  });

  it('openapi.json revalidates: the same ETag answers 304 with no body', async () => {
    const first = await call('openapi', 200);
    const etag = first.headers.get('etag')!;
    expect(JSON.parse(first.body.toString('utf8'))).toEqual(contract.doc);
    const again = await call('openapi', 304, { headers: { 'if-none-match': etag } });
    expect(again.problems).toEqual([]);
    expect(again.body.length).toBe(0);
    expect((await call('openapi', 200, { headers: { 'if-none-match': '"stale"' } })).problems).toEqual([]);
  });

  it.each(['modelStats', 'modelStatsVersion', 'allModelStats'])('%s (admin key; an inference key is refused as documented)', async (id) => {
    const answer = await call(id, 200, { headers: keys.admin });
    expect(answer.problems).toEqual([]);
    expect(answer.headers.get('ratelimit')).toContain('"key_requests"');
    expect((await call(id, 403, { headers: keys.inference })).problems).toEqual([]);
  });

  it.each(['modelMetadata', 'modelMetadataVersion', 'modelReady', 'modelReadyVersion', 'modelConfig', 'modelConfigVersion'])(
    '%s (inference key)',
    async (id) => {
      const answer = await call(id, 200, { headers: keys.inference });
      expect(answer.problems).toEqual([]);
      // Keyed OIP routes consume one request of the limits and say so.
      expect(answer.headers.get('ratelimit')).toContain('"key_requests"');
    },
  );

  it('repositoryIndex lists the served models', async () => {
    const answer = await call('repositoryIndex', 200, { headers: { ...keys.inference, ...json }, body: '{}' });
    expect(answer.problems).toEqual([]);
    expect(JSON.parse(answer.body.toString('utf8'))).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'fashion-cnn', version: '1', state: 'READY' })]));
  });

  it('modelInfer with JSON tensors, and modelInferVersion with binary tensors both ways', async () => {
    const jsonAnswer = await call('modelInfer', 200, { headers: { ...keys.inference, ...json }, body: jsonInfer([0, 1], { id: 'conf-1' }) });
    expect(jsonAnswer.problems).toEqual([]);
    expect(jsonAnswer.headers.get('content-type')).toMatch(/^application\/json/);

    const binary = binaryInfer([0], { binaryOutput: true });
    const binAnswer = await call('modelInferVersion', 200, { headers: { ...keys.inference, ...binary.headers }, body: binary.body });
    expect(binAnswer.problems).toEqual([]);
    expect(binAnswer.headers.get('content-type')).toBe('application/octet-stream');
    // The octet-stream body starts with an InferenceResponse JSON of the header's length.
    const headerLength = Number(binAnswer.headers.get('inference-header-content-length'));
    const head = JSON.parse(binAnswer.body.toString('utf8', 0, headerLength)) as unknown;
    const validate = contract.validator({ $ref: '#/components/schemas/InferenceResponse' });
    expect(validate(head)).toBe(true);
    expect(binAnswer.body.length - headerLength).toBe(40);
  });

  it('modelExplain and modelExplainVersion', async () => {
    for (const id of ['modelExplain', 'modelExplainVersion']) {
      const answer = await call(id, 200, { headers: { ...keys.inference, ...json }, body: explainBody });
      expect(answer.problems).toEqual([]);
    }
  });

  it('usageCsv streams CSV under the documented header line', async () => {
    const to = new Date(Date.now() + 60_000).toISOString();
    const from = new Date(Date.now() - 86_400_000).toISOString();
    const answer = await call('usageCsv', 200, { headers: keys['usage:read'], query: `from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}` });
    expect(answer.problems).toEqual([]);
  });
});

describe('error answers match the document', () => {
  it('401 without a key, on every keyed operation', async () => {
    for (const { operation } of contract.operations().filter((o) => o.operation.security!.length > 0)) {
      const body = operation.operationId.startsWith('modelExplain') ? explainBody : operation.operationId.startsWith('modelInfer') ? jsonInfer([0]) : undefined;
      const query = operation.operationId === 'usageCsv' ? 'from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z' : undefined;
      const answer = await call(operation.operationId, 401, { ...(body ? { body, headers: json } : {}), ...(query ? { query } : {}) });
      expect({ id: operation.operationId, problems: answer.problems }).toEqual({ id: operation.operationId, problems: [] });
    }
  });

  it('403 naming the documented scope, for a key that lacks it; every keyed operation', async () => {
    for (const { operation } of contract.operations().filter((o) => o.operation.security!.length > 0)) {
      const scope = operation['x-modelgate-scope']!;
      // A key holding only the other non-admin scope.
      const other = scope === 'inference' ? keys['usage:read'] : keys.inference;
      const body = operation.operationId.startsWith('modelExplain') ? explainBody : operation.operationId.startsWith('modelInfer') ? jsonInfer([0]) : undefined;
      const query = operation.operationId === 'usageCsv' ? 'from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z' : undefined;
      const answer = await call(operation.operationId, 403, { headers: { ...other, ...(body ? json : {}) }, ...(body ? { body } : {}), ...(query ? { query } : {}) });
      expect({ id: operation.operationId, problems: answer.problems }).toEqual({ id: operation.operationId, problems: [] });
      const parsed = JSON.parse(answer.body.toString('utf8')) as { requiredScopes?: string[]; errors?: { extensions: { requiredScopes?: string[] } }[] };
      expect(parsed.requiredScopes ?? parsed.errors?.[0]?.extensions.requiredScopes).toEqual([scope]);
    }
  });

  it('400 for a bad tensor shape and for a missing query parameter', async () => {
    const bad = await call('modelInfer', 400, {
      headers: { ...keys.inference, ...json },
      body: JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 28, 28], data: [0] }] }),
    });
    expect(bad.problems).toEqual([]);
    expect(JSON.parse(bad.body.toString('utf8'))).toMatchObject({ code: 'BAD_USER_INPUT', field: 'inputs[0].shape' });
    const csv = await call('usageCsv', 400, { headers: keys['usage:read'], query: 'to=2026-01-02T00:00:00Z' });
    expect(csv.problems).toEqual([]);
    expect(JSON.parse(csv.body.toString('utf8'))).toMatchObject({ errors: [{ extensions: { code: 'BAD_USER_INPUT', field: 'from' } }] });
  });

  it('404 for an unknown model and version', async () => {
    expect((await call('modelMetadata', 404, { headers: keys.inference, params: { model: 'no-such-model' } })).problems).toEqual([]);
    expect((await call('modelReadyVersion', 404, { headers: keys.inference, params: { version: '99' } })).problems).toEqual([]);
  });

  it('413 for a body over BODY_LIMIT_BYTES', async () => {
    const answer = await call('modelInfer', 413, { headers: { ...keys.inference, 'content-type': 'application/octet-stream' }, body: Buffer.alloc(BODY_LIMIT + 1024) });
    expect(answer.problems).toEqual([]);
  });

  it('429 with Retry-After and the RateLimit headers once the key\'s limit is spent', async () => {
    expect((await call('modelMetadata', 200, { headers: keys.limited })).problems).toEqual([]);
    const refused = await call('modelMetadata', 429, { headers: keys.limited });
    expect(refused.problems).toEqual([]);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(refused.headers.get('ratelimit-policy')).toContain('"key_requests";q=1;w=60');
  });

  it('the checker itself refuses an answer that breaks the document', () => {
    const op = contract.operation('serverMetadata');
    const headers = new Headers({ 'content-type': 'application/json', 'x-request-id': 'r1' });
    expect(contract.check(op, { status: 200, headers, body: Buffer.from('{"name":"modelgate","version":"1"}') })).toEqual([expect.stringContaining('extensions')]);
    expect(contract.check(op, { status: 200, headers: new Headers({ 'content-type': 'text/plain', 'x-request-id': 'r1' }), body: Buffer.from('x') })).toEqual([
      expect.stringContaining('content type text/plain'),
    ]);
    expect(contract.check(op, { status: 200, headers: new Headers({ 'content-type': 'application/json' }), body: Buffer.from('{}') })).toContain('header x-request-id is required but absent');
    expect(contract.check(contract.operation('healthz'), { status: 201, headers, body: Buffer.from('{}') })).toEqual([expect.stringContaining('not documented')]);
  });
});

describe('while shutting down (the readiness grace)', () => {
  it('readyz and serverReady answer their documented 503s', async () => {
    // The listener still serves during the grace; afterAll's close() awaits this same shutdown.
    void gw.gateway.close('test', { readinessGraceMs: 3000 });
    const readyz = await call('readyz', 503);
    expect(readyz.problems).toEqual([]);
    expect(JSON.parse(readyz.body.toString('utf8'))).toMatchObject({ ready: false, shuttingDown: true, shutdown: { state: 'grace' } });
    const oipReady = await call('serverReady', 503);
    expect(oipReady.problems).toEqual([]);
    expect(JSON.parse(oipReady.body.toString('utf8'))).toMatchObject({ code: 'UNAVAILABLE' });
  });
});

// Declared last, so it runs after every call above.
describe('coverage', () => {
  it('exercised every documented operation', () => {
    const all = contract.operations().map((o) => o.operation.operationId);
    expect(all.length).toBeGreaterThanOrEqual(20);
    expect(all.filter((id) => !exercised.has(id))).toEqual([]);
  });
});
