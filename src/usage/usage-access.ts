/** Who may read which tenant's usage: `usage:read` its own tenant only, `admin` any (or all). */
import type { Principal } from '../auth/principal';
import { isAdminKey } from '../auth/scopes';
import { BadInputError, ForbiddenError } from '../errors';
import { UUID } from '../ids/ids';


export function checkUuid(value: string, field: string): void {
  if (!UUID.test(value)) throw new BadInputError(`${field} must be a UUID`, field);
}

/** The tenant a query may read: null means every tenant (admin without a tenantId). */
export function readableTenant(principal: Principal, requested: string | null | undefined): string | null {
  if (requested !== null && requested !== undefined) checkUuid(requested, 'tenantId');
  if (isAdminKey(principal)) return requested ?? null;
  if (requested && requested.toLowerCase() !== principal.tenantId.toLowerCase()) {
    throw new ForbiddenError('usage:read reads only its own tenant', { field: 'tenantId' });
  }
  return principal.tenantId;
}
