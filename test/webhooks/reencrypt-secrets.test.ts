/**
 * Rotating WEBHOOK_SECRET_ENCRYPTION_KEY (issue #27 item 4), against a private
 * PostgreSQL database and the built CLI and gateway: a production gateway
 * refuses an all-zero or patterned key naming the variable; `modelgate webhooks
 * reencrypt-secrets` moves every stored secret to the new key in one
 * transaction (a secret neither key opens changes nothing), is idempotent,
 * and a gateway holding only the new key still delivers, signed with the
 * webhook's unchanged secret, while the old key no longer opens it.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import pg from 'pg';
import { ProductionGateway, productionEnv, runCli } from '../harness';
import { testEnv } from '../helpers/env';
import { SecretBox } from '../../src/webhooks/secret-box';
import { Receiver } from './receiver';

function verify(secret: string, rawBody: string, header: string): boolean {
  const parts = Object.fromEntries(header.split(',').map((p) => p.split('=', 2)));
  const expected = createHmac('sha256', secret).update(`${parts.t}.${rawBody}`).digest();
  const given = Buffer.from(parts.v1 ?? '', 'hex');
  return given.length === expected.length && timingSafeEqual(given, expected);
}

function opens(key: Buffer, ciphertext: string): string | null {
  try {
    return new SecretBox(key).decrypt(ciphertext);
  } catch {
    return null;
  }
}

describe('WEBHOOK_SECRET_ENCRYPTION_KEY: production refusal and rotation', () => {
  const dbName = `${testEnv.databaseName}_reencrypt`;
  const oldKey = randomBytes(32);
  const newKey = randomBytes(32);
  const receiver = new Receiver();
  let databaseUrl: string;
  let pool: pg.Pool;
  let env: Record<string, string>;
  let gw: ProductionGateway | undefined;

  beforeAll(async () => {
    const admin = new pg.Client({ connectionString: testEnv.adminDatabaseUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "${dbName}"`);
    await admin.query(`CREATE DATABASE "${dbName}"`);
    await admin.end();
    const url = new URL(testEnv.databaseUrl);
    url.pathname = `/${dbName}`;
    databaseUrl = url.toString();
    pool = new pg.Pool({ connectionString: databaseUrl, max: 2 });
    env = { DATABASE_URL: databaseUrl };
    await receiver.start();
  });

  afterAll(async () => {
    await gw?.kill();
    await receiver.close();
    await pool?.end();
    const admin = new pg.Client({ connectionString: testEnv.adminDatabaseUrl });
    await admin.connect();
    await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
    await admin.end();
  });

  it.each([
    ['all zeros (the old example value)', '0'.repeat(64)],
    ['a repeated pattern', '0123456789abcdef'.repeat(4)],
    ['a counting sequence', Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('hex')],
    ['too short', randomBytes(16).toString('hex')],
  ])('refuses to start in production with a key that is %s, naming the variable and not echoing it', async (_what, key) => {
    const started = await ProductionGateway.start({ ...productionEnv({ databaseUrl }), WEBHOOK_SECRET_ENCRYPTION_KEY: key }, { waitReady: false });
    const exit = await started.waitExit(60_000);
    expect(exit.code).toBe(2);
    expect(started.output).toContain('WEBHOOK_SECRET_ENCRYPTION_KEY:');
    expect(started.output).not.toContain(key);
  });

  it('re-encrypts every secret in one transaction, idempotently, and the new key alone still delivers', async () => {
    const bootstrap = await runCli(['admin', 'bootstrap', '--json'], env);
    expect(bootstrap.code).toBe(0);
    const adminKey = (JSON.parse(bootstrap.stdout) as { plaintext: string }).plaintext;
    const auth = { authorization: `Bearer ${adminKey}` };
    const hookEnv = { ...productionEnv({ databaseUrl }), WEBHOOK_ALLOW_PRIVATE_ADDRESSES: 'true', WEBHOOK_POLL_INTERVAL_MS: '100' };

    // Two webhooks created by a gateway holding the old key.
    gw = await ProductionGateway.start({ ...hookEnv, WEBHOOK_SECRET_ENCRYPTION_KEY: oldKey.toString('hex') });
    const secrets = new Map<string, string>();
    for (const path of ['/a', '/b']) {
      const r = await gw.graphql<{ createWebhook: { secret: string; webhook: { id: string } } }>(
        'mutation($input: CreateWebhookInput!) { createWebhook(input: $input) { secret webhook { id } } }',
        { input: { url: receiver.url(path), events: ['key.revoked'] } },
        auth,
      );
      expect(r.body?.errors).toBeUndefined();
      secrets.set(r.body!.data!.createWebhook.webhook.id, r.body!.data!.createWebhook.secret);
    }
    await gw.stop();
    gw = undefined;
    const ciphertexts = async () => new Map((await pool.query<{ id: string; secretCiphertext: string }>('SELECT id::text, "secretCiphertext" FROM "WebhookEndpoint"')).rows.map((r) => [r.id, r.secretCiphertext]));
    const before = await ciphertexts();
    expect(before.size).toBe(2);
    for (const [id, ct] of before) expect(opens(oldKey, ct)).toBe(secrets.get(id));

    const keysEnv = { ...env, OLD_WEBHOOK_KEY: oldKey.toString('hex'), NEW_WEBHOOK_KEY: newKey.toString('base64') };
    const rotate = ['webhooks', 'reencrypt-secrets', '--from-key-env', 'OLD_WEBHOOK_KEY', '--to-key-env', 'NEW_WEBHOOK_KEY'];

    // A weak new key is refused before anything is touched.
    const weak = await runCli(rotate, { ...keysEnv, NEW_WEBHOOK_KEY: '0'.repeat(64) });
    expect(weak.code).toBe(2);
    expect(weak.stderr).toContain('NEW_WEBHOOK_KEY: is all zeros');

    // A third endpoint under a key neither side holds: the run stops and changes nothing.
    const tenantId = (await pool.query<{ tenantId: string }>('SELECT "tenantId"::text FROM "WebhookEndpoint" LIMIT 1')).rows[0]!.tenantId;
    const stray = await pool.query<{ id: string }>(
      `INSERT INTO "WebhookEndpoint" (id, "tenantId", url, events, "secretCiphertext", "secretPrefix", "updatedAt") VALUES (gen_random_uuid(), $1, 'http://127.0.0.1:1/x', '{}', $2, 'whsec_stray', now()) RETURNING id::text`,
      [tenantId, new SecretBox(randomBytes(32)).encrypt('whsec_stray')],
    );
    const refused = await runCli(rotate, keysEnv);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(stray.rows[0]!.id);
    expect(refused.stderr).toContain('nothing was changed');
    await pool.query('DELETE FROM "WebhookEndpoint" WHERE id = $1', [stray.rows[0]!.id]);
    expect(await ciphertexts()).toEqual(before);

    const first = await runCli(rotate, keysEnv);
    expect(first.code).toBe(0);
    expect(first.stderr).toContain('re-encrypting webhook secrets: 2/2');
    expect(first.stdout).toContain('webhook secrets: 2 re-encrypted, 0 already under the new key, 2 in all');
    expect(first.stdout + first.stderr).not.toContain(oldKey.toString('hex'));
    const after = await ciphertexts();
    for (const [id, ct] of after) {
      expect(ct).not.toBe(before.get(id));
      expect(opens(newKey, ct)).toBe(secrets.get(id));
      expect(opens(oldKey, ct)).toBeNull();
    }
    const audits = await pool.query(`SELECT after FROM "AuditEvent" WHERE action = 'webhook.secrets_reencrypted'`);
    expect(audits.rows).toEqual([{ after: { reencrypted: 2, alreadyNewKey: 0, total: 2 } }]);

    const again = await runCli([...rotate, '--json'], keysEnv);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({ reencrypted: 0, alreadyNewKey: 2, total: 2 });
    expect(await ciphertexts()).toEqual(after);

    // A gateway with only the new key delivers a key.revoked event to both, signed with the unchanged secrets.
    gw = await ProductionGateway.start({ ...hookEnv, WEBHOOK_SECRET_ENCRYPTION_KEY: newKey.toString('hex') });
    const victim = await runCli(['keys', 'create', '--tenant', 'admin', '--scopes', 'inference', '--json'], env);
    expect(victim.code).toBe(0);
    const victimId = (JSON.parse(victim.stdout) as { apiKey: { id: string } }).apiKey.id;
    expect((await runCli(['keys', 'revoke', victimId], env)).code).toBe(0);
    await receiver.until('key.revoked at /a and /b', () => receiver.at('/a').length >= 1 && receiver.at('/b').length >= 1);
    for (const [id, ct] of after) {
      const path = (await pool.query<{ url: string }>('SELECT url FROM "WebhookEndpoint" WHERE id = $1', [id])).rows[0]!.url.endsWith('/a') ? '/a' : '/b';
      const got = receiver.at(path)[0]!;
      expect(got.body).toMatchObject({ type: 'key.revoked', data: { apiKeyId: victimId } });
      expect(verify(secrets.get(id)!, got.raw, String(got.headers['modelgate-signature']))).toBe(true);
      expect(opens(newKey, ct)).toBe(secrets.get(id));
    }
    expect(gw.output).not.toContain('cannot decrypt this webhook secret');
  });
});
