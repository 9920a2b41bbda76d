/** GraphQL shapes of the limit status shown in `me`. */
import { Field, Float, Int, ObjectType } from 'type-graphql';

@ObjectType('LimitState', { description: 'One limit as it stands for the calling key (nothing is consumed by reading it)' })
export class LimitStateType {
  @Field({ description: "key_requests, key_compute_units, tenant_requests, tenant_compute_units, tenant_monthly_compute_units or key_monthly_compute_units (the key's own monthly budget)" })
  name!: string;
  @Field(() => Float, { description: 'Allowed per window (requests or compute units)' }) limit!: number;
  @Field(() => Float, { description: 'Left in the current window, 0 or more' }) remaining!: number;
  @Field(() => Int, { description: 'Seconds until capacity comes back: the oldest counted request leaves the rolling window, or the month ends' })
  resetSeconds!: number;
  @Field(() => Int, { description: '60 for per-minute limits; the length of the current month for the quota' }) windowSeconds!: number;
}

@ObjectType('MonthlyQuota', { description: "The tenant's compute units this calendar month (UTC)" })
export class MonthlyQuotaType {
  @Field(() => Float, { nullable: true, description: 'Compute units allowed this month; null: no monthly quota' }) limit!: number | null;
  @Field(() => Float, { description: 'Compute units billed this month so far (whole units)' }) used!: number;
  @Field(() => Float, { nullable: true, description: 'limit − used, at least 0; null: no monthly quota' }) remaining!: number | null;
  @Field({ description: 'Start of the next month (UTC), when used returns to 0' }) resetsAt!: Date;
}

@ObjectType('LimitStatus', { description: 'The limits that apply to the calling key, as they stand now' })
export class LimitStatusType {
  @Field(() => [LimitStateType], { description: 'Empty when limits are disabled or cannot be read (Redis down, failure mode closed)' })
  limits!: LimitStateType[];
  @Field(() => MonthlyQuotaType, { description: "The tenant's monthly compute-unit quota" }) monthlyQuota!: MonthlyQuotaType;
  @Field({ description: 'Where the figures come from: redis, local (in-process limiter), disabled or unavailable' }) source!: string;
}
