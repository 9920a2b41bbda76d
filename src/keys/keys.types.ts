/** GraphQL types of the admin API: tenants, API keys, audit events, Relay connections. */
import { Field, ID, InputType, Int, ObjectType, registerEnumType, type ClassType } from 'type-graphql';
import { GraphQLJSON } from 'graphql-scalars';

/** GraphQL names for the scopes; the values are the strings stored on keys. */
export enum ScopeValue {
  INFERENCE = 'inference',
  USAGE_READ = 'usage:read',
  KEYS_MANAGE = 'keys:manage',
  ADMIN = 'admin',
}
registerEnumType(ScopeValue, {
  name: 'Scope',
  description: 'What a key may do. ADMIN implies every other scope.',
  valuesConfig: {
    INFERENCE: { description: 'infer, classify, models' },
    USAGE_READ: { description: "the own tenant's usage" },
    KEYS_MANAGE: { description: "the own tenant's keys" },
    ADMIN: { description: 'every tenant, model administration, audit' },
  },
});

export enum TenantStatusValue {
  ACTIVE = 'ACTIVE',
  SUSPENDED = 'SUSPENDED',
}
registerEnumType(TenantStatusValue, { name: 'TenantStatus', description: "SUSPENDED: every key of the tenant is refused with FORBIDDEN" });

export enum ApiKeyStatus {
  ACTIVE = 'ACTIVE',
  EXPIRED = 'EXPIRED',
  REVOKED = 'REVOKED',
  /** Rotated; the old secret still works until graceUntil. */
  GRACE = 'GRACE',
  ROTATED = 'ROTATED',
}
registerEnumType(ApiKeyStatus, { name: 'ApiKeyStatus', description: 'GRACE: rotated, the old secret works until graceUntil; ROTATED: the grace has ended' });

@ObjectType('Tenant')
export class TenantType {
  @Field(() => ID) id!: string;
  @Field() name!: string;
  @Field(() => TenantStatusValue) status!: TenantStatusValue;
  @Field(() => Int, { nullable: true, description: 'null: the gateway default' }) requestsPerMinute!: number | null;
  @Field(() => Int, { nullable: true, description: 'null: the gateway default' }) computeUnitsPerMinute!: number | null;
  @Field(() => Int, { nullable: true, description: 'null: the gateway default' }) monthlyComputeUnitQuota!: number | null;
  @Field() createdAt!: Date;
  @Field() updatedAt!: Date;
}

@ObjectType('ApiKey', { description: 'An API key record; the secret itself is never readable' })
export class ApiKeyType {
  @Field(() => ID) id!: string;
  @Field(() => ID) tenantId!: string;
  @Field() name!: string;
  @Field({ description: 'Display prefix, e.g. mg_live_AbC4dE5f' }) prefix!: string;
  @Field(() => [ScopeValue]) scopes!: string[];
  @Field(() => [String], { description: 'Empty: every model' }) allowedModels!: string[];
  @Field(() => Int, { nullable: true }) requestsPerMinute!: number | null;
  @Field(() => Int, { nullable: true }) computeUnitsPerMinute!: number | null;
  @Field(() => Int, { nullable: true, description: 'Compute units per calendar month (UTC) for this key; null: none of its own' }) monthlyComputeUnitBudget!: number | null;
  @Field(() => Date, { nullable: true }) expiresAt!: Date | null;
  @Field(() => Date, { nullable: true }) revokedAt!: Date | null;
  @Field(() => Date, { nullable: true, description: 'Updated coarsely (KEY_LAST_USED_GRANULARITY_MS), not per request' }) lastUsedAt!: Date | null;
  @Field(() => String, { nullable: true }) createdBy!: string | null;
  @Field(() => ID, { nullable: true }) rotatedFromId!: string | null;
  @Field(() => Date, { nullable: true }) graceUntil!: Date | null;
  @Field(() => GraphQLJSON, { nullable: true, description: 'Labels such as owner or team (string values), set by updateApiKey' }) metadata!: unknown;
  @Field() createdAt!: Date;
  @Field(() => ApiKeyStatus) status!: ApiKeyStatus;
}

@ObjectType({ description: 'A new key: the plaintext is shown here once and can never be read again' })
export class CreatedApiKey {
  @Field() plaintext!: string;
  @Field(() => ApiKeyType) apiKey!: ApiKeyType;
}

@ObjectType({ description: 'A rotated key: the new plaintext (shown once), the new record, and the old one (working until its graceUntil)' })
export class RotatedApiKey {
  @Field() plaintext!: string;
  @Field(() => ApiKeyType) apiKey!: ApiKeyType;
  @Field(() => ApiKeyType) previous!: ApiKeyType;
}

