/**
 * One metered request, as the inference path hands it to the usage domain
 * (issue #7). Holds no inputs or outputs by design.
 */
export const USAGE_STATUSES = ['OK', 'BAD_INPUT', 'RATE_LIMITED', 'QUOTA_EXCEEDED', 'TIMEOUT', 'OVERLOADED', 'ERROR'] as const;
export type UsageStatusName = (typeof USAGE_STATUSES)[number];

export interface UsageEvent {
  /** The request id; the idempotency key of the insert. */
  id: string;
  tenantId: string;
  apiKeyId: string | null;
  model: string;
  modelVersion: string | null;
  items: number;
  computeUnits: number;
  status: UsageStatusName;
  latencyMs: number;
  queueMs: number;
  computeMs: number;
  executionProvider: string | null;
  createdAt: Date;
}

/** What the request path calls; never waits for the database. */
export interface UsageSink {
  record(event: UsageEvent): void;
}
