/** The keys domain's events into the outbox (KeyEventSink), usable wherever a KeyService is built. */
import type { ApiKey } from '../db/generated/client';
import type { KeyEventSink } from '../keys/key.service';
import { enqueueWebhookEvents } from './outbox';

/** onCommitted: wakes a local dispatcher (absent in a process that delivers nothing, e.g. the CLI). */
export function webhookKeyEvents(onCommitted: () => void = () => undefined): KeyEventSink {
  return {
    async keyRevoked(tx, key: ApiKey) {
      await enqueueWebhookEvents(tx, [
        {
          tenantId: key.tenantId,
          type: 'key.revoked',
          dedupeKey: `key.revoked:${key.id}`,
          data: { apiKeyId: key.id, name: key.name, prefix: key.prefix, revokedAt: key.revokedAt?.toISOString() ?? null },
        },
      ]);
    },
    committed: onCommitted,
  };
}