@ObjectType('AuditEvent')
export class AuditEventType {
  @Field(() => ID) id!: string;
  @Field(() => ID, { nullable: true }) actorKeyId!: string | null;
  @Field() actor!: string;
  @Field() action!: string;
  @Field() targetType!: string;
  @Field(() => ID, { nullable: true }) targetId!: string | null;
  @Field(() => ID, { nullable: true }) tenantId!: string | null;
  @Field(() => GraphQLJSON, { nullable: true }) before!: unknown;
  @Field(() => GraphQLJSON, { nullable: true }) after!: unknown;
  @Field(() => String, { nullable: true }) ip!: string | null;
  @Field(() => String, { nullable: true }) userAgent!: string | null;
  @Field(() => String, { nullable: true }) requestId!: string | null;
  @Field() createdAt!: Date;
}

@ObjectType({ description: 'The calling key: its tenant, scopes, expiry and allowed models (never a hash)' })
export class Me {
  @Field(() => ApiKeyType) apiKey!: ApiKeyType;
  @Field(() => TenantType) tenant!: TenantType;
  @Field(() => [ScopeValue]) scopes!: string[];
  @Field(() => [String], { description: 'Empty: every model' }) allowedModels!: string[];
  @Field(() => Date, { nullable: true }) expiresAt!: Date | null;
}

@ObjectType()
export class PageInfo {
  @Field() hasNextPage!: boolean;
  @Field() hasPreviousPage!: boolean;
  @Field(() => String, { nullable: true }) startCursor!: string | null;
  @Field(() => String, { nullable: true }) endCursor!: string | null;
}

export interface ConnectionShape<T> {
  edges: { cursor: string; node: T }[];
  pageInfo: PageInfo;
}

/** A Relay connection type for a node type. */
export function connection<T extends object>(node: ClassType<T>, name: string): ClassType<ConnectionShape<T>> {
  @ObjectType(`${name}Edge`)
  class Edge {
    @Field() cursor!: string;
    @Field(() => node) node!: T;
  }
  @ObjectType(`${name}Connection`)
  class Connection {
    @Field(() => [Edge]) edges!: Edge[];
    @Field(() => PageInfo) pageInfo!: PageInfo;
  }
  return Connection;
}

export const TenantConnection = connection(TenantType, 'Tenant');
export const ApiKeyConnection = connection(ApiKeyType, 'ApiKey');
export const AuditEventConnection = connection(AuditEventType, 'AuditEvent');

@InputType()
export class CreateTenantInput {
  @Field() name!: string;
  @Field(() => Int, { nullable: true }) requestsPerMinute?: number | null;
  @Field(() => Int, { nullable: true }) computeUnitsPerMinute?: number | null;
  @Field(() => Int, { nullable: true }) monthlyComputeUnitQuota?: number | null;
}

@InputType({ description: 'Absent fields stay as they are; null clears a limit back to the gateway default' })
export class UpdateTenantInput {
  @Field(() => TenantStatusValue, { nullable: true }) status?: TenantStatusValue | null;
  @Field(() => Int, { nullable: true }) requestsPerMinute?: number | null;
  @Field(() => Int, { nullable: true }) computeUnitsPerMinute?: number | null;
  @Field(() => Int, { nullable: true }) monthlyComputeUnitQuota?: number | null;
}

@InputType()
export class CreateApiKeyInput {
  @Field(() => String, { nullable: true, description: "Tenant id or name; default: the caller's tenant" }) tenant?: string | null;
  @Field() name!: string;
  @Field(() => [ScopeValue]) scopes!: ScopeValue[];
  @Field(() => [String], { nullable: true, description: 'Empty or absent: every model' }) allowedModels?: string[] | null;
  @Field(() => Date, { nullable: true }) expiresAt?: Date | null;
  @Field(() => Int, { nullable: true, description: 'Expire this many seconds from now (instead of expiresAt)' }) ttlSeconds?: number | null;
  @Field(() => Int, { nullable: true }) requestsPerMinute?: number | null;
  @Field(() => Int, { nullable: true }) computeUnitsPerMinute?: number | null;
  @Field(() => Int, { nullable: true, description: 'Compute units per calendar month (UTC) for this key' }) monthlyComputeUnitBudget?: number | null;
}

@InputType({ description: 'Absent fields stay as they are; null clears a limit back to the default, expiresAt to never, metadata to none' })
export class UpdateApiKeyInput {
  @Field(() => String, { nullable: true }) name?: string | null;
  @Field(() => [ScopeValue], { nullable: true }) scopes?: ScopeValue[] | null;
  @Field(() => [String], { nullable: true, description: 'Empty: every model' }) allowedModels?: string[] | null;
  @Field(() => Int, { nullable: true }) requestsPerMinute?: number | null;
  @Field(() => Int, { nullable: true }) computeUnitsPerMinute?: number | null;
  @Field(() => Int, { nullable: true }) monthlyComputeUnitBudget?: number | null;
  @Field(() => Date, { nullable: true }) expiresAt?: Date | null;
  @Field(() => GraphQLJSON, { nullable: true, description: 'String values only, at most 32 entries; replaces the whole object' }) metadata?: Record<string, string> | null;
}
