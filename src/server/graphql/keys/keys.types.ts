/** GraphQL types of the admin API: tenants, API keys, audit events, Relay connections. */
import { Field, ID, InputType, Int, ObjectType, registerEnumType, type ClassType } from 'type-graphql';
import { GraphQLJSON } from 'graphql-scalars';
import { Node } from '../node';

/** GraphQL names for the scopes; the values are the strings stored on keys. */
export enum ScopeValue {
  INFERENCE = 'inference',
  USAGE_READ = 'usage:read',
  KEYS_MANAGE = 'keys:manage',
  MODELS_MANAGE = 'models:manage',
  ADMIN = 'admin',
}
registerEnumType(ScopeValue, {
  name: 'Scope',
  description: 'What a key may do. ADMIN implies every other scope.',
  valuesConfig: {
    INFERENCE: { description: 'infer, classify, models' },
    USAGE_READ: { description: "the own tenant's usage" },
    KEYS_MANAGE: { description: "the own tenant's keys" },
    MODELS_MANAGE: { description: "the own tenant's private models (named \"<tenant id>.<name>\"): publish, load, unload, reload, traffic" },
    ADMIN: { description: 'every tenant, model administration, audit' },
  },
});

export enum TenantStatusValue {
  ACTIVE = 'ACTIVE',
  SUSPENDED = 'SUSPENDED',
}
registerEnumType(TenantStatusValue, {
  name: 'TenantStatus',
  description: 'Whether a tenant may use the gateway',
  valuesConfig: {
    ACTIVE: { description: 'Its keys work' },
    SUSPENDED: { description: 'Every key of the tenant is refused with FORBIDDEN until it is resumed' },
  },
});

export enum ApiKeyStatus {
  ACTIVE = 'ACTIVE',
  EXPIRED = 'EXPIRED',
  REVOKED = 'REVOKED',
  /** Rotated; the old secret still works until graceUntil. */
  GRACE = 'GRACE',
  ROTATED = 'ROTATED',
}
registerEnumType(ApiKeyStatus, {
  name: 'ApiKeyStatus',
  description: 'Where a key stands, derived from revokedAt, graceUntil and expiresAt at the time of reading',
  valuesConfig: {
    ACTIVE: { description: 'Accepted' },
    EXPIRED: { description: 'Past expiresAt: refused with UNAUTHENTICATED' },
    REVOKED: { description: 'Revoked (revokedAt set): refused on every gateway process' },
    GRACE: { description: 'Rotated; this old secret still works until graceUntil' },
    ROTATED: { description: 'Rotated and its grace period has ended: refused' },
  },
});

export enum CreditRefillIntervalValue {
  DAILY = 'DAILY',
  MONTHLY = 'MONTHLY',
}
registerEnumType(CreditRefillIntervalValue, {
  name: 'CreditRefillInterval',
  description: 'When a credit balance is reset to its refill amount',
  valuesConfig: { DAILY: { description: 'At every UTC midnight' }, MONTHLY: { description: 'At the start of every calendar month (UTC)' } },
});

@ObjectType('MoneyBudget', { description: 'A monthly money budget: what may be spent per calendar month (UTC), at the price book prices in effect' })
export class MoneyBudgetType {
  @Field({ description: 'Integer micro-units of the currency (1 USD = 1000000), a decimal string (exact)' }) amountMicros!: string;
  @Field({ description: 'ISO 4217 code; a request for a model priced in another currency is refused (QUOTA_EXCEEDED, reason CURRENCY_MISMATCH)' }) currency!: string;
}

@ObjectType('Credits', { description: 'A credit balance in compute units: consumed by every inference request, reset to refillAmount at each boundary, raised by grantCredits' })
export class CreditsType {
  @Field({ description: 'When credits were configured: usage and grants before it do not count' }) since!: Date;
  @Field(() => Int, { nullable: true, description: 'The balance at each refill boundary; null: no refill (top-ups only)' }) refillAmount!: number | null;
  @Field(() => CreditRefillIntervalValue, { nullable: true, description: 'null: no refill' }) refillInterval!: CreditRefillIntervalValue | null;
}

