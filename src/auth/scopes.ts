/** Scope checks shared by the auth checker, the key service and inference. */
import { ForbiddenError } from '../errors';
import { SCOPES, type Principal, type Scope } from './principal';

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/** `admin` implies every other scope. */
export function hasScope(principal: Pick<Principal, 'scopes'>, scope: Scope): boolean {
  return principal.scopes.includes('admin') || principal.scopes.includes(scope);
}

/** The one FORBIDDEN for a missing scope (any of `scopes` would do), naming them in `requiredScopes`. */
export function missingScope(scopes: readonly string[]): ForbiddenError {
  return new ForbiddenError(`This API key lacks the scope ${scopes.join(' or ')}`, { requiredScopes: [...scopes] });
}

/** Throws FORBIDDEN (missingScope) unless the key has the scope; `admin` implies every scope. */
export function requireScope(principal: Pick<Principal, 'scopes'>, scope: Scope): void {
  if (!hasScope(principal, scope)) throw missingScope([scope]);
}

/** Whether the key's model allowlist (empty: every model) admits the model. */
export function modelAllowed(principal: Pick<Principal, 'allowedModels'>, modelName: string): boolean {
  return principal.allowedModels.length === 0 || principal.allowedModels.includes(modelName);
}

/** Throws FORBIDDEN when the key's model allowlist (empty: every model) excludes the model. */
export function assertModelAllowed(principal: Pick<Principal, 'allowedModels' | 'keyPrefix'>, modelName: string): void {
  if (!modelAllowed(principal, modelName)) {
    throw new ForbiddenError(`This API key may not use model "${modelName}"`, { model: modelName });
  }
}

/**
 * Who may read model statistics (Triton's statistics extension over REST and
 * gRPC): they are the counters of this gateway process, summed over every
 * tenant's traffic (requests, failures, batches, queue and compute time), so
 * one tenant's key would learn about the others'. Only `admin` keys read
 * them; tenants see their own traffic in usageSummary / usageRecords.
 */
export const MODEL_STATISTICS_SCOPE: Scope = 'admin';
