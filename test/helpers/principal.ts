/** A Principal for unit tests that call services directly (no key in the database). */
import { randomUUID } from 'node:crypto';
import type { Principal } from '../../src/auth/principal';

export function testPrincipal(fields: Partial<Omit<Principal, 'limits'>> = {}, limits: Partial<Principal['limits']> = {}): Principal {
  return {
    apiKeyId: randomUUID(),
    keyPrefix: 'mg_test_abcd',
    tenantId: randomUUID(),
    tenantName: 'acme',
    scopes: ['inference'],
    allowedModels: [],
    expiresAt: null,
    ...fields,
    limits: {
      keyRequestsPerMinute: null,
      keyComputeUnitsPerMinute: null,
      tenantRequestsPerMinute: null,
      tenantComputeUnitsPerMinute: null,
      tenantMonthlyComputeUnitQuota: null,
      ...limits,
    },
  };
}
