/**
 * Who is calling: the verified API key and its tenant. Built by the auth
 * domain (issue #5) and read by every other domain (limits, usage, inference).
 */
export const SCOPES = ['inference', 'usage:read', 'keys:manage', 'admin'] as const;
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
  };
}
