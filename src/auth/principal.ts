/**
 * Who is calling: the verified API key and its tenant. Built by the auth
 * domain (issue #5) and read by every other domain (limits, usage, inference).
 */
export const SCOPES = ['inference', 'usage:read', 'keys:manage', 'models:manage', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface Principal {
  apiKeyId: string;
  /** Display prefix of the key ("mg_live_AbC4"); never the secret. */
  keyPrefix: string;
  tenantId: string;
  tenantName: string;
  scopes: Scope[];
  /** Empty means every model. */
  allowedModels: string[];
  expiresAt: Date | null;
  /** Overrides stored on the key and tenant; null means "use the gateway default". */
  limits: {
    keyRequestsPerMinute: number | null;
    keyComputeUnitsPerMinute: number | null;
    tenantRequestsPerMinute: number | null;
    tenantComputeUnitsPerMinute: number | null;
    tenantMonthlyComputeUnitQuota: number | null;
    /** The key's own monthly compute-unit budget; null: none. */
    keyMonthlyComputeUnitBudget?: number | null;
    /** Money budgets per calendar month (UTC); null: none. */
    keyMonthlyBudget?: MoneyBudget | null;
    tenantMonthlyBudget?: MoneyBudget | null;
    /** Credit balances; null: not limited by credits. */
    keyCredits?: CreditsConfig | null;
    tenantCredits?: CreditsConfig | null;
  };
}

/** A monthly money budget: integer micro-units of one currency. */
export interface MoneyBudget {
  micros: number;
  /** ISO 4217. */
  currency: string;
}

/** A credit balance in compute units, optionally reset to `refill.amount` at each UTC day or month. */
export interface CreditsConfig {
  /** When credits were configured: consumption and grants before it do not count. */
  since: Date;
  refill: { amount: number; interval: 'DAILY' | 'MONTHLY' } | null;
}
