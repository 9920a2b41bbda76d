/**
 * A LISTEN on one Postgres NOTIFY channel, on a dedicated connection (LISTEN
 * holds a session, so it cannot share the pool), reconnecting with backoff
 * when that connection is lost. The key invalidations (src/auth) and the
 * model catalog's announcements (issue #23) each listen through one.
 */
import pg from 'pg';
import type { Logger } from '../log/logger';

const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 800;

/** Queues a NOTIFY on a transaction: Postgres sends it at commit and drops it on rollback. */
export async function notifyChannel(tx: { $queryRawUnsafe(query: string, ...values: unknown[]): Promise<unknown> }, channel: string, payload: string): Promise<void> {
  // ::text because pg_notify returns void, which the driver adapter cannot read.
  await tx.$queryRawUnsafe('SELECT pg_notify($1, $2)::text', channel, payload);
}

export interface PgChannelHandlers {
  message(payload: string): void;
  /** true once LISTEN is in place (also after a reconnect: a caller may have missed messages), false when lost. */
  state(up: boolean): void;
}

export interface PgChannelOptions {
  /** How log lines name the listener, and the connection's application_name (default: the channel). */
  name?: string;
  applicationName?: string;
}

export class PgChannelListener {
  up = false;
  /** Why the connection was last lost; cleared once LISTEN is in place again. */
  lastError: string | undefined;
  private client: pg.Client | undefined;
  private closed = false;
  private timer: NodeJS.Timeout | undefined;
  private delay = RECONNECT_MIN_MS;

  constructor(
    private readonly url: string,
    private readonly channel: string,
    private readonly log: Logger,
    private readonly handlers: PgChannelHandlers,
    private readonly options: PgChannelOptions = {},
  ) {
    if (!/^[a-z_][a-z0-9_]*$/.test(channel)) throw new Error(`bad channel name ${channel}`);
  }

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
    const client = new pg.Client({ connectionString: this.url, keepAlive: true, connectionTimeoutMillis: 2000, application_name: this.options.applicationName ?? `modelgate-${this.channel}` });
    this.client = client;
    client.on('error', (error: Error) => this.lost(client, error.message));
    client.on('end', () => this.lost(client, 'connection ended'));
    client.on('notification', (msg) => {
      if (msg.channel === this.channel && msg.payload) this.handlers.message(msg.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${this.channel}`);
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
    if (this.up) this.log.warn({ reason, channel: this.channel }, `${this.options.name ?? 'Postgres NOTIFY listener'} lost; reconnecting`);
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
    this.handlers.state(up);
  }
}
