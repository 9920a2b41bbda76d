/**
 * The second revocation path, which needs no Redis: the key service queues a
 * NOTIFY inside the transaction that revokes, rotates or changes a tenant, so
 * Postgres delivers it to every listening gateway exactly when (and only if)
 * the change commits. Each gateway listens on a dedicated `pg` connection of
 * its own (db/pg-channel: LISTEN holds a session, so it cannot share the
 * pool), reconnecting with backoff (capped well under a second, so a listener
 * is back within ~1 s of Postgres answering again) when it is lost.
 */
import { PgChannelListener, notifyChannel } from '../db/pg-channel';
import type { Logger } from '../log/logger';
import { parseInvalidation, type InvalidationTarget } from './invalidation';

/** One channel per database: every gateway on this database caches keys of this database. */
export const PG_INVALIDATION_CHANNEL = 'modelgate_key_invalidation';

/** What `notifyInvalidation` needs of a Prisma transaction client. */
export interface RawQueryRunner {
  $queryRawUnsafe(query: string, ...values: unknown[]): Promise<unknown>;
}

/** Queues the invalidation on the transaction; Postgres sends it at commit and drops it on rollback. */
export async function notifyInvalidation(tx: RawQueryRunner, target: InvalidationTarget): Promise<void> {
  await notifyChannel(tx, PG_INVALIDATION_CHANNEL, JSON.stringify(target));
}

export interface PgListenerHandlers {
  message(target: InvalidationTarget): void;
  /** Called on every change: true once LISTEN is in place, false when the connection is lost. */
  state(up: boolean): void;
}

/** The invalidation channel's listener: the shared NOTIFY listener, with each payload parsed (an unreadable one is dropped). */
export class PgInvalidationListener {
  private readonly listener: PgChannelListener;

  constructor(url: string, log: Logger, handlers: PgListenerHandlers) {
    this.listener = new PgChannelListener(
      url,
      PG_INVALIDATION_CHANNEL,
      log,
      {
        message: (payload) => {
          const target = parseInvalidation(payload);
          if (target) handlers.message(target);
        },
        state: (up) => {
          if (up) log.info('key invalidation listener (Postgres NOTIFY) listening');
          handlers.state(up);
        },
      },
      { name: 'key invalidation listener (Postgres NOTIFY)', applicationName: 'modelgate-key-invalidation' },
    );
  }

  start(): void {
    this.listener.start();
  }

  close(): Promise<void> {
    return this.listener.close();
  }
}
