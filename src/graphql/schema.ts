/**
 * Builds the GraphQL schema from the type-graphql resolvers. Each domain
 * contributes its resolver classes here; `npm run build` emits the SDL to
 * schema.graphql and a test fails when the committed file drifts.
 */
import 'reflect-metadata';
import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import { buildSchema, type NonEmptyArray } from 'type-graphql';
import { HealthResolver } from '../health/health.resolver';
import { InferenceResolver } from '../inference/inference.resolver';
import { KeysResolver } from '../keys/keys.resolver';
import { UsageResolver } from '../usage/usage.resolver';
import { BillingResolver } from '../billing/billing.resolver';
import { authChecker } from '../auth/auth-checker';
import { MeLimitsResolver } from '../ratelimit/limits.resolver';
import { WebhooksResolver } from '../webhooks/webhooks.resolver';

// eslint-disable-next-line @typescript-eslint/no-unsafe-function-type -- type-graphql takes resolver classes as Function
export const RESOLVERS: NonEmptyArray<Function> = [BillingResolver, HealthResolver, InferenceResolver, KeysResolver, MeLimitsResolver, UsageResolver, WebhooksResolver];

let cached: Promise<GraphQLSchema> | undefined;

/** The schema is the same for every gateway in a process; build it once. */
export function getSchema(): Promise<GraphQLSchema> {
  cached ??= buildSchema({
    resolvers: RESOLVERS,
    validate: false,
    // Every field but the public ones carries @Authorized(<scope>); see test/auth/schema-guard.test.ts.
    authChecker,
  });
  return cached;
}

/** The SDL as committed in schema.graphql (sorted, so the file diff stays stable). */
export async function printSdl(): Promise<string> {
  return printSchema(lexicographicSortSchema(await getSchema())) + '\n';
}
