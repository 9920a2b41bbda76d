/** Prices and invoices. Resolvers shape; rules live in PriceBook. */
import { Arg, Authorized, Ctx, Mutation, Query, Resolver } from 'type-graphql';
import type { Price } from '../../../db/generated/client';
import type { GraphQLContext } from '../context';
import { UnauthenticatedError } from '../../../errors';
import { formatMicros, type Invoice } from '../../../billing/price-book';
import { CreditGrantType, GrantCreditsInput, InvoiceType, Money, PriceType, SetPriceInput } from './billing.types';

export function toMoney(m: { currency: string; amountMicros: bigint }): Money {
  return { currency: m.currency, amountMicros: m.amountMicros.toString(), amount: formatMicros(m.amountMicros) };
}

export function toPriceType(p: Price): PriceType {
  return { id: p.id, model: p.model, tenantId: p.tenantId, currency: p.currency, unitPriceMicros: p.microsPerUnit.toString(), effectiveFrom: p.effectiveFrom, createdBy: p.createdBy, createdAt: p.createdAt };
}

function toInvoiceType(i: Invoice): InvoiceType {
  return {
    ...i,
    lines: i.lines.map((l) => ({ ...l, unitPriceMicros: l.unitPriceMicros?.toString() ?? null, units: l.units.toString(), amountMicros: l.amountMicros.toString() })),
    totals: i.totals.map(toMoney),
    unpricedUnits: i.unpricedUnits.toString(),
  };
}

function principalOf(ctx: GraphQLContext) {
  if (!ctx.principal) throw new UnauthenticatedError();
  return ctx.principal;
}

@Resolver()
export class BillingResolver {
  @Authorized('admin')
  @Mutation(() => PriceType, { description: 'Adds a price to the price book from a whole UTC hour on: the current hour (whose usage so far it prices too) or a later one, never an earlier one. Scope: admin.' })
  async setPrice(@Arg('input', () => SetPriceInput, { description: 'Model, tenant, currency, price and start hour' }) input: SetPriceInput, @Ctx() ctx: GraphQLContext): Promise<PriceType> {
    return toPriceType(await ctx.services.billing.setPrice(principalOf(ctx), input));
  }

  @Authorized('admin')
  @Mutation(() => CreditGrantType, { description: "Adds compute units to a key's or tenant's credit balance (which must be configured), recorded in the ledger and the audit trail; answers the new balance. Scope: admin." })
  async grantCredits(@Arg('input', () => GrantCreditsInput, { description: 'Whose balance, how many compute units, and why' }) input: GrantCreditsInput, @Ctx() ctx: GraphQLContext): Promise<CreditGrantType> {
    const g = await ctx.services.credits.grant(principalOf(ctx), input);
    return { id: g.grantId, tenantId: g.tenantId, apiKeyId: g.apiKeyId, amount: g.amount, balance: g.balance };
  }

  @Authorized('usage:read')
  @Query(() => [PriceType], { description: "The price book, oldest first per model: list prices and the caller's tenant's own (admin: every tenant). Scope: usage:read." })
  async prices(
    @Ctx() ctx: GraphQLContext,
    @Arg('model', () => String, { nullable: true, description: 'Only this model' }) model?: string | null,
    @Arg('tenant', () => String, { nullable: true, description: 'Tenant id or name' }) tenant?: string | null,
  ): Promise<PriceType[]> {
    return (await ctx.services.billing.listPrices(principalOf(ctx), { model, tenant })).map(toPriceType);
  }

  @Authorized('usage:read')
  @Query(() => InvoiceType, { description: "A tenant's statement for a calendar month (UTC). Scope: usage:read (own tenant) or admin." })
  async invoice(
    @Ctx() ctx: GraphQLContext,
    @Arg('tenant', () => String, { description: 'Tenant id or name' }) tenant: string,
    @Arg('month', () => String, { description: 'YYYY-MM' }) month: string,
  ): Promise<InvoiceType> {
    return toInvoiceType(await ctx.services.billing.invoice(principalOf(ctx), tenant, month));
  }
}
