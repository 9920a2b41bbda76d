/**
 * Rotating WEBHOOK_SECRET_ENCRYPTION_KEY: every stored endpoint secret is
 * decrypted with the old key and encrypted with the new one, in one
 * transaction that holds the endpoint rows (a gateway's rotate-secret waits
 * for it), so the database never mixes keys. A secret the new key already
 * opens is left as it is: a second run, or a run after a crash (the
 * transaction rolled back), is safe. A secret neither key opens stops the
 * whole run, changing nothing: it was written under a third key, and
 * guessing would lose it.
 */
import type { PrismaClient } from '../db/generated/client';
import type { SecretBox } from './secret-box';

export interface ReencryptProgress {
  done: number;
  total: number;
}

export interface ReencryptSummary {
  /** Endpoints whose secret was moved from the old key to the new one. */
  reencrypted: number;
  /** Endpoints the new key already opened (an earlier run, or created after the switch). */
  alreadyNewKey: number;
  total: number;
}

export class UndecryptableSecretsError extends Error {
  constructor(readonly endpointIds: string[]) {
    super(
      `${endpointIds.length} webhook secret(s) open with neither key (endpoints ${endpointIds.slice(0, 10).join(', ')}${endpointIds.length > 10 ? ', …' : ''}); nothing was changed. ` +
        'They were stored under another key: run again with that key as the old one, or rotate those webhooks\' secrets afterwards.',
    );
    this.name = 'UndecryptableSecretsError';
  }
}

function opens(box: SecretBox, ciphertext: string): boolean {
  try {
    box.decrypt(ciphertext);
    return true;
  } catch {
    return false;
  }
}

/** Re-encrypts every stored webhook secret from `from` to `to` in one transaction; reports progress every `progressEvery` rows. */
export async function reencryptWebhookSecrets(
  prisma: PrismaClient,
  from: SecretBox,
  to: SecretBox,
  options: { actor: string; progressEvery?: number; onProgress?: (p: ReencryptProgress) => void },
): Promise<ReencryptSummary> {
  const every = options.progressEvery ?? 100;
  return prisma.$transaction(
    async (tx) => {
      // FOR UPDATE: a secret rotated by a gateway meanwhile would be written under the old key and lost to the new one.
      const rows = await tx.$queryRaw<{ id: string; secretCiphertext: string }[]>`SELECT "id"::text AS "id", "secretCiphertext" FROM "WebhookEndpoint" ORDER BY "id" FOR UPDATE`;
      const summary: ReencryptSummary = { reencrypted: 0, alreadyNewKey: 0, total: rows.length };
      const lost: string[] = [];
      let done = 0;
      for (const row of rows) {
        if (opens(to, row.secretCiphertext)) {
          summary.alreadyNewKey += 1;
        } else if (opens(from, row.secretCiphertext)) {
          const secret = from.decrypt(row.secretCiphertext);
          await tx.webhookEndpoint.update({ where: { id: row.id }, data: { secretCiphertext: to.encrypt(secret) } });
          summary.reencrypted += 1;
        } else {
          lost.push(row.id);
        }
        done += 1;
        if (done % every === 0 || done === rows.length) options.onProgress?.({ done, total: rows.length });
      }
      if (lost.length > 0) throw new UndecryptableSecretsError(lost);
      if (summary.reencrypted > 0) {
        await tx.auditEvent.create({
          data: { actor: options.actor, action: 'webhook.secrets_reencrypted', targetType: 'WebhookEndpoint', after: { reencrypted: summary.reencrypted, alreadyNewKey: summary.alreadyNewKey, total: summary.total } },
        });
      }
      return summary;
    },
    // One transaction for every row: a large table takes a while, and a half-rotated table is what this avoids.
    { timeout: 30 * 60_000, maxWait: 60_000 },
  );
}
