/**
 * Who made an admin change, as every domain's audit events and ledgers name
 * it: the calling key (by display prefix, never the secret), or the CLI
 * working on the database directly (no principal; it names its own actor).
 */
import type { Principal } from './principal';
import { isAdminKey } from './scopes';

export interface Actor {
  principal: Principal | null;
  ip?: string | null;
  userAgent?: string | null;
  requestId?: string | null;
  /** Audit label when there is no principal ("cli"). */
  actor?: string;
}

/** key:<prefix> for an API key, else the CLI's label (cli by default). */
export function actorLabel(caller: Actor): string {
  return caller.principal ? `key:${caller.principal.keyPrefix}` : (caller.actor ?? 'cli');
}

/** An admin key, or the CLI on the database (which may do anything). */
export function isAdmin(caller: Actor): boolean {
  return caller.principal === null || isAdminKey(caller.principal);
}

/** The actor columns of an AuditEvent row. */
export function auditActor(caller: Actor): { actorKeyId: string | null; actor: string; ip: string | null; userAgent: string | null; requestId: string | null } {
  return {
    actorKeyId: caller.principal?.apiKeyId ?? null,
    actor: actorLabel(caller),
    ip: caller.ip ?? null,
    userAgent: caller.userAgent ?? null,
    requestId: caller.requestId ?? null,
  };
}
