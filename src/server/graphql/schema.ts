/**
 * Builds the GraphQL schema from the type-graphql resolvers. Each domain
 * contributes its resolver classes here; `npm run build` emits the SDL to
 * schema.graphql and a test fails when the committed file drifts.
 */
import 'reflect-metadata';
import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { buildSchema, type NonEmptyArray } from 'type-graphql';
import { HealthResolver } from './health/health.resolver';
import { InferenceResolver } from './inference/inference.resolver';
import { KeysResolver } from './keys/keys.resolver';
import { ApiKeyTenantResolver } from './keys/api-key-tenant.resolver';
import { ApiKeyCreditBalanceResolver } from './limits/credit-balance.resolver';
import { UsageResolver } from './usage/usage.resolver';
import { UsageRecordSpendResolver } from './usage/usage-record-spend.resolver';
import { BillingResolver } from './billing/billing.resolver';
import { authChecker } from './auth-checker';
import { MeLimitsResolver } from './limits/limits.resolver';
import { ApiKeyEffectiveLimitsResolver, TenantEffectiveLimitsResolver } from './limits/effective-limits.resolver';
import { WebhooksResolver } from './webhooks/webhooks.resolver';
import { NodeResolver } from './node.resolver';
import { DateTimeISO } from './scalars';

// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- type-graphql takes resolver classes as Function
export const RESOLVERS: NonEmptyArray<Function> = [ApiKeyCreditBalanceResolver, ApiKeyEffectiveLimitsResolver, ApiKeyTenantResolver, BillingResolver, HealthResolver, InferenceResolver, KeysResolver, MeLimitsResolver, NodeResolver, TenantEffectiveLimitsResolver, UsageRecordSpendResolver, UsageResolver, WebhooksResolver];

let cached: Promise<GraphQLSchema> | undefined;

/**
 * type-graphql has no option for the root types' descriptions; set them on the
 * built schema (before it is served or printed, so both see them).
 */
function describeRootTypes(schema: GraphQLSchema): GraphQLSchema {
  const query = schema.getQueryType();
  const mutation = schema.getMutationType();
  if (query) query.description = 'Reads. Every field but health needs an API key (Authorization: Bearer mg_live_…); the scope each needs is in its description.';
  if (mutation) mutation.description = 'Inference (infer, classify) and administration; each field names the scope it needs.';
  return schema;
}

/** The schema is the same for every gateway in a process; build it once. */
export function getSchema(): Promise<GraphQLSchema> {
  cached ??= buildSchema({
    resolvers: RESOLVERS,
    validate: false,
    scalarsMap: [{ type: Date, scalar: DateTimeISO }],
    // Every field but the public ones carries @Authorized(<scope>); see test/auth/schema-guard.test.ts.
    authChecker,
  }).then(describeRootTypes);
  return cached;
}

/** The SDL as committed in schema.graphql (sorted, so the file diff stays stable). */
export async function printSdl(): Promise<string> {
  return printSchema(lexicographicSortSchema(await getSchema())) + '\n';
}
