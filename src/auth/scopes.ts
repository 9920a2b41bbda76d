/** Scope checks shared by the auth checker, the key service and inference. */
import { ForbiddenError, unknownModelError } from '../errors';
import { SCOPES, type Principal, type Scope } from './principal';

export function isScope(value: string): value is Scope {
  return (SCOPES as readonly string[]).includes(value);
}

/** The one spelling of "is an admin key": every admin check in the code goes through here. */
export function isAdminKey(principal: Pick<Principal, 'scopes'>): boolean {
  return principal.scopes.includes('admin');
}

/** `admin` implies every other scope. */
export function hasScope(principal: Pick<Principal, 'scopes'>, scope: Scope): boolean {
  return isAdminKey(principal) || principal.scopes.includes(scope);
}

/** The one FORBIDDEN for a missing scope (any of `scopes` would do), naming them in `requiredScopes`. */
export function missingScope(scopes: readonly string[]): ForbiddenError {
  return new ForbiddenError(`This API key lacks the scope ${scopes.join(' or ')}`, { requiredScopes: [...scopes] });
}

/** Throws FORBIDDEN (missingScope) unless the key has the scope; `admin` implies every scope. */
export function requireScope(principal: Pick<Principal, 'scopes'>, scope: Scope): void {
  if (!hasScope(principal, scope)) throw missingScope([scope]);
}

/**
 * Private models (issue #23): a model whose name starts with a tenant's id
 * and a dot (`3f0c…-…-….fraud-v2`) belongs to that tenant; every other name
 * is public. Ownership is read from the name alone, so one global namespace
 * holds no clash between tenants: a tenant can only ever publish under its
 * own prefix, and no lookup, publish or error can tell another tenant
 * whether a name under someone else's prefix exists.
 */
const PRIVATE_MODEL_NAME = /^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\./i;

/** The tenant that owns the model (lowercase id), or null for a public model. */
export function modelOwner(modelName: string): string | null {
  return PRIVATE_MODEL_NAME.exec(modelName)?.[1]?.toLowerCase() ?? null;
}

/** Whether the key may know the model exists: public, its own tenant's, or any with `admin`. */
export function modelVisible(principal: Pick<Principal, 'tenantId' | 'scopes'>, modelName: string): boolean {
  const owner = modelOwner(modelName);
  return owner === null || owner === principal.tenantId.toLowerCase() || isAdminKey(principal);
}

/** Whether the key's model allowlist (empty: every model) admits the model. */
export function modelInAllowlist(principal: Pick<Principal, 'allowedModels'>, modelName: string): boolean {
  return principal.allowedModels.length === 0 || principal.allowedModels.includes(modelName);
}

/** Whether the key may use the model: its allowlist admits it and it is not another tenant's private model. */
export function modelAllowed(principal: Pick<Principal, 'allowedModels' | 'tenantId' | 'scopes'>, modelName: string): boolean {
  return modelInAllowlist(principal, modelName) && modelVisible(principal, modelName);
}

/** Throws FORBIDDEN when the key's model allowlist (empty: every model) excludes the model. */
export function assertModelInAllowlist(principal: Pick<Principal, 'allowedModels'>, modelName: string): void {
  if (!modelInAllowlist(principal, modelName)) {
    throw new ForbiddenError(`This API key may not use model "${modelName}"`, { model: modelName });
  }
}

/** Throws the unknown-model NOT_FOUND for another tenant's private model (exactly what a name that never existed gets). */
export function assertModelVisible(principal: Pick<Principal, 'tenantId' | 'scopes'>, modelName: string): void {
  if (!modelVisible(principal, modelName)) throw unknownModelError(modelName);
}

/** The allowlist (FORBIDDEN), then visibility (the unknown-model NOT_FOUND). */
export function assertModelAllowed(principal: Pick<Principal, 'allowedModels' | 'tenantId' | 'scopes'>, modelName: string): void {
  assertModelInAllowlist(principal, modelName);
  assertModelVisible(principal, modelName);
}

/**
 * Who may publish, load, unload, reload or split a model: `admin` any;
 * `models:manage` its own tenant's private models only. Another tenant's
 * name answers the unknown-model NOT_FOUND (so a publish cannot probe for
 * it); a public name answers FORBIDDEN (public names are no secret).
 */
export function assertModelManageable(principal: Pick<Principal, 'tenantId' | 'scopes'>, modelName: string): void {
  if (isAdminKey(principal)) return;
  if (!principal.scopes.includes('models:manage')) throw missingScope(['models:manage']);
  const owner = modelOwner(modelName);
  if (owner === principal.tenantId.toLowerCase()) return;
  if (owner !== null) throw unknownModelError(modelName);
  throw new ForbiddenError(`A models:manage key manages only its tenant's private models, named "${principal.tenantId}.<name>"; public models need admin`, {
    model: modelName,
    requiredScopes: ['admin'],
  });
}

/**
 * Who may read model statistics (Triton's statistics extension over REST and
 * gRPC): they are the counters of this gateway process, summed over every
 * tenant's traffic (requests, failures, batches, queue and compute time), so
 * one tenant's key would learn about the others'. Only `admin` keys read
 * them; tenants see their own traffic in usageSummary / usageRecords.
 */
export const MODEL_STATISTICS_SCOPE: Scope = 'admin';
