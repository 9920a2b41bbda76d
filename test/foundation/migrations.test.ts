import pg from 'pg';
import { PGlite } from '@electric-sql/pglite';
import { applyMigrations, diffMigrationsToSchema, readMigrations, schemaDriftSteps } from '../../src/db/migrate';
import { testEnv } from '../helpers/env';

async function freshDatabase(suffix: string): Promise<string> {
  const name = `${testEnv.databaseName}_${suffix}`;
  const admin = new pg.Client({ connectionString: testEnv.adminDatabaseUrl });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.query(`CREATE DATABASE "${name}"`);
  await admin.end();
  const url = new URL(testEnv.adminDatabaseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

describe('migrations', () => {
  it('apply to an empty PostgreSQL database, and a second apply is a no-op', async () => {
    const url = await freshDatabase('migrate');
    const migrations = await readMigrations();
    expect(migrations.length).toBeGreaterThan(0);

    const first = await applyMigrations({ kind: 'postgres', url });
    expect(first).toEqual(migrations.map((m) => m.name));
    const second = await applyMigrations({ kind: 'postgres', url });
    expect(second).toEqual([]);

    const client = new pg.Client({ connectionString: url });
    await client.connect();
    const recorded = await client.query<{ migration_name: string }>(
      'SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL ORDER BY migration_name',
    );
    const tables = await client.query<{ tablename: string }>("SELECT tablename FROM pg_tables WHERE schemaname = 'public'");
    await client.end();
    // Recorded exactly as `prisma migrate deploy` records them: bare directory names.
    expect(recorded.rows.map((r) => r.migration_name)).toEqual(migrations.map((m) => m.name));
    expect(tables.rows.map((r) => r.tablename)).toEqual(expect.arrayContaining(['Tenant', 'ApiKey', 'UsageRecord', 'AuditEvent']));
  });

  it('leave no difference between the migrated database and schema.prisma', async () => {
    expect(await diffMigrationsToSchema()).toBe('');
    const db = new PGlite();
    try {
      await applyMigrations({ kind: 'pglite', db });
      expect(await schemaDriftSteps({ kind: 'pglite', db })).toBe(0);
    } finally {
      await db.close();
    }
    // A liveness guard, not a speed bound: the WebAssembly schema engine diffing and PGlite applying
    // every migration took 88 s on a loaded 2-core machine (load ~15), past the 60 s default.
  }, 300_000);
});
