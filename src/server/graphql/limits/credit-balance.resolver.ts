/** ApiKey.creditBalance: a key's live credit balance, for an admin or its tenant's usage readers (not only the key itself, as me.limits). */
import { Authorized, Ctx, FieldResolver, Float, Resolver, Root } from 'type-graphql';
import { hasScope, isAdminKey } from '../../../auth/scopes';
import type { GraphQLContext } from '../context';
import { ApiKeyType } from '../keys/keys.types';

@Resolver(() => ApiKeyType)
export class ApiKeyCreditBalanceResolver {
  @Authorized()
  @FieldResolver(() => Float, {
    nullable: true,
    description:
      "The key's live credit balance in compute units, read without consuming (the figure me.limits key_credits shows the key itself); null when the key has no credits, limits are off or the store cannot be read, or the caller is neither admin nor a usage:read key of the key's tenant",
  })
  async creditBalance(@Root() key: ApiKeyType, @Ctx() ctx: GraphQLContext): Promise<number | null> {
    const caller = ctx.principal;
    if (!caller || !key.credits) return null;
    if (!isAdminKey(caller) && !(caller.tenantId === key.tenantId && hasScope(caller, 'usage:read'))) return null;
    const refill = key.credits.refillAmount && key.credits.refillInterval ? { amount: key.credits.refillAmount, interval: key.credits.refillInterval } : null;
    return ctx.services.limits.keyCreditBalance({ apiKeyId: key.id, keyPrefix: key.prefix, tenantId: key.tenantId }, { since: key.credits.since, refill });
  }
}
