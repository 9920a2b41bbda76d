import type { ApiKey, Tenant } from '../db/generated/client';
import type { CreditsConfig, MoneyBudget, Principal } from './principal';
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
      keyMonthlyBudget: moneyBudgetOf(key),
      tenantMonthlyBudget: moneyBudgetOf(tenant),
      keyCredits: creditsOf(key),
      tenantCredits: creditsOf(tenant),
    },
  };
}

type BudgetColumns = Pick<ApiKey, 'monthlyBudgetMicros' | 'budgetCurrency' | 'creditsSince' | 'creditRefillAmount' | 'creditRefillInterval'>;

export function moneyBudgetOf(row: BudgetColumns): MoneyBudget | null {
  if (row.monthlyBudgetMicros === null || row.budgetCurrency === null) return null;
  // Stored as bigint; the limiter's counters are doubles, exact up to 2^53 (budgets are capped below that).
  return { micros: Number(row.monthlyBudgetMicros), currency: row.budgetCurrency };
}

export function creditsOf(row: BudgetColumns): CreditsConfig | null {
  if (row.creditsSince === null) return null;
  const refill = row.creditRefillAmount !== null && row.creditRefillInterval !== null ? { amount: row.creditRefillAmount, interval: row.creditRefillInterval } : null;
  return { since: row.creditsSince, refill };
}
