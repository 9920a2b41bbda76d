/** GraphQL types of the billing API. */
import { Field, Float, ID, InputType, ObjectType, registerEnumType } from 'type-graphql';
import { GraphQLSafeInt } from 'graphql-scalars';
import { PageInfo } from '../keys/keys.types';
import { Node } from '../node';
import { Money } from '../billing/billing.types';
import { USAGE_PROTOCOLS, USAGE_STATUSES, type UsageProtocolName, type UsageStatusName } from '../../../usage/usage-event';
import { USAGE_GROUP_BY, type UsageGroupBy } from '../../../usage/usage-queries';

export const UsageStatusValue = Object.fromEntries(USAGE_STATUSES.map((s) => [s, s])) as { [K in UsageStatusName]: K };
registerEnumType(UsageStatusValue, {
  name: 'UsageStatus',
  description: 'Outcome of a metered request: OK, or why it was refused or failed (only OK is billed)',
  valuesConfig: {
    OK: { description: 'Served and billed' },
    BAD_INPUT: { description: 'Refused: invalid, unknown or not allowed (BAD_USER_INPUT, NOT_FOUND, FORBIDDEN)' },
    RATE_LIMITED: { description: 'Refused by a per-minute limit (RATE_LIMITED)' },
    QUOTA_EXCEEDED: { description: 'Refused by the monthly quota or the key budget (QUOTA_EXCEEDED)' },
    OVERLOADED: { description: 'Refused: the queue was full or the model unavailable (OVERLOADED, MODEL_UNAVAILABLE)' },
    TIMEOUT: { description: 'Dropped: still queued at its deadline (TIMEOUT)' },
    ERROR: { description: 'Failed inside the gateway or the model (INTERNAL and any other code)' },
  },
});

export const UsageProtocolValue = Object.fromEntries(USAGE_PROTOCOLS.map((s) => [s, s])) as { [K in UsageProtocolName]: K };
registerEnumType(UsageProtocolValue, {
  name: 'UsageProtocol',
  description: 'The front door a metered request came through',
  valuesConfig: {
    GRAPHQL: { description: 'POST /graphql (infer, classify, explain)' },
    REST: { description: 'The Open Inference Protocol over HTTP (/v2/…)' },
    GRPC: { description: 'The Open Inference Protocol over gRPC (GRPC_PORT)' },
    UNKNOWN: { description: 'Recorded before usage records carried their protocol' },
  },
});

export const UsageGroupByValue = Object.fromEntries(USAGE_GROUP_BY.map((s) => [s, s])) as { [K in UsageGroupBy]: K };
registerEnumType(UsageGroupByValue, {
  name: 'UsageGroupBy',
  description: 'Dimensions of usageSummary; HOUR and DAY are UTC',
  valuesConfig: {
    HOUR: { description: 'One row per UTC hour (sets hour)' },
    DAY: { description: 'One row per UTC day (sets day)' },
    MODEL: { description: 'One row per model (sets model)' },
    API_KEY: { description: 'One row per key (sets apiKeyId)' },
    STATUS: { description: 'One row per outcome (sets status)' },
    PROTOCOL: { description: 'One row per front door: GRAPHQL, REST, GRPC (sets protocol)' },
  },
});

@ObjectType({ description: 'Usage totals for one group (the grouped fields are set, the others null)' })
export class UsageSummaryRow {
  @Field(() => Date, { nullable: true, description: 'Start of the UTC hour (groupBy HOUR)' }) hour!: Date | null;
  @Field(() => Date, { nullable: true, description: 'Start of the UTC day (groupBy DAY)' }) day!: Date | null;
  @Field(() => String, { nullable: true, description: 'Model name (groupBy MODEL)' }) model!: string | null;
  @Field(() => ID, { nullable: true, description: 'Key id (groupBy API_KEY); null in an API_KEY group: requests without a key' }) apiKeyId!: string | null;
  @Field(() => UsageStatusValue, { nullable: true, description: 'Outcome (groupBy STATUS)' }) status!: UsageStatusName | null;
  @Field(() => UsageProtocolValue, { nullable: true, description: 'Front door (groupBy PROTOCOL)' }) protocol!: UsageProtocolName | null;
  @Field(() => GraphQLSafeInt, { description: 'Metered requests' }) requests!: number;
  @Field(() => GraphQLSafeInt, { description: 'Items (images, batch rows, explain perturbations) in them' }) items!: number;
  // Float, not Int: a month's sum can pass 2^31 − 1. Not SafeInt: the column is double precision and
  // records written before units were rounded up (or by direct ingestion) may hold fractions.
  @Field(() => Float, { description: 'Compute units billed: a sum of whole units per request (exact to 2^53; can pass 2^31, so not Int)' }) computeUnits!: number;
  @Field(() => GraphQLSafeInt, { description: 'Requests whose status is not OK' }) errors!: number;
  @Field(() => Float, { nullable: true, description: 'Exact mean latency' }) avgLatencyMs!: number | null;
  @Field(() => Float, { nullable: true, description: 'Estimated from log-spaced latency buckets (within ×1.25 of the true value)' })
  p50LatencyMs!: number | null;
  @Field(() => Float, { nullable: true, description: 'Estimated from log-spaced latency buckets (within ×1.25 of the true value)' })
  p95LatencyMs!: number | null;
  @Field(() => [Money], { description: 'Priced spend per currency: compute units × the price in effect at each hour (exact micro-units)' }) spend!: Money[];
  @Field(() => Float, { description: 'Compute units of OK requests with no price in effect (not in spend); whole, like computeUnits' }) unpricedComputeUnits!: number;
}

