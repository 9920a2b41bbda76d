/** GraphQL types of the billing API. */
import { Field, Float, ID, InputType, ObjectType, registerEnumType } from 'type-graphql';
import { GraphQLSafeInt } from 'graphql-scalars';
import { PageInfo } from '../keys/keys.types';
import { Money } from '../billing/billing.types';
import { USAGE_STATUSES, type UsageStatusName } from './usage-event';
import { USAGE_GROUP_BY, type UsageGroupBy } from './usage-queries';

export const UsageStatusValue = Object.fromEntries(USAGE_STATUSES.map((s) => [s, s])) as { [K in UsageStatusName]: K };
registerEnumType(UsageStatusValue, {
  name: 'UsageStatus',
  description: 'Outcome of a metered request: OK, or why it was refused or failed',
});

export const UsageGroupByValue = Object.fromEntries(USAGE_GROUP_BY.map((s) => [s, s])) as { [K in UsageGroupBy]: K };
registerEnumType(UsageGroupByValue, {
  name: 'UsageGroupBy',
  description: 'Dimensions of usageSummary; HOUR and DAY are UTC',
});

@ObjectType({ description: 'Usage totals for one group (the grouped fields are set, the others null)' })
export class UsageSummaryRow {
  @Field(() => Date, { nullable: true, description: 'Start of the UTC hour (groupBy HOUR)' }) hour!: Date | null;
  @Field(() => Date, { nullable: true, description: 'Start of the UTC day (groupBy DAY)' }) day!: Date | null;
  @Field(() => String, { nullable: true }) model!: string | null;
  @Field(() => ID, { nullable: true, description: 'null in an API_KEY group: requests without a key' }) apiKeyId!: string | null;
  @Field(() => UsageStatusValue, { nullable: true }) status!: UsageStatusName | null;
  @Field(() => GraphQLSafeInt) requests!: number;
  @Field(() => GraphQLSafeInt) items!: number;
  @Field(() => Float) computeUnits!: number;
  @Field(() => GraphQLSafeInt, { description: 'Requests whose status is not OK' }) errors!: number;
  @Field(() => Float, { nullable: true, description: 'Exact mean latency' }) avgLatencyMs!: number | null;
  @Field(() => Float, { nullable: true, description: 'Estimated from log-spaced latency buckets (within ×1.25 of the true value)' })
  p50LatencyMs!: number | null;
  @Field(() => Float, { nullable: true, description: 'Estimated from log-spaced latency buckets (within ×1.25 of the true value)' })
  p95LatencyMs!: number | null;
  @Field(() => [Money], { description: 'Priced spend per currency: compute units × the price in effect at each hour (exact micro-units)' }) spend!: Money[];
  @Field(() => Float, { description: 'Compute units with no price in effect (not in spend)' }) unpricedComputeUnits!: number;
}

@ObjectType('UsageRecord', { description: 'One metered request. Holds no inputs or outputs.' })
export class UsageRecordType {
  @Field(() => ID, { description: 'The request id' }) id!: string;
  @Field(() => ID) tenantId!: string;
  @Field(() => ID, { nullable: true }) apiKeyId!: string | null;
  @Field() model!: string;
  @Field(() => String, { nullable: true }) modelVersion!: string | null;
  @Field(() => GraphQLSafeInt) items!: number;
  @Field(() => Float) computeUnits!: number;
  @Field(() => UsageStatusValue) status!: UsageStatusName;
  @Field(() => Float) latencyMs!: number;
  @Field(() => Float) queueMs!: number;
  @Field(() => Float) computeMs!: number;
  @Field(() => String, { nullable: true }) executionProvider!: string | null;
  @Field() createdAt!: Date;
}

@ObjectType()
export class UsageRecordEdge {
  @Field() cursor!: string;
  @Field(() => UsageRecordType) node!: UsageRecordType;
}

@ObjectType({ description: 'Records newest first; the keyset cursor (createdAt, id) keeps pages stable while new records arrive' })
export class UsageRecordConnection {
  @Field(() => [UsageRecordEdge]) edges!: UsageRecordEdge[];
  @Field(() => PageInfo) pageInfo!: PageInfo;
}

@InputType()
export class UsageRecordFilter {
  @Field(() => ID, { nullable: true, description: 'admin only for another tenant; defaults to the caller’s tenant' }) tenantId?: string | null;
  @Field(() => Date, { nullable: true, description: 'inclusive' }) from?: Date | null;
  @Field(() => Date, { nullable: true, description: 'exclusive' }) to?: Date | null;
  @Field(() => ID, { nullable: true }) apiKeyId?: string | null;
  @Field(() => String, { nullable: true }) model?: string | null;
  @Field(() => UsageStatusValue, { nullable: true }) status?: UsageStatusName | null;
}
