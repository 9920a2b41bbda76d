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
  monthlyBudget: MoneyBudgetRecord | null;
  credits: CreditsRecord | null;
  createdAt: string;
  updatedAt: string;
}

/** A monthly money budget: integer micro-units of the currency, as a decimal string (exact). */
export interface MoneyBudgetRecord {
  amountMicros: string;
  currency: string;
}

/** Credit balance settings: since when, and the refill (both null: top-ups only). */
export interface CreditsRecord {
  since: string;
  refillAmount: number | null;
  refillInterval: 'DAILY' | 'MONTHLY' | null;
}

/** The GraphQL sub-selections of the object-valued fields of keys and tenants (the remote client selects these). */
export const OBJECT_FIELD_SELECTIONS: Record<string, string> = {
  monthlyBudget: '{ amountMicros currency }',
  credits: '{ since refillAmount refillInterval }',
};

/** A field list as a GraphQL selection, object fields with their sub-selection. */
export function selection(fields: readonly string[]): string {
  return fields.map((f) => (OBJECT_FIELD_SELECTIONS[f] ? `${f} ${OBJECT_FIELD_SELECTIONS[f]}` : f)).join(' ');
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
  'monthlyBudget',
  'credits',
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
  monthlyBudget: MoneyBudgetRecord | null;
  credits: CreditsRecord | null;
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
