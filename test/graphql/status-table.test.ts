/**
 * One error contract (issue #22): every domain code in src/errors/contract.ts
 * answers the same HTTP status through every door — GraphQL, the Open
 * Inference Protocol REST routes and the plain JSON routes (/usage.csv) — and
 * carries its code in each door's body shape. The core is made to raise each
 * code at the point all three doors call into it; the doors, their error
 * mapping and the HTTP layer are the real ones.
 */
import { DomainError, ERROR_CODES, type ErrorCode } from '../../src/errors';
import { DOMAIN_CONTRACT, type ContractEntry } from '../../src/errors/contract';
import { graphql, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { oip } from '../oip/helpers';

afterAll(() => closeTestKeys());

describe('the error contract', () => {
  let gw: TestGateway;
  let headers: Record<string, string>;
  beforeAll(async () => {
    gw = await startGateway({ INFERENCE_WORKERS: '1' });
    headers = authHeaders((await createTestKey({ scopes: ['inference', 'usage:read'] })).key);
  });
  afterAll(() => gw.close());

  it('has one row for every public domain code', () => {
    expect(Object.keys(DOMAIN_CONTRACT).sort()).toEqual([...ERROR_CODES].sort());
  });

  it('answers every domain code with the same HTTP status and code through GraphQL, OIP and plain JSON', async () => {
    const services = gw.gateway.services;
    const describe = services.models.describe.bind(services.models);
    const csv = services.usage.queries.csv.bind(services.usage.queries);
    // [status, code, Retry-After]: every 503 and 504 says when to retry (issue #24 item 6), nothing else does here.
    const seen: Record<string, { graphql: [number, unknown, string | null]; oip: [number, unknown, string | null]; json: [number, unknown, string | null] }> = {};
    const expected: typeof seen = {};
    try {
      for (const code of ERROR_CODES) {
        const raise = (): never => {
          throw new DomainError(code as ErrorCode, `raised ${code} for the status table`);
        };
        services.models.describe = raise;
        services.usage.queries.csv = raise;

        const viaGraphql = await graphql(gw.url, '{ model(name: "fashion-cnn") { name } }', {}, headers);
        const viaOip = await oip(`${gw.url}/v2/models/fashion-cnn`, { headers });
        const viaJson = await fetch(`${gw.url}/usage.csv?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z`, { headers });
        const jsonBody = (await viaJson.json()) as { errors?: { extensions?: Record<string, unknown> }[] };

        expect(viaGraphql.body.data ?? null).toBeNull();
        seen[code] = {
          graphql: [viaGraphql.status, viaGraphql.body.errors?.[0]?.extensions?.['code'], viaGraphql.headers.get('retry-after')],
          oip: [viaOip.status, viaOip.json['code'], viaOip.headers.get('retry-after')],
          json: [viaJson.status, jsonBody.errors?.[0]?.extensions?.['code'], viaJson.headers.get('retry-after')],
        };
        const entry: ContractEntry = DOMAIN_CONTRACT[code];
        const retry = entry.retryAfterSeconds === undefined ? null : String(entry.retryAfterSeconds);
        expected[code] = { graphql: [entry.status, code, retry], oip: [entry.status, code, retry], json: [entry.status, code, retry] };
      }
    } finally {
      services.models.describe = describe;
      services.usage.queries.csv = csv;
    }
    console.log(`status table, ${Object.keys(seen).length} codes × 3 doors: ${JSON.stringify(seen)}`);
    expect(seen).toEqual(expected);
    expect(Object.keys(seen)).toHaveLength(14);
  });
});
