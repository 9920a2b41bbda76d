/** GraphQL shapes of the limit status shown in `me`. */
import { Field, Float, Int, ObjectType, registerEnumType } from 'type-graphql';

@ObjectType('LimitState', { description: 'One limit as it stands for the calling key (nothing is consumed by reading it)' })
export class LimitStateType {
  @Field({
    description:
      'key_requests, key_compute_units, tenant_requests, tenant_compute_units, tenant_monthly_compute_units, key_monthly_compute_units (the key own monthly budget), key_monthly_spend / tenant_monthly_spend (money budgets, in micro-units of currency) or key_credits / tenant_credits (credit balances in compute units)',
  })
  name!: string;
  @Field(() => Float, { description: 'Allowed per window (requests, compute units, or micro-units for a money budget); for credits the refill amount, or the balance when higher or without refill' }) limit!: number;
  @Field(() => Float, { description: 'What is left now; for credits, the balance' }) remaining!: number;
  @Field(() => Int, { description: 'Seconds until capacity comes back: the oldest counted request leaves the rolling window, the month ends, or the next credit refill (without refill: 3600, a hint only)' })
  resetSeconds!: number;
  @Field(() => Int, { description: '60 for per-minute limits; the length of the current month for the quota and budgets; the refill period for credits (0: no refill)' }) windowSeconds!: number;
  @Field(() => String, { nullable: true, description: 'Money budgets only: the ISO 4217 currency of limit and remaining (micro-units)' }) currency?: string | null;
}

@ObjectType('MonthlyQuota', { description: "The tenant's compute units this calendar month (UTC)" })
export class MonthlyQuotaType {
  @Field(() => Float, { nullable: true, description: 'Compute units allowed this month; null: no monthly quota' }) limit!: number | null;
  @Field(() => Float, { description: 'Compute units billed this month so far (whole units)' }) used!: number;
  @Field(() => Float, { nullable: true, description: 'limit − used, at least 0; null: no monthly quota' }) remaining!: number | null;
  @Field({ description: 'Start of the next month (UTC), when used returns to 0' }) resetsAt!: Date;
}

@ObjectType('LimitStatus', { description: 'Every limit of the calling key as it stands now' })
export class LimitStatusType {
  @Field(() => [LimitStateType], { description: 'Empty when limits are disabled or cannot be read (Redis down, failure mode closed)' })
  limits!: LimitStateType[];
  @Field(() => MonthlyQuotaType, { description: "The tenant's monthly compute-unit quota" }) monthlyQuota!: MonthlyQuotaType;
  @Field({ description: 'Where the figures come from: redis, local (in-process limiter), disabled or unavailable' }) source!: string;
}

export enum LimitSourceValue {
  KEY = 'KEY',
  TENANT = 'TENANT',
  GATEWAY_DEFAULT = 'GATEWAY_DEFAULT',
  DISABLED = 'DISABLED',
}
registerEnumType(LimitSourceValue, {
  name: 'LimitSource',
  description: 'Where the value of a limit comes from',
  valuesConfig: {
    KEY: { description: "The key's own setting" },
    TENANT: { description: "The tenant's own setting" },
    GATEWAY_DEFAULT: { description: 'Not set on the key or tenant: the gateway default (DEFAULT_* settings) applies' },
    DISABLED: { description: 'Limits are off on this gateway (RATE_LIMITS_ENABLED=false): nothing is enforced' },
  },
});

@ObjectType('EffectiveLimit', { description: 'A limit as the gateway enforces it: the value and where it comes from' })
export class EffectiveLimitType {
  @Field(() => Float, { nullable: true, description: 'The value in force; null: no such limit (e.g. no monthly quota, or limits off)' }) value!: number | null;
  @Field(() => LimitSourceValue, { description: 'KEY or TENANT (its own setting), GATEWAY_DEFAULT, or DISABLED' }) source!: LimitSourceValue;
}

@ObjectType('TenantEffectiveLimits', { description: "A tenant's limits as enforced, the gateway defaults filled in where the tenant sets none" })
export class TenantEffectiveLimitsType {
  @Field(() => EffectiveLimitType, { description: 'Requests per rolling minute for the whole tenant' }) requestsPerMinute!: EffectiveLimitType;
  @Field(() => EffectiveLimitType, { description: 'Compute units per rolling minute for the whole tenant' }) computeUnitsPerMinute!: EffectiveLimitType;
  @Field(() => EffectiveLimitType, { description: 'Compute units per calendar month (UTC); value null: no monthly quota' }) monthlyComputeUnitQuota!: EffectiveLimitType;
}

@ObjectType('ApiKeyEffectiveLimits', { description: "A key's own per-minute limits as enforced, the gateway defaults filled in (its tenant's limits apply besides)" })
export class ApiKeyEffectiveLimitsType {
  @Field(() => EffectiveLimitType, { description: 'Requests per rolling minute for this key' }) requestsPerMinute!: EffectiveLimitType;
  @Field(() => EffectiveLimitType, { description: 'Compute units per rolling minute for this key' }) computeUnitsPerMinute!: EffectiveLimitType;
}
