/** A key with a wrong checksum is refused before any database lookup. */
import { freePort, graphql, startGateway, type TestGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { generateKey } from '../../src/ids/key-format';
import { STARTUP_TEST_TIMEOUT_MS } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const ME = '{ me { apiKey { id } } }';

function breakChecksum(key: string): string {
  const last = key[key.length - 1];
  return key.slice(0, -1) + (last === 'A' ? 'B' : 'A');
}

async function lookups(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return [...text.matchAll(/^modelgate_auth_key_lookups_total\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
}

afterAll(() => closeTestKeys());

describe('wrong checksum', () => {
  it('is refused with UNAUTHENTICATED while the database is unreachable, where a well-formed unknown key cannot be judged', async () => {
    const dead = await freePort();
    const gw = await startGateway({ DATABASE_URL: `postgresql://postgres@127.0.0.1:${dead}/nothing`, DATABASE_CONNECT_RETRY_MAX_MS: '500' }, { waitReady: false });
    try {
      const wellFormed = generateKey('live').plaintext;
      const bad = await graphql(gw.url, ME, {}, authHeaders(breakChecksum(wellFormed)));
      expect(bad.status).toBe(401);
      expect(bad.body.errors?.[0]?.extensions?.['code']).toBe('UNAUTHENTICATED');
      // The same key with its checksum intact needs the database, which is down: UNAVAILABLE (503), not a 401, and no database text.
      const needsDb = await graphql(gw.url, ME, {}, authHeaders(wellFormed));
      expect(needsDb.status).toBe(503);
      expect(needsDb.body.errors?.[0]?.extensions?.['code']).toBe('UNAVAILABLE');
      expect(JSON.stringify(needsDb.body)).not.toMatch(/ECONNREFUSED|127\.0\.0\.1|postgres|database/i);
    } finally {
      await gw.close();
    }
  });

  it('adds no lookup to the key-lookup counter on a live gateway, where an unknown well-formed key adds one', async () => {
    let gw: TestGateway | undefined;
    try {
      gw = await startGateway();
      const { key } = await createTestKey({ scopes: ['inference'] });
      const before = await lookups(gw.url);
      for (let i = 0; i < 3; i += 1) expect((await graphql(gw.url, ME, {}, authHeaders(breakChecksum(key)))).status).toBe(401);
      expect(await lookups(gw.url)).toBe(before);
      expect((await graphql(gw.url, ME, {}, authHeaders(generateKey('test').plaintext))).status).toBe(401);
      expect(await lookups(gw.url)).toBe(before + 1);
    } finally {
      await gw?.close();
    }
  });
});
