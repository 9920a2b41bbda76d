/**
 * Integration tests use the machine's real PostgreSQL and Redis: a fresh
 * database per run (dropped after) and a Redis key prefix per run (deleted
 * after). Migrations are applied once here, exactly as `npm start` does.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { applyMigrations } from '../../src/db/migrate';

export const ADMIN_DATABASE_URL = process.env['TEST_ADMIN_DATABASE_URL'] ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
export const TEST_REDIS_URL = process.env['TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379/0';

export default async function globalSetup(): Promise<void> {
  const runId = `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`;
  const dbName = `modelgate_test_${runId}`;
  const admin = new pg.Client({ connectionString: ADMIN_DATABASE_URL });
  await admin.connect().catch((error: unknown) => {
    throw new Error(`Tests need PostgreSQL at ${ADMIN_DATABASE_URL} (set TEST_ADMIN_DATABASE_URL): ${String(error)}`);
  });
  await admin.query(`CREATE DATABASE "${dbName}"`);
  await admin.end();
  const url = new URL(ADMIN_DATABASE_URL);
  url.pathname = `/${dbName}`;
  process.env['TEST_DATABASE_NAME'] = dbName;
  process.env['TEST_DATABASE_URL'] = url.toString();
  process.env['TEST_REDIS_URL'] = TEST_REDIS_URL;
  process.env['TEST_REDIS_PREFIX'] = `mgtest:${runId}:`;
  await applyMigrations({ kind: 'postgres', url: url.toString() });
}
