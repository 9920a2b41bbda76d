/**
 * The database connection, in one of two modes:
 * - postgres: DATABASE_URL set; a pg pool behind Prisma's driver adapter.
 * - embedded: no DATABASE_URL; PGlite (Postgres compiled to WebAssembly),
 *   file-backed under DATA_DIR, so `npm start` works with nothing installed.
 * Both apply the same migrations at start. While the database cannot be
 * reached the gateway keeps running, retries with backoff, reports why in
 * /readyz and logs each failure — no silent crash loop.
 */
import { mkdir } from 'node:fs/promises';
import pg from 'pg';
import { PrismaPg } from '@prisma/adapter-pg';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import { PrismaClient } from './generated/client';
import { applyMigrations, type MigrationTarget } from './migrate';
import type { Config } from '../config';
import type { Logger } from '../log/logger';
import { UnavailableError } from '../errors';

export type { PrismaClient } from './generated/client';
export type DatabaseState = 'starting' | 'up' | 'down';

/** UNAVAILABLE (503) for the client; the driver's reason (hosts, Prisma codes) stays in `reason` for logs and /readyz. */
export class DatabaseUnavailableError extends UnavailableError {
  constructor(readonly reason: string) {
    super();
  }
}

export class Database {
  state: DatabaseState = 'starting';
  lastError: string | undefined;
  readonly mode: 'postgres' | 'embedded';
  private client: PrismaClient | undefined;
  private pool: pg.Pool | undefined;
  private pglite: PGlite | undefined;
  private closed = false;
  private healthTimer: NodeJS.Timeout | undefined;
  private readyWaiters: (() => void)[] = [];

  constructor(
    private readonly config: Pick<Config, 'database' | 'databaseConnectRetryMaxMs' | 'migrateOnStart'>,
    private readonly log: Logger,
  ) {
    this.mode = config.database.mode;
  }

  /** The Prisma client; throws a 503-coded error while the database is unavailable. */
  get prisma(): PrismaClient {
    if (!this.client || this.state !== 'up') throw new DatabaseUnavailableError(this.lastError ?? 'starting');
    return this.client;
  }

  /** Resolves once connected and migrated (or rejects if closed first). */
  whenReady(): Promise<void> {
    if (this.state === 'up') return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /**
   * Connects and migrates, retrying with capped exponential backoff until it
   * succeeds or close() is called. Never throws for connection problems.
   */
  async start(): Promise<void> {
    let delay = 250;
    for (let attempt = 1; !this.closed; attempt += 1) {
      try {
        await this.connectOnce();
        this.state = 'up';
        this.lastError = undefined;
        this.log.info({ mode: this.mode, attempt }, 'database ready');
        this.readyWaiters.splice(0).forEach((w) => w());
        this.startHealthChecks();
        return;
      } catch (error) {
        await this.disposeConnections();
        this.state = 'down';
        this.lastError = describeDbError(error);
        this.log.error({ mode: this.mode, attempt, retryInMs: delay, reason: this.lastError }, 'database unavailable, retrying');
        await sleep(delay);
        delay = Math.min(delay * 2, this.config.databaseConnectRetryMaxMs);
      }
    }
  }

  private async connectOnce(): Promise<void> {
    const db = this.config.database;
    let target: MigrationTarget;
    if (db.mode === 'postgres') {
      this.pool = new pg.Pool({ connectionString: db.url, max: db.poolSize, connectionTimeoutMillis: 5000 });
      // An idle client that loses its connection emits 'error' on the pool; without a listener that kills the process.
      this.pool.on('error', (err) => this.log.warn({ reason: err.message }, 'database connection error'));
      await this.pool.query('SELECT 1');
      this.client = new PrismaClient({ adapter: new PrismaPg(this.pool) });
      target = { kind: 'postgres', url: db.url };
    } else {
      await mkdir(db.dataDir, { recursive: true });
      this.pglite = new PGlite(db.dataDir);
      await this.pglite.waitReady;
      this.client = new PrismaClient({ adapter: new PrismaPGlite(this.pglite) });
      target = { kind: 'pglite', db: this.pglite };
    }
    if (this.config.migrateOnStart) {
      const applied = await applyMigrations(target);
      if (applied.length > 0) this.log.info({ applied }, 'migrations applied');
    }
  }

  private startHealthChecks(): void {
    this.healthTimer = setInterval(() => void this.ping(), 5000);
    this.healthTimer.unref();
  }

  /** Cheap liveness query; flips the state and logs on each transition. */
  async ping(): Promise<boolean> {
    if (!this.client) return false;
    try {
      await this.client.$queryRawUnsafe('SELECT 1');
      if (this.state !== 'up') this.log.info('database reachable again');
      this.state = 'up';
      this.lastError = undefined;
      return true;
    } catch (error) {
      if (this.state === 'up') this.log.error({ reason: describeDbError(error) }, 'database became unreachable');
      this.state = 'down';
      this.lastError = describeDbError(error);
      return false;
    }
  }

  private async disposeConnections(): Promise<void> {
    const client = this.client;
    const pool = this.pool;
    const pglite = this.pglite;
    this.client = undefined;
    this.pool = undefined;
    this.pglite = undefined;
    await client?.$disconnect().catch(() => undefined);
    await pool?.end().catch(() => undefined);
    await pglite?.close().catch(() => undefined);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    await this.disposeConnections();
    this.state = 'down';
    this.lastError = 'closed';
  }
}

function describeDbError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: string }).code;
    return code ? `${code}: ${error.message}` : error.message;
  }
  return String(error);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}
