import { graphql, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { generateKey } from '../../src/ids/key-format';
import { STARTUP_TEST_TIMEOUT_MS } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const ME = '{ me { scopes allowedModels expiresAt tenant { name status } apiKey { prefix status } } }';

describe('authentication', () => {
  let gw: TestGateway;
  beforeAll(async () => {
    gw = await startGateway();
  });
  afterAll(async () => {
    await gw.close();
    await closeTestKeys();
  });

  it('serves health without a key but refuses me with 401 UNAUTHENTICATED', async () => {
    expect((await graphql(gw.url, '{ health { status } }')).status).toBe(200);
    const res = await graphql(gw.url, ME);
    expect(res.status).toBe(401);
    expect(res.body.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
  });

  it('accepts a key by Authorization: Bearer and by x-api-key', async () => {
    const { key, tenantId } = await createTestKey({ scopes: ['inference'], allowedModels: ['fashion-cnn'] });
    for (const headers of [authHeaders(key), { 'x-api-key': key }]) {
      const res = await graphql<{ me: { scopes: string[]; allowedModels: string[]; tenant: { status: string } } }>(gw.url, ME, {}, headers);
      expect(res.status).toBe(200);
      expect(res.body.data?.me).toMatchObject({ scopes: ['INFERENCE'], allowedModels: ['fashion-cnn'], tenant: { status: 'ACTIVE' } });
    }
    expect(tenantId).toMatch(/-/);
  });

  it('gives one message for a malformed, a mistyped and an unknown key', async () => {
    const { key } = await createTestKey({ scopes: ['inference'] });
    const mistyped = key.slice(0, 20) + (key[20] === 'a' ? 'b' : 'a') + key.slice(21);
    const unknown = generateKey('test').plaintext;
    const messages = new Set<string>();
    for (const bad of ['nonsense', mistyped, unknown]) {
      const res = await graphql(gw.url, ME, {}, authHeaders(bad));
      expect(res.status).toBe(401);
      expect(res.body.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
      messages.add(res.body.errors?.[0]?.message ?? '');
    }
    expect(messages.size).toBe(1);
  });
});