@InputType('MoneyBudgetInput', { description: 'A monthly money budget' })
export class MoneyBudgetInput {
  @Field({ description: 'Integer micro-units per calendar month (UTC), a decimal string, at most 10^15' }) amountMicros!: string;
  @Field({ description: 'ISO 4217 code, e.g. USD; must match the other budgets of the tenant and its keys' }) currency!: string;
}

@InputType('CreditsInput', { description: 'Configures a credit balance; give refillAmount and refillInterval together, or neither (top-ups only)' })
export class CreditsInput {
  @Field(() => Int, { nullable: true, description: 'Compute units the balance is reset to at each boundary' }) refillAmount?: number | null;
  @Field(() => CreditRefillIntervalValue, { nullable: true, description: 'DAILY or MONTHLY (UTC)' }) refillInterval?: CreditRefillIntervalValue | null;
}

@ObjectType('Tenant', { implements: Node, description: 'A customer of the gateway: owns API keys and usage, and has its own limits and monthly quota' })
export class TenantType implements Node {
  @Field(() => ID, { description: 'Stable UUID' }) id!: string;
  @Field({ description: 'Unique name (1-64 letters, digits, "_", "-" or "."), usable wherever a tenant id is' }) name!: string;
  @Field(() => TenantStatusValue, { description: 'ACTIVE, or SUSPENDED (every key refused)' }) status!: TenantStatusValue;
  @Field(() => Int, { nullable: true, description: 'Requests per rolling minute for the whole tenant; null: the gateway default' }) requestsPerMinute!: number | null;
  @Field(() => Int, { nullable: true, description: 'Compute units per rolling minute for the whole tenant; null: the gateway default' }) computeUnitsPerMinute!: number | null;
  @Field(() => Int, { nullable: true, description: 'Compute units per calendar month (UTC); null: the gateway default, 0: none allowed' }) monthlyComputeUnitQuota!: number | null;
  @Field(() => MoneyBudgetType, { nullable: true, description: 'Money the whole tenant may spend per month; null: none' }) monthlyBudget!: MoneyBudgetType | null;
  @Field(() => CreditsType, { nullable: true, description: "The tenant's credit balance settings; null: not limited by credits" }) credits!: CreditsType | null;
  @Field({ description: 'When the tenant was created' }) createdAt!: Date;
  @Field({ description: 'Last change of status or limits' }) updatedAt!: Date;
}

@ObjectType('ApiKey', { implements: Node, description: 'An API key record; the secret itself is never readable' })
export class ApiKeyType implements Node {
  @Field(() => ID, { description: 'Stable UUID (a rotation makes a new key with a new id)' }) id!: string;
  @Field(() => ID, { description: 'The tenant the key belongs to' }) tenantId!: string;
  @Field({ description: 'Label chosen at creation, e.g. the service that uses it' }) name!: string;
  @Field({ description: 'Display prefix, e.g. mg_live_AbC4dE5f' }) prefix!: string;
  @Field(() => [ScopeValue], { description: 'What the key may do' }) scopes!: string[];
  @Field(() => [String], { description: 'Model names it may use; empty: every model' }) allowedModels!: string[];
  @Field(() => Int, { nullable: true, description: 'Requests per rolling minute for this key; null: the gateway default' }) requestsPerMinute!: number | null;
  @Field(() => Int, { nullable: true, description: 'Compute units per rolling minute for this key; null: the gateway default' }) computeUnitsPerMinute!: number | null;
  @Field(() => Int, { nullable: true, description: 'Compute units per calendar month (UTC) for this key; null: none of its own' }) monthlyComputeUnitBudget!: number | null;
  @Field(() => MoneyBudgetType, { nullable: true, description: 'Money this key may spend per month; null: none of its own' }) monthlyBudget!: MoneyBudgetType | null;
  @Field(() => CreditsType, { nullable: true, description: "The key's credit balance settings; null: not limited by credits" }) credits!: CreditsType | null;
  @Field(() => Date, { nullable: true, description: 'When the key stops working; null: never' }) expiresAt!: Date | null;
  @Field(() => Date, { nullable: true, description: 'When it was revoked; null: not revoked' }) revokedAt!: Date | null;
  @Field(() => Date, { nullable: true, description: 'Updated coarsely (KEY_LAST_USED_GRANULARITY_MS), not per request' }) lastUsedAt!: Date | null;
  @Field(() => String, { nullable: true, description: 'Who created it: key:<prefix> for an API key, else the CLI actor (cli by default); null on keys older than this field' }) createdBy!: string | null;
  @Field(() => ID, { nullable: true, description: 'The key this one replaced by rotation; null: not a rotation' }) rotatedFromId!: string | null;
  @Field(() => Date, { nullable: true, description: 'Set on a rotated old key: its secret works until then; null: not rotated' }) graceUntil!: Date | null;
  @Field(() => GraphQLJSON, { nullable: true, description: 'Labels such as owner or team (string values), set by updateApiKey' }) metadata!: unknown;
  @Field({ description: 'When the key was issued' }) createdAt!: Date;
  @Field(() => ApiKeyStatus, { description: 'Derived at read time from revokedAt, graceUntil and expiresAt' }) status!: ApiKeyStatus;
}

