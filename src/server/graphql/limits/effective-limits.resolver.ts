/** `Tenant.effectiveLimits` and `ApiKey.effectiveLimits`: the limits in force, the gateway defaults included (rules: ratelimit/limits.ts). */
import { Authorized, Ctx, FieldResolver, Resolver, Root } from 'type-graphql';
import type { GraphQLContext } from '../context';
import { ApiKeyType, TenantType } from '../keys/keys.types';
import { effectiveKeyLimits, effectiveTenantLimits, type EffectiveLimit } from '../../../ratelimit/limits';
import { ApiKeyEffectiveLimitsType, EffectiveLimitType, LimitSourceValue, TenantEffectiveLimitsType } from './limits.types';

function toType(l: EffectiveLimit): EffectiveLimitType {
  return { value: l.value, source: LimitSourceValue[l.source] };
}

// Whoever may read the tenant or key may read its limits: no check beyond the parent's.
@Resolver(() => TenantType)
export class TenantEffectiveLimitsResolver {
  @Authorized()
  @FieldResolver(() => TenantEffectiveLimitsType, { description: "The tenant's limits as enforced: its own settings, else the gateway defaults, each with its source" })
  effectiveLimits(@Root() tenant: TenantType, @Ctx() ctx: GraphQLContext): TenantEffectiveLimitsType {
    const l = effectiveTenantLimits(tenant, ctx.services.config.limits);
    return { requestsPerMinute: toType(l.requestsPerMinute), computeUnitsPerMinute: toType(l.computeUnitsPerMinute), monthlyComputeUnitQuota: toType(l.monthlyComputeUnitQuota) };
  }
}

@Resolver(() => ApiKeyType)
export class ApiKeyEffectiveLimitsResolver {
  @Authorized()
  @FieldResolver(() => ApiKeyEffectiveLimitsType, { description: "The key's own per-minute limits as enforced: its settings, else the gateway defaults, each with its source" })
  effectiveLimits(@Root() key: ApiKeyType, @Ctx() ctx: GraphQLContext): ApiKeyEffectiveLimitsType {
    const l = effectiveKeyLimits(key, ctx.services.config.limits);
    return { requestsPerMinute: toType(l.requestsPerMinute), computeUnitsPerMinute: toType(l.computeUnitsPerMinute) };
  }
}
