/**
 * What every admin command needs from its target, whichever it is: the
 * database directly (direct-client.ts, over KeyService) or a running gateway
 * (remote-client.ts, over its GraphQL admin API with an admin key). Commands
 * see only this interface and these records, so each command works, and
 * prints the same, in both modes.
 */
import type { CreateApiKeyInput, CreateTenantInput, ListApiKeysFilter, UpdateApiKeyInput, UpdateTenantInput } from '../keys/key.service';

/** A tenant as the CLI prints it (JSON: these fields; dates as ISO strings). */
export interface TenantRecord {
  id: string;
  name: string;
  status: string;
  requestsPerMinute: number | null;
  computeUnitsPerMinute: number | null;
  monthlyComputeUnitQuota: number | null;
  createdAt: string;
  updatedAt: string;
}

/**
 * The fields of a key the CLI reads and prints, in both modes: the remote
 * client selects exactly these from the GraphQL ApiKey type and the direct
 * client picks them from the same type's mapping. A new ApiKey field is one
 * entry here.
 */
export const KEY_FIELDS = [
  'id',
  'prefix',
  'name',
  'tenantId',
  'status',
  'scopes',
  'allowedModels',
  'requestsPerMinute',
  'computeUnitsPerMinute',
  'monthlyComputeUnitBudget',
  'expiresAt',
  'revokedAt',
  'lastUsedAt',
  'graceUntil',
  'rotatedFromId',
  'createdBy',
  'metadata',
  'createdAt',
] as const;

/** A key record, never its secret; `tenant` is the tenant's name, scopes as typed on the command line ("usage:read"), status lower case. */
export type KeyRecord = { [F in (typeof KEY_FIELDS)[number]]: unknown } & {
  id: string;
  prefix: string;
  name: string;
  tenantId: string;
  tenant: string;
  status: string;
  scopes: string[];
  allowedModels: string[];
  requestsPerMinute: number | null;
  computeUnitsPerMinute: number | null;
  expiresAt: string | null;
  lastUsedAt: string | null;
};

export interface CreatedKeyRecord {
  /** Shown once. */
  plaintext: string;
  apiKey: KeyRecord;
}

export interface RotatedKeyRecord extends CreatedKeyRecord {
  previous: KeyRecord;
}

export interface AdminClient {
  createTenant(input: CreateTenantInput): Promise<TenantRecord>;
  listTenants(): Promise<TenantRecord[]>;
  updateTenant(ref: string, input: UpdateTenantInput): Promise<TenantRecord>;
  createApiKey(input: CreateApiKeyInput): Promise<CreatedKeyRecord>;
  listApiKeys(filter: ListApiKeysFilter): Promise<KeyRecord[]>;
  getApiKey(ref: string): Promise<KeyRecord>;
  updateApiKey(ref: string, input: UpdateApiKeyInput): Promise<KeyRecord>;
  revokeApiKey(ref: string): Promise<KeyRecord>;
  rotateApiKey(ref: string, graceSeconds: number): Promise<RotatedKeyRecord>;
  close(): Promise<void>;
}

/** Dates as ISO strings, the way both JSON and GraphQL carry them. */
export function isoOrNull(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  return value instanceof Date ? value.toISOString() : String(value);
}
