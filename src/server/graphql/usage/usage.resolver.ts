/** The billing API: usageSummary and usageRecords (scope usage:read; admin reads any tenant). */
import { Arg, Authorized, Ctx, ID, Int, Query, Resolver } from 'type-graphql';
import type { GraphQLContext } from '../context';
import { UnauthenticatedError } from '../../../errors';
import { toMoney } from '../billing/billing.resolver';
import { checkUuid, readableTenant } from '../../../usage/usage-access';
import type { UsageGroupBy } from '../../../usage/usage-queries';
import { UsageGroupByValue, UsageRecordConnection, UsageRecordFilter, UsageSummaryRow } from './usage.types';

function principalOf(ctx: GraphQLContext) {
  if (!ctx.principal) throw new UnauthenticatedError();
  return ctx.principal;
}

@Resolver()
export class UsageResolver {
  @Authorized('usage:read')
  @Query(() => [UsageSummaryRow], {
    description: 'Usage totals over [from, to), grouped by any of HOUR, DAY, MODEL, API_KEY, STATUS, PROTOCOL (none: one total row). At most 400 days, 93 with HOUR.',
  })
  async usageSummary(
    @Ctx() ctx: GraphQLContext,
    @Arg('from', () => Date, { description: 'Start, inclusive' }) from: Date,
    @Arg('to', () => Date, { description: 'End, exclusive; after from' }) to: Date,
    @Arg('groupBy', () => [UsageGroupByValue], { defaultValue: [], description: 'Dimensions to group by; empty: one total row' }) groupBy: UsageGroupBy[],
    @Arg('tenantId', () => ID, { nullable: true, description: 'Tenant to read (admin only for another tenant); absent: the caller’s tenant (admin: every tenant)' }) tenantId?: string | null,
  ): Promise<UsageSummaryRow[]> {
    const tenant = readableTenant(principalOf(ctx), tenantId);
    const rows = await ctx.services.usage.queries.summary({ tenantId: tenant, from, to, groupBy });
    return rows.map((r) => ({ ...r, spend: r.spend.map(toMoney) }));
  }

  @Authorized('usage:read')
  @Query(() => UsageRecordConnection, { description: 'Usage records newest first (Relay connection, first ≤ 1000)' })
  async usageRecords(
    @Ctx() ctx: GraphQLContext,
    @Arg('filter', () => UsageRecordFilter, { nullable: true, description: 'Tenant, key, model, status and time range; absent: the caller’s tenant, everything' }) filter?: UsageRecordFilter | null,
    @Arg('first', () => Int, { defaultValue: 50, description: 'Page size, 1-1000' }) first = 50,
    @Arg('after', () => String, { nullable: true, description: 'endCursor of the previous page' }) after?: string | null,
  ): Promise<UsageRecordConnection> {
    const tenant = readableTenant(principalOf(ctx), filter?.tenantId);
    if (filter?.apiKeyId) checkUuid(filter.apiKeyId, 'filter.apiKeyId');
    const page = await ctx.services.usage.queries.records({ ...filter, tenantId: tenant }, first, after);
    return {
      edges: page.records,
      pageInfo: { hasNextPage: page.hasNextPage, hasPreviousPage: Boolean(after), startCursor: page.records[0]?.cursor ?? null, endCursor: page.endCursor },
    };
  }
}
