/**
 * API keys for tests, created straight in the run's Postgres database
 * (TEST_DATABASE_URL) through the real KeyService, so tests of any domain can
 * call the gateway as a tenant with given scopes, models and limits.
 */
import { randomBytes } from 'node:crypto';
import { Database } from '../../src/db/database';
import { createLogger } from '../../src/log/logger';
import { KeyService, type Caller } from '../../src/keys/key.service';
import type { Scope } from '../../src/auth/principal';
import { testEnv } from './env';

export interface TestKeyOptions {
  /** Reused when it exists (so several keys can share a tenant); default: a fresh random tenant. */
  tenantName?: string;
  scopes: Scope[];
  allowedModels?: string[];
  tenantLimits?: { requestsPerMinute?: number | null; computeUnitsPerMinute?: number | null; monthlyComputeUnitQuota?: number | null };
  keyLimits?: { requestsPerMinute?: number | null; computeUnitsPerMinute?: number | null };
  expiresAt?: Date;
  name?: string;
}

export interface TestKey {
  key: string;
  apiKeyId: string;
  tenantId: string;
}

const CLI_CALLER: Caller = { principal: null, actor: 'test' };
let shared: { db: Database; keys: KeyService } | undefined;

/** The KeyService the helpers use (one pg pool per test file); invalidations are not broadcast. */
export async function testKeyService(): Promise<{ db: Database; keys: KeyService }> {
  if (!shared) {
    const log = createLogger({ level: 'silent', pretty: false });
    const db = new Database(
      { database: { mode: 'postgres', url: testEnv.databaseUrl, poolSize: 2 }, databaseConnectRetryMaxMs: 1000, migrateOnStart: false },
      log,
    );
    await db.start();
    shared = { db, keys: new KeyService(db, { invalidate: async () => undefined }, log, 'test') };
  }
  return shared;
}

export async function createTestKey(opts: TestKeyOptions): Promise<TestKey> {
  const { db, keys } = await testKeyService();
  const name = opts.tenantName ?? `tenant-${randomBytes(5).toString('hex')}`;
  let tenant = await db.prisma.tenant.findUnique({ where: { name } });
  if (!tenant) {
    tenant = await keys.createTenant(CLI_CALLER, { name, ...(opts.tenantLimits ?? {}) });
  } else if (opts.tenantLimits) {
    tenant = await keys.updateTenant(CLI_CALLER, tenant.id, opts.tenantLimits);
  }
  const created = await keys.createApiKey(CLI_CALLER, {
    tenant: tenant.id,
    name: opts.name ?? 'test key',
    scopes: opts.scopes,
    allowedModels: opts.allowedModels ?? [],
    expiresAt: opts.expiresAt ?? null,
    ...(opts.keyLimits ?? {}),
  });
  return { key: created.plaintext, apiKeyId: created.apiKey.id, tenantId: tenant.id };
}

export function authHeaders(key: string): Record<string, string> {
  return { authorization: `Bearer ${key}` };
}

/** Closes the helpers' database pool (call in afterAll when the file used createTestKey). */
export async function closeTestKeys(): Promise<void> {
  const s = shared;
  shared = undefined;
  await s?.db.close();
}
