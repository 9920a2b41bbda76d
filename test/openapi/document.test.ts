/**
 * The OpenAPI document is valid (a real OpenAPI 3.1 validator, and every
 * schema in it compiles as strict JSON Schema 2020-12) and has not drifted
 * from the routes: every route fastify registered is documented (except
 * GraphQL and static assets), every documented operation is a route, and
 * every operation says its security and scope.
 */
import { SCOPES } from '../../src/auth/principal';
import { openApiDocument } from '../../src/server/rest/openapi/openapi.document';
import { startGateway, type TestGateway } from '../helpers/gateway';
import { Contract, openApiPath } from './contract';
import { STARTUP_TEST_TIMEOUT_MS } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

/** Not in the document: GraphQL has schema.graphql; the static assets are the IDE's and the console's files. */
const UNDOCUMENTED = new Set(['/graphql', '/graphiql/:asset', '/console/assets/:asset']);

type ValidatorModule = typeof import('@seriousme/openapi-schema-validator', { with: { 'resolution-mode': 'import' } });
// The validator is ESM only: loaded with a real dynamic import (Jest runs with --experimental-vm-modules).
const loadValidator = (): Promise<ValidatorModule> => import('@seriousme/openapi-schema-validator');

describe('the document', () => {
  it('passes the OpenAPI 3.1 validator', async () => {
    const { Validator } = await loadValidator();
    const validator = new Validator();
    const result = await validator.validate(openApiDocument());
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('fails the validator when broken (the check can fail)', async () => {
    const { Validator } = await loadValidator();
    const broken = openApiDocument() as { paths: Record<string, Record<string, { responses?: unknown }>> };
    delete broken.paths['/healthz']!['get']!.responses;
    (broken.paths['/readyz']!['get'] as Record<string, unknown>)['parameters'] = [{ name: 'x', in: 'nowhere' }];
    const result = await new Validator().validate(broken as Record<string, unknown>);
    expect(result.valid).toBe(false);
  });

  it('compiles every schema as strict JSON Schema 2020-12, and every $ref resolves', () => {
    const contract = new Contract();
    const schemas = contract.doc.components['schemas']!;
    for (const name of Object.keys(schemas)) expect(() => contract.validator({ $ref: `#/components/schemas/${name}` })).not.toThrow();
    // And every schema written inline (parameters, headers, media types).
    const inline: unknown[] = [];
    const walk = (node: unknown, key: string): void => {
      if (!node || typeof node !== 'object') return;
      if (key === 'schema') return void inline.push(node);
      for (const [k, v] of Object.entries(node)) walk(v, k);
    };
    walk({ paths: contract.doc.paths, headers: contract.doc.components['headers'], responses: contract.doc.components['responses'] }, '');
    expect(inline.length).toBeGreaterThan(40);
    for (const schema of inline) expect(() => contract.validator(schema as Record<string, unknown>)).not.toThrow();
    const refs = [...JSON.stringify(contract.doc).matchAll(/"\$ref":"([^"]+)"/g)].map((m) => m[1]!);
    expect(refs.length).toBeGreaterThan(50);
    for (const ref of new Set(refs)) expect(() => contract.resolve({ $ref: ref })).not.toThrow();
  });

  it('gives every operation an id, a security requirement and, when keyed, one known scope', () => {
    const contract = new Contract();
    const ops = contract.operations();
    const ids = ops.map((o) => o.operation.operationId);
    expect(new Set(ids).size).toBe(ids.length);
    for (const { operation } of ops) {
      expect(Array.isArray(operation.security)).toBe(true);
      const scope = operation['x-modelgate-scope'];
      if (operation.security!.length === 0) {
        expect(scope).toBeUndefined();
        continue;
      }
      expect(SCOPES).toContain(scope);
      // Both ways of sending the key, each naming the same scope.
      expect(operation.security).toEqual([{ bearerKey: [scope] }, { apiKeyHeader: [scope] }]);
    }
  });
});

describe('drift against the routes fastify serves', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway({ INFERENCE_WORKERS: '1' });
  });
  afterAll(async () => {
    await gw.close();
  });

  it('documents every route except GraphQL and static assets, and nothing else', () => {
    const registered = new Set(
      gw.gateway.routes
        .filter((r) => !UNDOCUMENTED.has(r.url))
        // fastify adds HEAD beside every GET (exposeHeadRoutes): implied by the GET.
        .filter((r) => r.method !== 'HEAD' || !gw.gateway.routes.some((g) => g.method === 'GET' && g.url === r.url))
        .map((r) => `${r.method} ${openApiPath(r.url)}`),
    );
    const documented = new Set(new Contract().operations().map((o) => `${o.method} ${o.path}`));
    expect([...registered].filter((r) => !documented.has(r)).sort()).toEqual([]);
    expect([...documented].filter((d) => !registered.has(d)).sort()).toEqual([]);
    // The route table is the real one (not an empty list that trivially matches).
    expect(registered.size).toBeGreaterThanOrEqual(20);
    expect(registered).toContain('POST /v2/models/{model}/versions/{version}/infer');
  });

  it('declares every path parameter a route has, and only those', () => {
    const contract = new Contract();
    for (const { path, method } of contract.operations()) {
      const item = contract.doc.paths[path]!;
      const op = item[method.toLowerCase()] as { parameters?: { in: string; name: string }[] };
      const declared = [...((item['parameters'] as { in: string; name: string }[] | undefined) ?? []), ...(op.parameters ?? [])]
        .filter((p) => p.in === 'path')
        .map((p) => p.name)
        .sort();
      const inPath = [...path.matchAll(/\{([^}]+)\}/g)].map((m) => m[1]!).sort();
      expect({ path, params: declared }).toEqual({ path, params: inPath });
    }
  });
});
