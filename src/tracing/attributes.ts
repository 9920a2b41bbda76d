/**
 * Span attribute names of modelgate's own facts (the HTTP ones come from the
 * semantic conventions). Identifiers only: never a key, a message or input.
 */
import type { Principal } from '../auth/principal';
import type { TraceAttributes } from './types';

export const ATTR = {
  /** The public error code of a failed request or step (semantic conventions' error.type). */
  errorType: 'error.type',
  requestId: 'modelgate.request_id',
  tenantId: 'modelgate.tenant_id',
  apiKeyId: 'modelgate.api_key_id',
  /** The key's display prefix (mg_live_AbC4), never the key. */
  apiKeyPrefix: 'modelgate.api_key_prefix',
  model: 'modelgate.model',
  modelVersion: 'modelgate.model_version',
  executionProvider: 'modelgate.execution_provider',
  batchSize: 'modelgate.batch_size',
  items: 'modelgate.items',
  computeUnits: 'modelgate.compute_units',
  /** allowed | limit | unavailable | quota_unavailable */
  limitDecision: 'modelgate.limit.decision',
  /** The limit that refused (key_requests, tenant_monthly_compute_units, …). */
  limitName: 'modelgate.limit.name',
  limitSource: 'modelgate.limit.source',
  /** The usage record's status (OK, BAD_INPUT, RATE_LIMITED, …). */
  usageStatus: 'modelgate.usage.status',
  usageRecords: 'modelgate.usage.records',
} as const;

export function principalAttributes(principal: Principal): TraceAttributes {
  return { [ATTR.tenantId]: principal.tenantId, [ATTR.apiKeyId]: principal.apiKeyId, [ATTR.apiKeyPrefix]: principal.keyPrefix };
}