@ObjectType({ description: 'A new key: the plaintext is shown here once and can never be read again' })
export class CreatedApiKey {
  @Field({ description: 'The secret (mg_live_…), to send as Authorization: Bearer; stored only as a hash' }) plaintext!: string;
  @Field(() => ApiKeyType, { description: 'The new key record' }) apiKey!: ApiKeyType;
}

@ObjectType({ description: 'A rotated key: the new plaintext (shown once), the new record, and the old one (working until its graceUntil)' })
export class RotatedApiKey {
  @Field({ description: 'The new secret, shown only here' }) plaintext!: string;
  @Field(() => ApiKeyType, { description: 'The new key record (same settings, new id and prefix)' }) apiKey!: ApiKeyType;
  @Field(() => ApiKeyType, { description: 'The old key, GRACE until its graceUntil (or ROTATED at once with no grace period)' }) previous!: ApiKeyType;
}

@ObjectType('AuditEvent', { implements: Node, description: 'One admin change (tenants, keys, prices), written in the same transaction as the change' })
export class AuditEventType implements Node {
  @Field(() => ID, { description: 'Stable UUID' }) id!: string;
  @Field(() => ID, { nullable: true, description: 'Id of the key that made the change; null: the CLI or the first-start bootstrap' }) actorKeyId!: string | null;
  @Field({ description: 'Who made it: key:<prefix> for an API key, else the CLI actor (cli by default)' }) actor!: string;
  @Field({ description: 'What was done, e.g. tenant.create, tenant.suspend, apikey.create, apikey.revoke, apikey.rotate, admin.bootstrap, price.set' }) action!: string;
  @Field({ description: 'GraphQL type of the object changed: Tenant, ApiKey or Price' }) targetType!: string;
  @Field(() => ID, { nullable: true, description: 'Id of the object changed (node(id) fetches it); null for events without one' }) targetId!: string | null;
  @Field(() => ID, { nullable: true, description: 'Tenant of the object changed; null for gateway-wide objects (list prices)' }) tenantId!: string | null;
  @Field(() => GraphQLJSON, { nullable: true, description: 'The object before the change (never a secret or hash); null on creation' }) before!: unknown;
  @Field(() => GraphQLJSON, { nullable: true, description: 'The object after the change; null when it was removed' }) after!: unknown;
  @Field(() => String, { nullable: true, description: 'Client address of the request; null from the CLI' }) ip!: string | null;
  @Field(() => String, { nullable: true, description: 'User-Agent header of the request; null when absent' }) userAgent!: string | null;
  @Field(() => String, { nullable: true, description: 'Request id (x-request-id) of the change; null from the CLI' }) requestId!: string | null;
  @Field({ description: 'When the change was committed' }) createdAt!: Date;
}

