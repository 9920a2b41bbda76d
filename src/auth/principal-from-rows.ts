import type { ApiKey, Tenant } from '../db/generated/client';
import type { Principal } from './principal';
import { isScope } from './scopes';

/** The Principal for a key row and its tenant row (every field, limits included). */
export function principalFromRows(key: ApiKey, tenant: Tenant): Principal {
  return {
    apiKeyId: key.id,
    keyPrefix: key.prefix,
    tenantId: tenant.id,
    tenantName: tenant.name,
    scopes: key.scopes.filter(isScope),
    allowedModels: [...key.allowedModels],
    expiresAt: key.expiresAt,
    limits: {
      keyRequestsPerMinute: key.requestsPerMinute,
      keyComputeUnitsPerMinute: key.computeUnitsPerMinute,
      tenantRequestsPerMinute: tenant.requestsPerMinute,
      tenantComputeUnitsPerMinute: tenant.computeUnitsPerMinute,
      tenantMonthlyComputeUnitQuota: tenant.monthlyComputeUnitQuota,
      keyMonthlyComputeUnitBudget: key.monthlyComputeUnitBudget,
    },
  };
}
