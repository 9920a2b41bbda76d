/**
 * The second revocation path, which needs no Redis: the key service queues a
 * NOTIFY inside the transaction that revokes, rotates or changes a tenant, so
 * Postgres delivers it to every listening gateway exactly when (and only if)
 * the change commits. Each gateway listens on a dedicated `pg` connection of
 * its own (LISTEN holds a session, so it cannot share the pool) and
 * reconnects with backoff when that connection is lost.
 */
import pg from 'pg';
import type { Logger } from '../log/logger';
import { parseInvalidation, type InvalidationTarget } from './invalidation';

/** One channel per database: every gateway on this database caches keys of this database. */
export const PG_INVALIDATION_CHANNEL = 'modelgate_key_invalidation';

const RECONNECT_MIN_MS = 100;
/** Capped well under a second, so a listener is back within ~1 s of Postgres answering again. */
const RECONNECT_MAX_MS = 800;

/** What `notifyInvalidation` needs of a Prisma transaction client. */
export interface RawQueryRunner {
  $queryRawUnsafe(query: string, ...values: unknown[]): Promise<unknown>;
}

/** Queues the invalidation on the transaction; Postgres sends it at commit and drops it on rollback. */
export async function notifyInvalidation(tx: RawQueryRunner, target: InvalidationTarget): Promise<void> {
  // ::text because pg_notify returns void, which the driver adapter cannot read.
  await tx.$queryRawUnsafe('SELECT pg_notify($1, $2)::text', PG_INVALIDATION_CHANNEL, JSON.stringify(target));
}

export interface PgListenerHandlers {
  message(target: InvalidationTarget): void;
  /** Called on every change: true once LISTEN is in place, false when the connection is lost. */
  state(up: boolean): void;
}

export class PgInvalidationListener {
  up = false;
  lastError: string | undefined;
  private client: pg.Client | undefined;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private delay = RECONNECT_MIN_MS;

  constructor(
    private readonly url: string,
    private readonly log: Logger,
    private readonly handlers: PgListenerHandlers,
  ) {}

  start(): void {
    if (this.client || this.closed) return;
    void this.connect();
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    const client = this.client;
    this.client = undefined;
    this.setUp(false);
    await client?.end().catch(() => undefined);
  }

  private async connect(): Promise<void> {
    if (this.closed) return;
    const client = new pg.Client({ connectionString: this.url, keepAlive: true, connectionTimeoutMillis: 2000, application_name: 'modelgate-key-invalidation' });
    this.client = client;
    client.on('error', (error: Error) => this.lost(client, error.message));
    client.on('end', () => this.lost(client, 'connection ended'));
    client.on('notification', (msg) => {
      if (msg.channel !== PG_INVALIDATION_CHANNEL || !msg.payload) return;
      const target = parseInvalidation(msg.payload);
      if (target) this.handlers.message(target);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${PG_INVALIDATION_CHANNEL}`);
    } catch (error) {
      this.lost(client, error instanceof Error ? error.message : String(error));
      return;
    }
    if (this.client !== client) return;
    this.delay = RECONNECT_MIN_MS;
    this.lastError = undefined;
    this.setUp(true);
  }

  private lost(client: pg.Client, reason: string): void {
    if (this.client !== client) return;
    this.client = undefined;
    // A client that already failed may still emit 'error'; without a listener that would kill the process.
    client.on('error', () => undefined);
    void client.end().catch(() => undefined);
    this.lastError = reason;
    if (this.up) this.log.warn({ reason }, 'key invalidation listener (Postgres NOTIFY) lost; reconnecting');
    this.setUp(false);
    if (this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, this.delay);
    this.timer.unref();
    this.delay = Math.min(this.delay * 2, RECONNECT_MAX_MS);
  }

  private setUp(up: boolean): void {
    if (up === this.up) return;
    this.up = up;
    if (up) this.log.info('key invalidation listener (Postgres NOTIFY) listening');
    this.handlers.state(up);
  }
}
