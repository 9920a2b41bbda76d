/** GraphQL types of prices, spend and invoices. Money is integer micro-units as decimal strings: exact in any client. */
import { Field, ID, InputType, Int, ObjectType } from 'type-graphql';
import { Node } from '../node';

@ObjectType({ description: 'An exact amount: integer micro-units of the currency (1 USD = 1000000), as a string' })
export class Money {
  @Field({ description: 'ISO 4217 code' }) currency!: string;
  @Field({ description: 'Integer micro-units, a decimal string (exact)' }) amountMicros!: string;
  @Field({ description: 'The same as a decimal with 6 places, for display' }) amount!: string;
}

@ObjectType('Price', { implements: Node, description: 'What one compute unit of a model costs from effectiveFrom on' })
export class PriceType implements Node {
  @Field(() => ID, { description: 'Stable UUID' }) id!: string;
  @Field({ description: 'Model name the price applies to' }) model!: string;
  @Field(() => ID, { nullable: true, description: "null: the list price; else this tenant's own price" }) tenantId!: string | null;
  @Field({ description: 'ISO 4217 code, e.g. USD' }) currency!: string;
  @Field({ description: 'Integer micro-units per compute unit, a decimal string' }) unitPriceMicros!: string;
  @Field({ description: 'The whole UTC hour from which it applies (until a later price of the same model and tenant)' }) effectiveFrom!: Date;
  @Field({ description: 'Who set it: key:<prefix>, or cli' }) createdBy!: string;
  @Field({ description: 'When it was set' }) createdAt!: Date;
}

@InputType({ description: 'A new entry in the price book' })
export class SetPriceInput {
  @Field({ description: 'Model name' }) model!: string;
  @Field(() => String, { nullable: true, description: 'Tenant id or name; absent: the list price' }) tenant?: string | null;
  @Field({ description: 'ISO 4217 code, e.g. USD' }) currency!: string;
  @Field({ description: 'Integer micro-units per compute unit, a decimal string' }) unitPriceMicros!: string;
  @Field({ description: 'A whole UTC hour: the current one (repricing what it recorded so far) or a later one' }) effectiveFrom!: Date;
}

@ObjectType('InvoiceLine', { description: 'Units of one model at one price, and their amount (units × price, exact)' })
export class InvoiceLineType {
  @Field({ description: 'Model name' }) model!: string;
  @Field(() => String, { nullable: true, description: 'null: no price was in effect' }) currency!: string | null;
  @Field(() => String, { nullable: true, description: 'Integer micro-units per compute unit, a decimal string; null: no price was in effect' }) unitPriceMicros!: string | null;
  @Field({ description: 'Compute units, a decimal string (whole units; exact beyond 2^53)' }) units!: string;
  @Field({ description: 'units × unitPriceMicros in integer micro-units, a decimal string; 0 when unpriced' }) amountMicros!: string;
  @Field({ description: 'First hour this line covers' }) from!: Date;
  @Field({ description: 'End of the last hour this line covers' }) to!: Date;
}

@ObjectType('Invoice', { description: "One tenant's calendar month (UTC): lines per model and price; each total is the exact sum of its currency's lines" })
export class InvoiceType {
  @Field(() => ID, { description: 'The tenant invoiced' }) tenantId!: string;
  @Field({ description: 'Its name' }) tenantName!: string;
  @Field({ description: 'The month, YYYY-MM (UTC)' }) month!: string;
  @Field({ description: 'Start of the month (UTC), inclusive' }) from!: Date;
  @Field({ description: 'Start of the next month (UTC), exclusive' }) to!: Date;
  @Field(() => [InvoiceLineType], { description: 'One line per model and price in effect' }) lines!: InvoiceLineType[];
  @Field(() => [Money], { description: 'One total per currency: the exact sum of its lines' }) totals!: Money[];
  @Field({ description: 'Units with no price in effect (in lines with a null price, amount 0)' }) unpricedUnits!: string;
}

@InputType({ description: 'A one-off top-up of a credit balance (recorded in the ledger)' })
export class GrantCreditsInput {
  @Field({ description: 'Tenant id or name' }) tenant!: string;
  @Field(() => ID, { nullable: true, description: "A key of that tenant, by id or display prefix (mg_live_…): its balance; absent: the tenant's balance" }) apiKey?: string | null;
  @Field(() => Int, { description: 'Compute units to add, 1 to 1000000000' }) amount!: number;
  @Field(() => String, { nullable: true, description: 'Why (kept in the ledger and the audit trail), at most 500 characters' }) reason?: string | null;
}

@ObjectType('CreditGrant', { description: 'A recorded top-up and the balance right after it' })
export class CreditGrantType {
  @Field(() => ID, { description: 'The ledger row' }) id!: string;
  @Field(() => ID, { description: 'The tenant whose balance (or whose key\'s balance) was topped up' }) tenantId!: string;
  @Field(() => ID, { nullable: true, description: "null: the tenant's balance" }) apiKeyId!: string | null;
  @Field(() => Int, { description: 'Compute units added' }) amount!: number;
  @Field(() => Int, { description: 'The balance in compute units after this grant' }) balance!: number;
}
