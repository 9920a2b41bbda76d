/**
 * Offline migrations through Prisma's WebAssembly schema engine.
 *
 * The native schema engine that `prisma migrate` wants is downloaded at run
 * time and this machine (and CI) is offline, so we drive the same engine
 * compiled to WebAssembly (`@prisma/schema-engine-wasm`) through a driver
 * adapter. Migrations stay in Prisma's own folder format, so
 * `prisma migrate deploy` works too wherever the native engine is available.
 * One code path serves both PostgreSQL (adapter-pg) and embedded PGlite.
 */
import { readFile, readdir, mkdir, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { bindMigrationAwareSqlAdapterFactory } from '@prisma/driver-adapter-utils';
import type { SqlMigrationAwareDriverAdapterFactory } from '@prisma/driver-adapter-utils';
import { PrismaPg } from '@prisma/adapter-pg';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import pg from 'pg';

/** Where migrations go: a PostgreSQL server by URL, or an open PGlite database. */
export type MigrationTarget = { kind: 'postgres'; url: string } | { kind: 'pglite'; db: PGlite };

export const PRISMA_DIR = path.resolve(__dirname, '..', '..', 'prisma');
export const SCHEMA_PATH = path.join(PRISMA_DIR, 'schema.prisma');
export const MIGRATIONS_DIR = path.join(PRISMA_DIR, 'migrations');

const FILTERS = { externalTables: [] as string[], externalEnums: [] as string[] };

/** The subset of the wasm engine's API we use (its own .d.ts is ESM-only). */
interface SchemaEngineApi {
  applyMigrations(input: unknown): Promise<{ appliedMigrationNames: string[] }>;
  diff(input: unknown): Promise<{ exitCode: number; stdout: string | null }>;
  schemaPush(input: unknown): Promise<{ executedSteps: number; unexecutable: string[]; warnings: string[] }>;
  free(): void;
}
interface SchemaEngineModule {
  SchemaEngine: { new: (opts: unknown, log: (msg: string) => void, adapter: object) => Promise<SchemaEngineApi> };
  __wbg_set_wasm(exports: Record<string, unknown>): void;
}

/** The slice of the WebAssembly global we need (lib.dom is not in our tsconfig). */
interface WasmGlobal {
  instantiate(
    bytes: Uint8Array,
    imports: Record<string, Record<string, unknown>>,
  ): Promise<{ instance: { exports: Record<string, unknown> } }>;
}
const wasmGlobal = (globalThis as unknown as { WebAssembly: WasmGlobal }).WebAssembly;

let enginePromise: Promise<SchemaEngineModule> | undefined;

/**
 * Loads the engine without `--experimental-wasm-modules`: we import the
 * wasm-bindgen glue (plain ESM) and instantiate the .wasm ourselves.
 */
function loadEngineModule(): Promise<SchemaEngineModule> {
  enginePromise ??= (async () => {
    const pkgDir = path.dirname(require.resolve('@prisma/schema-engine-wasm'));
    const glue = (await import(
      pathToFileURL(path.join(pkgDir, 'schema_engine_bg.js')).href
    )) as SchemaEngineModule & Record<string, unknown>;
    const bytes = await readFile(path.join(pkgDir, 'schema_engine_bg.wasm'));
    const { instance } = await wasmGlobal.instantiate(bytes, { './schema_engine_bg.js': glue });
    glue.__wbg_set_wasm(instance.exports);
    const start = instance.exports['__wbindgen_start'];
    if (typeof start === 'function') (start as () => void)();
    return glue;
  })();
  return enginePromise;
}

async function withEngine<T>(
  target: MigrationTarget,
  schemaText: string,
  fn: (engine: SchemaEngineApi) => Promise<T>,
): Promise<T> {
  // We own the pool so we can close it: a connection left open keeps holding
  // the engine's advisory lock and the next run waits out its 10 s timeout.
  const pool = target.kind === 'postgres' ? new pg.Pool({ connectionString: target.url, max: 2 }) : undefined;
  const adapterFactory: SqlMigrationAwareDriverAdapterFactory =
    target.kind === 'postgres' ? new PrismaPg(pool!) : new PrismaPGlite(target.db);
  try {
    return await runEngine(adapterFactory, schemaText, fn);
  } finally {
    await pool?.end();
  }
}

async function runEngine<T>(
  adapterFactory: SqlMigrationAwareDriverAdapterFactory,
  schemaText: string,
  fn: (engine: SchemaEngineApi) => Promise<T>,
): Promise<T> {
  const mod = await loadEngineModule();
  const engineLog: string[] = [];
  const engine = await mod.SchemaEngine.new(
    { datamodels: [[SCHEMA_PATH, schemaText]] },
    (msg: string) => engineLog.push(msg),
    bindMigrationAwareSqlAdapterFactory(adapterFactory),
  );
  try {
    return await fn(engine);
  } finally {
    engine.free();
  }
}

export interface MigrationDirectoryEntry {
  name: string;
  sql: string;
}

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<MigrationDirectoryEntry[]> {
  if (!existsSync(dir)) return [];
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();
  const out: MigrationDirectoryEntry[] = [];
  for (const name of names) {
    const file = path.join(dir, name, 'migration.sql');
    if (!existsSync(file)) continue;
    out.push({ name, sql: await readFile(file, 'utf8') });
  }
  return out;
}

async function migrationsList(dir = MIGRATIONS_DIR) {
  const lockPath = path.join(dir, 'migration_lock.toml');
  const migrations = await readMigrations(dir);
  return {
    baseDir: dir,
    lockfile: { path: lockPath, content: existsSync(lockPath) ? await readFile(lockPath, 'utf8') : null },
    shadowDbInitScript: '',
    migrationDirectories: migrations.map((m) => ({
      // The engine records this string as the migration's name, so it must be
      // the bare directory name, as `prisma migrate deploy` records it.
      path: m.name,
      migrationFile: { path: 'migration.sql', content: { tag: 'ok', value: m.sql } },
    })),
  };
}

/** Applies every pending migration; returns the names it applied (none on a second run). */
export async function applyMigrations(
  target: MigrationTarget,
  dir = MIGRATIONS_DIR,
): Promise<string[]> {
  const schemaText = await readFile(SCHEMA_PATH, 'utf8');
  return withEngine(target, schemaText, async (engine) => {
    const out = await engine.applyMigrations({ migrationsList: await migrationsList(dir), filters: FILTERS });
    return out.appliedMigrationNames;
  });
}

/**
 * SQL that takes a database built by the existing migrations to the current
 * schema.prisma ('' when they agree). The engine replays the migrations into a
 * shadow database, which is always a throwaway in-memory PGlite: it needs no
 * server, and adapter-pg's catalogue reader cannot describe a live schema.
 */
export async function diffMigrationsToSchema(dir = MIGRATIONS_DIR): Promise<string> {
  const schemaText = await readFile(SCHEMA_PATH, 'utf8');
  const shadow = new PGlite();
  try {
    return await withEngine({ kind: 'pglite', db: shadow }, schemaText, async (engine) => {
      const result = await engine.diff({
        from: { tag: 'migrations', ...(await migrationsList(dir)) },
        to: { tag: 'schemaDatamodel', files: [{ path: SCHEMA_PATH, content: schemaText }] },
        script: true,
        shadowDatabaseUrl: null,
        exitCode: null,
        filters: FILTERS,
      });
      return normalizeDiff(result.stdout ?? '');
    });
  } finally {
    await shadow.close();
  }
}

/**
 * Number of steps schema.prisma needs beyond what a database already has.
 * It works by pushing the schema, so only call it on a throwaway database
 * (tests use it to prove migrations and schema agree). PGlite targets only.
 */
export async function schemaDriftSteps(target: MigrationTarget & { kind: 'pglite' }): Promise<number> {
  const schemaText = await readFile(SCHEMA_PATH, 'utf8');
  return withEngine(target, schemaText, async (engine) => {
    const out = await engine.schemaPush({
      schema: { files: [{ path: SCHEMA_PATH, content: schemaText }] },
      force: false,
      filters: FILTERS,
    });
    return out.executedSteps + out.unexecutable.length;
  });
}

function normalizeDiff(sql: string): string {
  const trimmed = sql.trim();
  return trimmed === '-- This is an empty migration.' ? '' : trimmed;
}

/** Writes prisma/migrations/<timestamp>_<name>/migration.sql; returns its path or null when nothing changed. */
export async function createMigration(
  name: string,
  dir = MIGRATIONS_DIR,
): Promise<string | null> {
  await mkdir(dir, { recursive: true });
  const lockPath = path.join(dir, 'migration_lock.toml');
  if (!existsSync(lockPath)) {
    // Prisma's own lock file: tells the engine (and `prisma migrate`) the connector.
    await writeFile(
      lockPath,
      '# Please do not edit this file manually\n# It should be added in your version-control system (e.g., Git)\nprovider = "postgresql"\n',
    );
  }
  const sql = await diffMigrationsToSchema(dir);
  if (sql === '') return null;
  const stamp = new Date().toISOString().replace(/[-:TZ.]/g, '').slice(0, 14);
  const safeName = name.replace(/[^a-zA-Z0-9_]/g, '_').toLowerCase();
  const migrationDir = path.join(dir, `${stamp}_${safeName}`);
  await mkdir(migrationDir, { recursive: true });
  await writeFile(path.join(migrationDir, 'migration.sql'), sql + '\n');
  return migrationDir;
}
