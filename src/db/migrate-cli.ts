/**
 * `npm run db:migrate` applies pending migrations to DATABASE_URL (or the
 * embedded database); `npm run db:migration:new -- <name>` writes the next
 * migration from prisma/schema.prisma. Both run offline.
 */
import { Command } from 'commander';
import { mkdir } from 'node:fs/promises';
import { PGlite } from '@electric-sql/pglite';
import { loadConfig, ConfigError } from '../config';
import { DataDirLock } from './data-dir-lock';
import { applyMigrations, createMigration, diffMigrationsToSchema, readMigrations } from './migrate';

async function deploy(): Promise<void> {
  const config = loadConfig();
  const migrations = await readMigrations();
  const where = config.database.mode === 'postgres' ? 'PostgreSQL (DATABASE_URL)' : `embedded database at ${config.database.dataDir}`;
  console.log(`Applying ${migrations.length} migration(s) from prisma/migrations to ${where}…`);
  const started = Date.now();
  let applied: string[];
  if (config.database.mode === 'postgres') {
    applied = await applyMigrations({ kind: 'postgres', url: config.database.directUrl ?? config.database.url });
  } else {
    const lock = await DataDirLock.acquire(DataDirLock.dirFor(config.database.dataDir), 'migrate');
    try {
      await mkdir(config.database.dataDir, { recursive: true });
      const db = new PGlite(config.database.dataDir);
      try {
        applied = await applyMigrations({ kind: 'pglite', db });
      } finally {
        await db.close();
      }
    } finally {
      await lock.release();
    }
  }
  for (const name of applied) console.log(`  applied ${name}`);
  console.log(
    applied.length === 0
      ? `Database is up to date (${migrations.length} migration(s) already applied) in ${Date.now() - started} ms.`
      : `Applied ${applied.length} migration(s) in ${Date.now() - started} ms.`,
  );
}

async function create(name: string): Promise<void> {
  console.log('Diffing prisma/migrations against prisma/schema.prisma (in-memory shadow database)…');
  const dir = await createMigration(name);
  console.log(dir ? `Wrote ${dir}/migration.sql` : 'No changes: schema.prisma matches the migrations.');
}

async function check(): Promise<void> {
  const sql = await diffMigrationsToSchema();
  if (sql) {
    console.error('schema.prisma has changes that no migration covers:\n' + sql);
    process.exit(1);
  }
  console.log('Migrations and schema.prisma agree.');
}

const program = new Command('db')
  .description('modelgate database migrations (offline, via Prisma’s WebAssembly schema engine)')
  .showHelpAfterError();
program.command('deploy', { isDefault: true }).description('apply pending migrations').action(deploy);
program.command('new <name>').description('write the next migration from schema.prisma').action(create);
program.command('check').description('fail when schema.prisma and the migrations disagree').action(check);

program
  .parseAsync()
  // The wasm engine keeps handles open; exit explicitly once done.
  .then(() => process.exit(0))
  .catch((error: unknown) => {
    console.error(error instanceof ConfigError ? error.message : error instanceof Error ? error.message : error);
    process.exit(1);
  });
