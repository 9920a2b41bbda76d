/** Adds the caller's limit status to `me` (remaining, reset and the month's quota used). */
import { Authorized, Ctx, FieldResolver, Resolver } from 'type-graphql';
import type { GraphQLContext } from '../context';
import { Me } from '../keys/keys.types';
import { UnauthenticatedError } from '../../../errors';
import { LimitStatusType } from './limits.types';

@Resolver(() => Me)
export class MeLimitsResolver {
  @Authorized()
  @FieldResolver(() => LimitStatusType, { description: "The calling key's rate limits and its tenant's monthly quota, read without consuming" })
  async limits(@Ctx() ctx: GraphQLContext): Promise<LimitStatusType> {
    if (!ctx.principal) throw new UnauthenticatedError();
    const status = await ctx.services.limits.status(ctx.principal);
    const { limit, used, resetsAt } = status.monthlyQuota;
    return {
      limits: status.limits,
      monthlyQuota: { limit, used, remaining: limit === null ? null : Math.max(0, limit - used), resetsAt },
      source: status.source,
    };
  }
}
