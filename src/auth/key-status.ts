/**
 * Where an API key stands at one instant, from its revokedAt, graceUntil and
 * expiresAt: the one rule the authenticator accepts a key by, the GraphQL
 * ApiKey.status and the CLI's status column show, and the admin bootstrap's
 * "a usable admin key exists" asks the database.
 */
import type { ApiKey, Prisma } from '../db/generated/client';

/** The GraphQL ApiKeyStatus values (the CLI prints them lower case). */
export const API_KEY_STATUSES = ['ACTIVE', 'EXPIRED', 'REVOKED', 'GRACE', 'ROTATED'] as const;
export type ApiKeyStatusName = (typeof API_KEY_STATUSES)[number];

/** A key's three times in milliseconds since the epoch, as the authenticator's cache holds them. */
export interface KeyLifetime {
  revoked: boolean;
  expiresAt: number | null;
  graceUntil: number | null;
}

export function lifetimeOf(key: Pick<ApiKey, 'revokedAt' | 'expiresAt' | 'graceUntil'>): KeyLifetime {
  return { revoked: key.revokedAt !== null, expiresAt: key.expiresAt?.getTime() ?? null, graceUntil: key.graceUntil?.getTime() ?? null };
}

/**
 * Revoked wins; then a rotated key whose grace has ended is ROTATED; then
 * past its expiry it is EXPIRED, a rotated key inside its grace period too
 * (rotation keeps the expiry, and the authenticator refuses it); a rotated
 * key before both is GRACE.
 */
export function keyStatus(key: KeyLifetime, now: number): ApiKeyStatusName {
  if (key.revoked) return 'REVOKED';
  if (key.graceUntil !== null && key.graceUntil <= now) return 'ROTATED';
  if (key.expiresAt !== null && key.expiresAt <= now) return 'EXPIRED';
  return key.graceUntil !== null ? 'GRACE' : 'ACTIVE';
}

/** keyStatus of a database row. */
export function keyStatusOf(key: Pick<ApiKey, 'revokedAt' | 'expiresAt' | 'graceUntil'>, now = Date.now()): ApiKeyStatusName {
  return keyStatus(lifetimeOf(key), now);
}

/** Whether a key in this status authenticates: an active one, or a rotated one in its grace period. */
export function isAccepted(status: ApiKeyStatusName): boolean {
  return status === 'ACTIVE' || status === 'GRACE';
}

/** The same rule as a query: the keys whose status at `now` is accepted. */
export function acceptedKeyWhere(now: Date): Prisma.ApiKeyWhereInput {
  return {
    revokedAt: null,
    AND: [{ OR: [{ expiresAt: null }, { expiresAt: { gt: now } }] }, { OR: [{ graceUntil: null }, { graceUntil: { gt: now } }] }],
  };
}
