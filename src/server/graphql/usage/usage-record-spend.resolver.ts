/** `UsageRecord.spend`: what one request cost, by the invoice's rule (PriceBook.recordAmount). */
import { Authorized, Ctx, FieldResolver, Resolver, Root } from 'type-graphql';
import type { Price } from '../../../db/generated/client';
import type { GraphQLContext } from '../context';
import { Money } from '../billing/billing.types';
import { toMoney } from '../billing/billing.resolver';
import { UsageRecordType } from './usage.types';

// Price histories read once per (tenant, model) and request: a page of 1000 records of one model costs one query.
const perRequest = new WeakMap<GraphQLContext, Map<string, Promise<Price[]>>>();

@Resolver(() => UsageRecordType)
export class UsageRecordSpendResolver {
  // Whoever may read the record may read its price: the tenant's own or the list price.
  @Authorized()
  @FieldResolver(() => Money, { nullable: true, description: 'What the request cost: its compute units × the price in effect at its hour (the invoice rule, exact micro-units); null when it was not OK or had no price' })
  async spend(@Root() record: UsageRecordType, @Ctx() ctx: GraphQLContext): Promise<Money | null> {
    let memo = perRequest.get(ctx);
    if (!memo) perRequest.set(ctx, (memo = new Map()));
    const amount = await ctx.services.billing.recordAmount(record, memo);
    return amount ? toMoney(amount) : null;
  }
}
