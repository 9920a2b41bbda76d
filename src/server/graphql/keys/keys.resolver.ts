/** The admin API. Resolvers parse, authorize (scope), call KeyService and shape; access rules live in the service. */
import { Arg, Args, ArgsType, Authorized, Ctx, Field, ID, Int, Mutation, Query, Resolver } from 'type-graphql';
import type { ApiKey, AuditEvent, Tenant } from '../../../db/generated/client';
import { callerOf, type GraphQLContext } from '../context';
import { BadInputError, UnauthenticatedError } from '../../../errors';
import type { Page } from '../../../keys/pagination';
import type { KeyService } from '../../../keys/key.service';
import { projectApiKey, projectTenant, type BudgetProjection } from '../../../keys/projection';
import {
  ApiKeyConnection,
  ApiKeyStatus,
  ApiKeyType,
  AuditEventConnection,
  AuditEventType,
  CreateApiKeyInput,
  CreatedApiKey,
  CreateTenantInput,
  CreditRefillIntervalValue,
  Me,
  RotatedApiKey,
  TenantConnection,
  TenantStatusValue,
  TenantType,
  UpdateApiKeyInput,
  UpdateTenantInput,
  type ConnectionShape,
} from './keys.types';

@ArgsType()
class PageArgsType {
  @Field(() => Int, { nullable: true, description: 'Page size, 1-100 (default 20)' }) first?: number | null;
  @Field(() => String, { nullable: true, description: 'endCursor of the previous page' }) after?: string | null;
}

@ArgsType()
class ApiKeysArgs extends PageArgsType {
  @Field(() => String, { nullable: true, description: "Tenant id or name; default: the caller's tenant (admins: every tenant)" }) tenant?: string | null;
  @Field(() => Boolean, { nullable: true, description: 'true: only revoked keys; false: only unrevoked; absent: all' }) revoked?: boolean | null;
}

@ArgsType()
class AuditEventsArgs extends PageArgsType {
  @Field(() => String, { nullable: true, description: 'Tenant id or name' }) tenant?: string | null;
}


function service(ctx: GraphQLContext): KeyService {
  return ctx.services.keys;
}

/** The projection (keys/projection.ts) with its enums as the GraphQL enum types. */
export function toApiKeyType(row: ApiKey, now = Date.now()): ApiKeyType {
  const key = projectApiKey(row, now);
  return { ...key, status: ApiKeyStatus[key.status], credits: creditsType(key.credits) };
}

export function toTenantType(row: Tenant): TenantType {
  const tenant = projectTenant(row);
  return { ...tenant, status: TenantStatusValue[tenant.status], credits: creditsType(tenant.credits) };
}

function creditsType(credits: BudgetProjection['credits']): TenantType['credits'] {
  return credits && { ...credits, refillInterval: credits.refillInterval && CreditRefillIntervalValue[credits.refillInterval] };
}

export function toAuditEventType(row: AuditEvent): AuditEventType {
  return { ...row };
}

function toConnection<R, T>(page: Page<R>, map: (row: R) => T): ConnectionShape<T> {
  const edges = page.edges.map((e) => ({ cursor: e.cursor, node: map(e.node) }));
  return {
    edges,
    pageInfo: {
      hasNextPage: page.hasNextPage,
      hasPreviousPage: page.hasPreviousPage,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges[edges.length - 1]?.cursor ?? null,
    },
  };
}

@Resolver()
export class KeysResolver {
  @Authorized()
  @Query(() => Me, { description: 'The calling key. Needs any valid key.' })
  async me(@Ctx() ctx: GraphQLContext): Promise<Me> {
    const principal = ctx.principal;
    if (!principal) throw new UnauthenticatedError();
    const caller = callerOf(ctx);
    const [apiKey, tenant] = await Promise.all([service(ctx).getApiKey(caller, principal.apiKeyId), service(ctx).getTenant(caller, principal.tenantId)]);
    return {
      apiKey: toApiKeyType(apiKey),
      tenant: toTenantType(tenant),
      scopes: principal.scopes,
      allowedModels: principal.allowedModels,
      expiresAt: principal.expiresAt,
    };
  }

  @Authorized('admin')
  @Query(() => TenantConnection, { description: 'Every tenant, newest first. Scope: admin.' })
  async tenants(@Args(() => PageArgsType) args: PageArgsType, @Ctx() ctx: GraphQLContext): Promise<ConnectionShape<TenantType>> {
    return toConnection(await service(ctx).listTenants(callerOf(ctx), args), toTenantType);
  }

  @Authorized('keys:manage')
  @Query(() => ApiKeyConnection, { description: "API keys, newest first. Scope: keys:manage (own tenant) or admin (any)." })
  async apiKeys(@Args(() => ApiKeysArgs) args: ApiKeysArgs, @Ctx() ctx: GraphQLContext): Promise<ConnectionShape<ApiKeyType>> {
    const page = await service(ctx).listApiKeys(callerOf(ctx), { tenant: args.tenant, revoked: args.revoked }, args);
    const now = Date.now();
    return toConnection(page, (row) => toApiKeyType(row, now));
  }

