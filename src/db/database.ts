/**
 * The database connection, in one of two modes:
 * - postgres: DATABASE_URL set; a pg pool behind Prisma's driver adapter.
 * - embedded: no DATABASE_URL; PGlite (Postgres compiled to WebAssembly),
 *   file-backed under DATA_DIR, so `npm start` works with nothing installed.
 * Both apply the same migrations at start. While the database cannot be
 * reached the gateway keeps running, retries with backoff, reports why in
 * /readyz and logs each failure — no silent crash loop.
 *
 * After the first connection the state follows the connections themselves:
 * a pooled connection lost, or a query failing for the connection's sake
 * (`noteFailure`), marks it down at once; a new connection established
 * marks it up at once (the next query that gets through is the signal), and
 * while down a probe runs every RECOVERY_PROBE_MS so recovery is seen within
 * it even without traffic. While down, `prisma` refuses at once with
 * UNAVAILABLE; callers with an answer of their own for a failure (the key
 * cache, the quota rebuild) use `prismaEvenIfDown` and keep trying.
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
import { UnavailableError, isDependencyUnavailable } from '../errors';

export type { PrismaClient } from './generated/client';
export type DatabaseState = 'starting' | 'up' | 'down';

/** What clients see while the database is unreachable: UNAVAILABLE (503); the reason stays in the logs and /readyz. */
export class DatabaseUnavailableError extends UnavailableError {
  constructor(readonly reason: string) {
    super();
  }
}

/** While down, how often a probe checks whether the database answers again (well under the 1 s recovery target). */
export const RECOVERY_PROBE_MS = 250;
const HEALTH_CHECK_MS = 5000;

export class Database {
  state: DatabaseState = 'starting';
  lastError: string | undefined;
  readonly mode: 'postgres' | 'embedded';
  private client: PrismaClient | undefined;
  private pool: pg.Pool | undefined;
  private pglite: PGlite | undefined;
  private closed = false;
  private healthTimer: NodeJS.Timeout | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  private probing = false;
  private readyWaiters: (() => void)[] = [];
  /** When the current outage began (Date.now()), or null while up. */
  downSince: number | null = null;
  /** Whether the database was ever up in this process (an outage, not a first connection). */
  everUp = false;

  constructor(
    private readonly config: Pick<Config, 'database' | 'databaseConnectRetryMaxMs' | 'migrateOnStart'>,
    private readonly log: Logger,
  ) {
    this.mode = config.database.mode;
  }

  /** The Prisma client; throws UNAVAILABLE (503, no database text) while the database is unavailable. */
  get prisma(): PrismaClient {
    if (!this.client || this.state !== 'up') throw new DatabaseUnavailableError(this.lastError ?? 'starting');
    return this.client;
  }

  /**
   * The client while down too (not before the first connection, nor after
   * close), for callers that have an answer of their own when a query fails;
   * the first of their queries that gets through is how recovery is noticed.
   */
  get prismaEvenIfDown(): PrismaClient {
    if (!this.client || (this.state !== 'up' && !this.everUp)) throw new DatabaseUnavailableError(this.lastError ?? 'starting');
    return this.client;
  }

  /** A caller's query failed: when the cause is the connection, the database counts as down from now. */
  noteFailure(error: unknown): void {
    if (this.closed || !this.everUp || !isDependencyUnavailable(error)) return; // the one classifier (errors/): what answers 503 also marks the database down
    this.markDown(error);
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
        this.everUp = true;
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
      this.pool.on('error', (err) => {
        this.log.warn({ reason: err.message }, 'database connection error');
        this.noteFailure(err);
      });
      // A new physical connection means the server accepts again: recovery is seen on the next query that gets through.
      this.pool.on('connect', () => {
        if (this.everUp && this.state === 'down' && !this.closed) this.markUp();
      });
      await this.pool.query('SELECT 1');
      this.client = new PrismaClient({ adapter: new PrismaPg(this.pool) });
      // Migrations take a session advisory lock: through a transaction pooler they need the direct connection.
      target = { kind: 'postgres', url: db.directUrl ?? db.url };
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
    this.healthTimer = setInterval(() => void this.ping(), HEALTH_CHECK_MS);
    this.healthTimer.unref();
  }

  /** Cheap liveness query; flips the state and logs on each transition. */
  async ping(): Promise<boolean> {
    if (!this.client) return false;
    try {
      await this.client.$queryRawUnsafe('SELECT 1');
      this.markUp();
      return true;
    } catch (error) {
      this.markDown(error);
      return false;
    }
  }

  private markDown(error: unknown): void {
    this.lastError = describeDbError(error);
    if (this.state === 'up') {
      this.log.error({ reason: this.lastError }, 'database became unreachable');
      this.downSince = Date.now();
      this.state = 'down';
    }
    this.scheduleProbe();
  }

  private markUp(): void {
    if (this.state === 'up') return;
    const downMs = this.downSince === null ? undefined : Date.now() - this.downSince;
    this.log.info({ downMs }, 'database reachable again');
    this.lastError = undefined;
    this.downSince = null;
    this.state = 'up';
  }

  /** While down: probe every RECOVERY_PROBE_MS until a probe (or any other query) gets through. */
  private scheduleProbe(): void {
    if (this.probeTimer || this.closed) return;
    this.probeTimer = setTimeout(() => {
      this.probeTimer = undefined;
      if (this.closed || this.state === 'up' || this.probing) return;
      this.probing = true;
      void this.ping().finally(() => {
        this.probing = false;
        if (this.state !== 'up') this.scheduleProbe();
      });
    }, RECOVERY_PROBE_MS);
    this.probeTimer.unref();
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
    if (this.probeTimer) clearTimeout(this.probeTimer);
    await this.disposeConnections();
    this.everUp = false;
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
