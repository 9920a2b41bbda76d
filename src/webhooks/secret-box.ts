/**
 * Endpoint secrets at rest. Unlike API keys they cannot be stored hashed: the
 * gateway needs the plaintext to sign every delivery. So they are encrypted
 * with AES-256-GCM under a key that is not in the database
 * (WEBHOOK_SECRET_ENCRYPTION_KEY): a database dump alone does not let anyone
 * forge deliveries. Embedded mode (one process, one data directory) generates
 * that key once into DATA_DIR/webhook-secret.key (mode 0600) when unset;
 * Postgres mode has several replicas that must share it, so there it has to
 * be configured, and without it creating or delivering a webhook fails with
 * UNAVAILABLE naming the variable (events still queue in the outbox).
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { UnavailableError } from '../errors';

export class SecretBox {
  constructor(private readonly key: Buffer) {}

  encrypt(plaintext: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const ct = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return Buffer.concat([iv, cipher.getAuthTag(), ct]).toString('base64');
  }

  decrypt(stored: string): string {
    const raw = Buffer.from(stored, 'base64');
    const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
  }
}

/** The configured key, or (embedded mode) the data directory's own, created on first use. */
export function loadSecretBox(options: { secretKey: Buffer | null; keyFile: string; embedded: boolean }): SecretBox | null {
  if (options.secretKey) return new SecretBox(options.secretKey);
  if (!options.embedded) return null;
  let key: Buffer;
  try {
    key = Buffer.from(readFileSync(options.keyFile, 'utf8').trim(), 'hex');
  } catch {
    key = randomBytes(32);
    mkdirSync(path.dirname(options.keyFile), { recursive: true });
    // wx: never overwrite a key another start wrote (it encrypts stored secrets).
    writeFileSync(options.keyFile, key.toString('hex') + '\n', { mode: 0o600, flag: 'wx' });
  }
  if (key.length !== 32) throw new Error(`${options.keyFile} does not hold a 32-byte hex key`);
  return new SecretBox(key);
}

export function missingKeyError(): UnavailableError {
  return new UnavailableError('Webhooks are not configured on this gateway: set WEBHOOK_SECRET_ENCRYPTION_KEY (the same 32-byte key on every replica)');
}