@ObjectType({ description: 'The calling key: its tenant, scopes, expiry and allowed models (never a hash)' })
export class Me {
  @Field(() => ApiKeyType, { description: 'The calling key record' }) apiKey!: ApiKeyType;
  @Field(() => TenantType, { description: 'The tenant the key belongs to' }) tenant!: TenantType;
  @Field(() => [ScopeValue], { description: 'What the key may do' }) scopes!: string[];
  @Field(() => [String], { description: 'Model names it may use; empty: every model' }) allowedModels!: string[];
  @Field(() => Date, { nullable: true, description: 'When the key stops working; null: never' }) expiresAt!: Date | null;
}

@ObjectType({ description: 'Relay page information of a connection (forward pagination: first/after)' })
export class PageInfo {
  @Field({ description: 'More items follow: pass endCursor as after' }) hasNextPage!: boolean;
  @Field({ description: 'true when this page was asked for with after (items precede it)' }) hasPreviousPage!: boolean;
  @Field(() => String, { nullable: true, description: 'Cursor of the first edge; null on an empty page' }) startCursor!: string | null;
  @Field(() => String, { nullable: true, description: 'Cursor of the last edge; null on an empty page' }) endCursor!: string | null;
}

export interface ConnectionShape<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: PageInfo;
}

/** A Relay connection type for a node type. */
export function connection<T extends object>(node: ClassType<T>, name: string): ClassType<ConnectionShape<T>> {
  @ObjectType(`${name}Edge`, { description: `One ${name} in a page, with its cursor` })
  class Edge {
    @Field({ description: 'Opaque keyset cursor of this edge, for after' }) cursor!: string;
    @Field(() => node, { description: `The ${name}` }) node!: T;
  }
  @ObjectType(`${name}Connection`, { description: `A page of ${name} objects, newest first (Relay connection)` })
  class Connection {
    @Field(() => [Edge], { description: 'The page, newest first' }) edges!: Edge[];
    @Field(() => PageInfo, { description: 'Whether more pages follow, and the cursors' }) pageInfo!: PageInfo;
  }
  return Connection;
}

export const TenantConnection = connection(TenantType, 'Tenant');
export const ApiKeyConnection = connection(ApiKeyType, 'ApiKey');
export const AuditEventConnection = connection(AuditEventType, 'AuditEvent');

@InputType({ description: 'A new tenant; absent limits use the gateway defaults' })
export class CreateTenantInput {
  @Field({ description: 'Unique name: 1-64 letters, digits, "_", "-" or ".", starting with a letter or digit' }) name!: string;
  @Field(() => Int, { nullable: true, description: 'Requests per rolling minute, at least 1' }) requestsPerMinute?: number | null;
  @Field(() => Int, { nullable: true, description: 'Compute units per rolling minute, at least 1' }) computeUnitsPerMinute?: number | null;
  @Field(() => Int, { nullable: true, description: 'Compute units per calendar month (UTC), 0 or more' }) monthlyComputeUnitQuota?: number | null;
  @Field(() => MoneyBudgetInput, { nullable: true, description: 'Money the tenant may spend per month' }) monthlyBudget?: MoneyBudgetInput | null;
  @Field(() => CreditsInput, { nullable: true, description: 'Give the tenant a credit balance' }) credits?: CreditsInput | null;
}

