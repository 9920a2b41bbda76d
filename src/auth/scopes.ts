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

/** Throws FORBIDDEN when the key's model allowlist (empty: every model) excludes the model. */
export function assertModelAllowed(principal: Pick<Principal, 'allowedModels' | 'keyPrefix'>, modelName: string): void {
  if (principal.allowedModels.length > 0 && !principal.allowedModels.includes(modelName)) {
    throw new ForbiddenError(`This API key may not use model "${modelName}"`, { model: modelName });
  }
}
