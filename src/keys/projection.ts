/**
 * Tenants and API keys as clients read them: the GraphQL Tenant and ApiKey
 * types and the CLI's records (direct mode; remote mode reads the GraphQL
 * types) are this one projection of the rows, so both CLI modes print the
 * same. The audit trail stores its own snapshot (key.service's tenantView and
 * keyView): a stored format, not a view.
 */
import type { ApiKey, CreditRefillInterval, Tenant, TenantStatus } from '../db/generated/client';
import { keyStatusOf, type ApiKeyStatusName } from '../auth/key-status';

export interface BudgetProjection {
  /** Integer micro-units as a decimal string (exact); null: no money budget. */
  monthlyBudget: { amountMicros: string; currency: string } | null;
  /** null: not limited by credits. */
  credits: { since: Date; refillAmount: number | null; refillInterval: CreditRefillInterval | null } | null;
}

export interface TenantProjection extends BudgetProjection {
  id: string;
  name: string;
  status: TenantStatus;
  requestsPerMinute: number | null;
  computeUnitsPerMinute: number | null;
  monthlyComputeUnitQuota: number | null;
  createdAt: Date;
  updatedAt: Date;
}

export interface ApiKeyProjection extends BudgetProjection {
  id: string;
  tenantId: string;
  name: string;
  prefix: string;
  scopes: string[];
  allowedModels: string[];
  requestsPerMinute: number | null;
  computeUnitsPerMinute: number | null;
  monthlyComputeUnitBudget: number | null;
  expiresAt: Date | null;
  revokedAt: Date | null;
  lastUsedAt: Date | null;
  createdBy: string | null;
  rotatedFromId: string | null;
  graceUntil: Date | null;
  metadata: unknown;
  createdAt: Date;
  status: ApiKeyStatusName;
}

export function projectBudgets(row: ApiKey | Tenant): BudgetProjection {
  return {
    monthlyBudget: row.monthlyBudgetMicros !== null && row.budgetCurrency !== null ? { amountMicros: row.monthlyBudgetMicros.toString(), currency: row.budgetCurrency } : null,
    credits: row.creditsSince ? { since: row.creditsSince, refillAmount: row.creditRefillAmount, refillInterval: row.creditRefillInterval } : null,
  };
}

export function projectTenant(row: Tenant): TenantProjection {
  return {
    id: row.id,
    name: row.name,
    status: row.status,
    requestsPerMinute: row.requestsPerMinute,
    computeUnitsPerMinute: row.computeUnitsPerMinute,
    monthlyComputeUnitQuota: row.monthlyComputeUnitQuota,
    ...projectBudgets(row),
    createdAt: row.createdAt,
    updatedAt: row.updatedAt,
  };
}

/** `now`: the instant the status is derived at (auth/key-status.ts). */
export function projectApiKey(row: ApiKey, now = Date.now()): ApiKeyProjection {
  return {
    id: row.id,
    tenantId: row.tenantId,
    name: row.name,
    prefix: row.prefix,
    scopes: row.scopes,
    allowedModels: row.allowedModels,
    requestsPerMinute: row.requestsPerMinute,
    computeUnitsPerMinute: row.computeUnitsPerMinute,
    monthlyComputeUnitBudget: row.monthlyComputeUnitBudget,
    ...projectBudgets(row),
    expiresAt: row.expiresAt,
    revokedAt: row.revokedAt,
    lastUsedAt: row.lastUsedAt,
    createdBy: row.createdBy,
    rotatedFromId: row.rotatedFromId,
    graceUntil: row.graceUntil,
    metadata: row.metadata ?? null,
    createdAt: row.createdAt,
    status: keyStatusOf(row, now),
  };
}