  @Authorized('keys:manage')
  @Query(() => ApiKeyType, { description: 'One API key by id or display prefix (never its secret). Scope: keys:manage (own tenant) or admin (any).' })
  async apiKey(@Arg('id', () => ID, { description: 'Key id or display prefix' }) id: string, @Ctx() ctx: GraphQLContext): Promise<ApiKeyType> {
    return toApiKeyType(await service(ctx).getApiKey(callerOf(ctx), id));
  }

  @Authorized('admin')
  @Query(() => AuditEventConnection, { description: 'Audit trail of admin changes, newest first. Scope: admin.' })
  async auditEvents(@Args(() => AuditEventsArgs) args: AuditEventsArgs, @Ctx() ctx: GraphQLContext): Promise<ConnectionShape<AuditEventType>> {
    return toConnection(await service(ctx).listAuditEvents(callerOf(ctx), { tenant: args.tenant }, args), toAuditEventType);
  }

  @Authorized('admin')
  @Mutation(() => TenantType, { description: 'Creates a tenant (and its audit event). Scope: admin.' })
  async createTenant(@Arg('input', () => CreateTenantInput, { description: 'Name and limits of the new tenant' }) input: CreateTenantInput, @Ctx() ctx: GraphQLContext): Promise<TenantType> {
    return toTenantType(await service(ctx).createTenant(callerOf(ctx), input));
  }

  @Authorized('admin')
  @Mutation(() => TenantType, { description: 'Suspend or resume a tenant, or change its limits. Scope: admin.' })
  async updateTenant(
    @Arg('id', () => ID, { description: 'Tenant id or name' }) id: string,
    @Arg('input', () => UpdateTenantInput, { description: 'The fields to change' }) input: UpdateTenantInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<TenantType> {
    const { status, ...limits } = input;
    return toTenantType(await service(ctx).updateTenant(callerOf(ctx), id, { ...limits, ...(status ? { status } : {}) }));
  }

  @Authorized('keys:manage')
  @Mutation(() => CreatedApiKey, { description: 'Issues a key; the plaintext is in this answer only. Scope: keys:manage (own tenant, no admin keys) or admin.' })
  async createApiKey(@Arg('input', () => CreateApiKeyInput, { description: 'Tenant, name, scopes and limits of the new key' }) input: CreateApiKeyInput, @Ctx() ctx: GraphQLContext): Promise<CreatedApiKey> {
    const created = await service(ctx).createApiKey(callerOf(ctx), input);
    return { plaintext: created.plaintext, apiKey: toApiKeyType(created.apiKey) };
  }

  @Authorized('keys:manage')
  @Mutation(() => ApiKeyType, { description: 'Revokes at once, on every gateway process. Scope: keys:manage (own tenant) or admin.' })
  async revokeApiKey(@Arg('id', () => ID, { description: 'Key id or display prefix' }) id: string, @Ctx() ctx: GraphQLContext): Promise<ApiKeyType> {
    return toApiKeyType(await service(ctx).revokeApiKey(callerOf(ctx), id));
  }

  @Authorized('keys:manage')
  @Mutation(() => ApiKeyType, {
    description: 'Changes a key in place (name, scopes, models, limits, expiry, metadata); every gateway process applies it from the next request. Scope: keys:manage (own tenant, no admin keys) or admin.',
  })
  async updateApiKey(
    @Arg('id', () => ID, { description: 'Key id or display prefix' }) id: string,
    @Arg('input', () => UpdateApiKeyInput, { description: 'The fields to change' }) input: UpdateApiKeyInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ApiKeyType> {
    // null means "clear" only where clearing exists; a null name or scope list is a mistake.
    for (const field of ['name', 'scopes', 'allowedModels'] as const) {
      if (input[field] === null) throw new BadInputError(`${field} cannot be null; omit it to keep it`, field);
    }
    const { name, scopes, allowedModels, ...rest } = input;
    return toApiKeyType(
      await service(ctx).updateApiKey(callerOf(ctx), id, {
        ...rest,
        ...(name != null ? { name } : {}),
        ...(scopes != null ? { scopes } : {}),
        ...(allowedModels != null ? { allowedModels } : {}),
      }),
    );
  }

  @Authorized('keys:manage')
  @Mutation(() => RotatedApiKey, { description: 'New secret, same settings; the old secret works until the grace period ends. Scope: keys:manage (own tenant) or admin.' })
  async rotateApiKey(
    @Arg('id', () => ID, { description: 'Key id or display prefix' }) id: string,
    @Arg('gracePeriodSeconds', () => Int, { defaultValue: 0, description: 'Seconds the old secret keeps working, 0..2592000 (30 days); 0: it stops at once' }) gracePeriodSeconds: number,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RotatedApiKey> {
    const rotated = await service(ctx).rotateApiKey(callerOf(ctx), id, gracePeriodSeconds);
    return { plaintext: rotated.plaintext, apiKey: toApiKeyType(rotated.apiKey), previous: toApiKeyType(rotated.previous) };
  }
}