@ObjectType('UsageRecord', { implements: Node, description: 'One metered request. Holds no inputs or outputs.' })
export class UsageRecordType implements Node {
  @Field(() => ID, { description: 'The request id (x-request-id): a client-chosen one gets a random suffix, and each further inference call of one operation #2, #3, …' }) id!: string;
  @Field(() => ID, { description: 'Tenant billed' }) tenantId!: string;
  @Field(() => ID, { nullable: true, description: 'Key that made the request; null when it had none' }) apiKeyId!: string | null;
  @Field({ description: 'Model asked for' }) model!: string;
  @Field(() => String, { nullable: true, description: 'Version that ran; null when refused before one was chosen' }) modelVersion!: string | null;
  @Field(() => GraphQLSafeInt, { description: 'Items (images, batch rows, explain perturbations) in the request' }) items!: number;
  @Field(() => Float, { description: 'Compute units billed: ceil(items × model cost), a whole number (Float for the sums it adds to); 0 unless status is OK' }) computeUnits!: number;
  @Field(() => UsageStatusValue, { description: 'Outcome' }) status!: UsageStatusName;
  @Field(() => Float, { description: 'Milliseconds in the gateway, call to answer' }) latencyMs!: number;
  @Field(() => Float, { description: 'Milliseconds queued before its batch ran' }) queueMs!: number;
  @Field(() => Float, { description: 'Milliseconds of model execution of its batch' }) computeMs!: number;
  @Field(() => String, { nullable: true, description: 'cpu or cuda; null when nothing ran' }) executionProvider!: string | null;
  @Field(() => UsageProtocolValue, { description: 'Front door the request came through (UNKNOWN: recorded before this field existed)' }) protocol!: UsageProtocolName;
  @Field({ description: 'When the request was recorded' }) createdAt!: Date;
  @Field(() => String, { nullable: true, description: "The W3C trace id (32 hex) of the request's span when tracing recorded it (an OTLP exporter set and the span sampled); null otherwise" })
  traceId!: string | null;
}

@ObjectType({ description: 'One usage record in a page, with its cursor' })
export class UsageRecordEdge {
  @Field({ description: 'Opaque keyset cursor of this edge, for after' }) cursor!: string;
  @Field(() => UsageRecordType, { description: 'The record' }) node!: UsageRecordType;
}

@ObjectType({ description: 'Records newest first; the keyset cursor (createdAt, id) keeps pages stable while new records arrive' })
export class UsageRecordConnection {
  @Field(() => [UsageRecordEdge], { description: 'The page, newest first' }) edges!: UsageRecordEdge[];
  @Field(() => PageInfo, { description: 'Whether more pages follow, and the cursors' }) pageInfo!: PageInfo;
}

@InputType({ description: 'Which usage records to list; absent fields do not filter' })
export class UsageRecordFilter {
  @Field(() => ID, { nullable: true, description: 'Tenant to read (admin only for another tenant); default: the caller’s tenant' }) tenantId?: string | null;
  @Field(() => Date, { nullable: true, description: 'Earliest createdAt, inclusive' }) from?: Date | null;
  @Field(() => Date, { nullable: true, description: 'Latest createdAt, exclusive' }) to?: Date | null;
  @Field(() => ID, { nullable: true, description: 'Only this key (a UUID)' }) apiKeyId?: string | null;
  @Field(() => String, { nullable: true, description: 'Only this model' }) model?: string | null;
  @Field(() => UsageStatusValue, { nullable: true, description: 'Only this outcome' }) status?: UsageStatusName | null;
  @Field(() => UsageProtocolValue, { nullable: true, description: 'Only this front door' }) protocol?: UsageProtocolName | null;
}