@InputType({ description: 'Absent fields stay as they are; null clears a limit back to the gateway default' })
export class UpdateTenantInput {
  @Field(() => TenantStatusValue, { nullable: true, description: 'SUSPENDED refuses every key of the tenant at once; ACTIVE resumes' }) status?: TenantStatusValue | null;
  @Field(() => Int, { nullable: true, description: 'Requests per rolling minute, at least 1; null: the gateway default' }) requestsPerMinute?: number | null;
  @Field(() => Int, { nullable: true, description: 'Compute units per rolling minute, at least 1; null: the gateway default' }) computeUnitsPerMinute?: number | null;
  @Field(() => Int, { nullable: true, description: 'Compute units per calendar month (UTC), 0 or more; null: the gateway default' }) monthlyComputeUnitQuota?: number | null;
  @Field(() => MoneyBudgetInput, { nullable: true, description: 'null: no money budget' }) monthlyBudget?: MoneyBudgetInput | null;
  @Field(() => CreditsInput, { nullable: true, description: 'null: no credit balance (the balance is forgotten); a change applies to the current period at once' }) credits?: CreditsInput | null;
}

@InputType({ description: 'A new key; absent limits use the gateway defaults' })
export class CreateApiKeyInput {
  @Field(() => String, { nullable: true, description: "Tenant id or name; default: the caller's tenant" }) tenant?: string | null;
  @Field({ description: 'Label, e.g. the service that will use it (1-100 characters)' }) name!: string;
  @Field(() => [ScopeValue], { description: 'What it may do; keys:manage cannot grant ADMIN' }) scopes!: ScopeValue[];
  @Field(() => [String], { nullable: true, description: 'Model names it may use; empty or absent: every model' }) allowedModels?: string[] | null;
  @Field(() => Date, { nullable: true, description: 'When it stops working (in the future); absent: never' }) expiresAt?: Date | null;
  @Field(() => Int, { nullable: true, description: 'Expire this many seconds from now (instead of expiresAt)' }) ttlSeconds?: number | null;
  @Field(() => Int, { nullable: true, description: 'Requests per rolling minute for this key, at least 1' }) requestsPerMinute?: number | null;
  @Field(() => Int, { nullable: true, description: 'Compute units per rolling minute for this key, at least 1' }) computeUnitsPerMinute?: number | null;
  @Field(() => Int, { nullable: true, description: 'Compute units per calendar month (UTC) for this key, 0 or more' }) monthlyComputeUnitBudget?: number | null;
  @Field(() => MoneyBudgetInput, { nullable: true, description: 'Money this key may spend per month' }) monthlyBudget?: MoneyBudgetInput | null;
  @Field(() => CreditsInput, { nullable: true, description: 'Give the key a credit balance' }) credits?: CreditsInput | null;
}

@InputType({ description: 'Absent fields stay as they are; null clears a limit back to the default, expiresAt to never, metadata to none' })
export class UpdateApiKeyInput {
  @Field(() => String, { nullable: true, description: 'New label (cannot be null)' }) name?: string | null;
  @Field(() => [ScopeValue], { nullable: true, description: 'New scopes, replacing the old (cannot be null)' }) scopes?: ScopeValue[] | null;
  @Field(() => [String], { nullable: true, description: 'Model names it may use, replacing the old; empty: every model (cannot be null)' }) allowedModels?: string[] | null;
  @Field(() => Int, { nullable: true, description: 'Requests per rolling minute; null: back to the gateway default' }) requestsPerMinute?: number | null;
  @Field(() => Int, { nullable: true, description: 'Compute units per rolling minute; null: back to the gateway default' }) computeUnitsPerMinute?: number | null;
  @Field(() => Int, { nullable: true, description: 'Compute units per calendar month (UTC); null: no budget of its own' }) monthlyComputeUnitBudget?: number | null;
  @Field(() => MoneyBudgetInput, { nullable: true, description: 'null: no money budget of its own' }) monthlyBudget?: MoneyBudgetInput | null;
  @Field(() => CreditsInput, { nullable: true, description: 'null: no credit balance (the balance is forgotten); a change applies to the current period at once' }) credits?: CreditsInput | null;
  @Field(() => Date, { nullable: true, description: 'When it stops working; null: never' }) expiresAt?: Date | null;
  @Field(() => GraphQLJSON, { nullable: true, description: 'String values only, at most 32 entries; replaces the whole object' }) metadata?: Record<string, string> | null;
}
