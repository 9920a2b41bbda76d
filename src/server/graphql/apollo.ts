/**
 * Apollo Server set-up: schema, query limits (graphql-armor), error
 * formatting through the one error module, request ids in every error.
 */
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled, ApolloServerPluginUsageReportingDisabled } from '@apollo/server/plugin/disabled';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import type { Config } from '../../config';
import type { GraphQLContext } from './context';
import { getSchema } from './schema';
import { authPlugin } from './auth-plugin';
import { classifyError, domainErrorOf, isDependencyUnavailable, PUBLIC_ERROR_CODES, toGraphQLError, UnavailableError } from '../../errors';
import { graphqlStatusFor, statusFor } from '../../errors/contract';
import { inputGuardPlugin } from './input-guard';
import { finalizeUsage } from './pending-usage';
import { rateLimitPlugin } from './limits-plugin';
import { ATTR } from '../../tracing/attributes';

/** Logs unexpected errors with the request id and stamps the id on every error sent. */
function errorPlugin(): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async didEncounterErrors({ errors, contextValue }) {
          for (const error of errors) {
            if (classifyError(error) === 'internal') {
              contextValue.log.error({ err: error.originalError ?? error, path: error.path }, 'unexpected error in GraphQL request');
            }
          }
        },
        async willSendResponse({ response, contextValue }) {
          // Answers carry keys, usage and spend: no cache keeps them (what Apollo's cache-control plugin, disabled below, sent).
          response.http.headers.set('cache-control', 'no-store');
          if (response.body.kind !== 'single') return;
          const sent = response.body.singleResult.errors;
          if (sent) {
            response.body.singleResult.errors = sent.map((e) => ({
              ...e,
              extensions: { ...e.extensions, requestId: contextValue.requestId },
            }));
          }
          // The HTTP status follows the error contract (src/errors/contract.ts), as sent.
          if (sent && response.http.status === undefined) {
            response.http.status = graphqlStatusFor(sent, response.body.singleResult.data != null);
          }
          // Usage records are written once the answer is known, so their status matches it, and
          // durably before it is sent (the write-ahead log): an answered request survives kill -9.
          try {
            const pending = contextValue.pendingUsage;
            if (pending.length > 0) {
              await contextValue.trace.step('record', () => finalizeUsage(pending, contextValue.services.usage, sent ?? []), { [ATTR.usageRecords]: pending.length });
            }
          } catch (error) {
            // Stored nowhere (log and database both failing): the answer must not go out unmetered.
            contextValue.log.error({ err: error }, 'usage record could not be stored; answering UNAVAILABLE');
            const unavailable = new UnavailableError();
            response.body.singleResult.data = null;
            response.body.singleResult.errors = [
              { message: unavailable.message, extensions: { code: unavailable.code, requestId: contextValue.requestId } },
            ];
            response.http.status = statusFor(unavailable.code);
          }
        },
      };
    },
  };
}

/** Shapes what the client sees: domain errors keep their code; unknown failures become INTERNAL. */
export function formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
  const domain = domainErrorOf(error);
  if (domain) {
    const mapped = toGraphQLError(domain);
    const { http: _http, ...extensions } = mapped.extensions;
    return { message: mapped.message, locations: formatted.locations, path: formatted.path, extensions };
  }
  if (classifyError(error) === 'client') {
    const { stacktrace: _stack, ...extensions } = formatted.extensions ?? {};
    const code = extensions['code'];
    // graphql-js and Apollo text names the schema and the request, never internals; a code
    // outside the public list (a library's own) becomes the generic client one.
    if (typeof code !== 'string' || !PUBLIC_ERROR_CODES.has(code)) extensions['code'] = 'BAD_REQUEST';
    return { ...formatted, extensions };
  }
  if (isDependencyUnavailable(error)) {
    const unavailable = new UnavailableError();
    return { message: unavailable.message, locations: formatted.locations, path: formatted.path, extensions: { code: unavailable.code } };
  }
  return {
    message: 'Internal server error',
    locations: formatted.locations,
    path: formatted.path,
    extensions: { code: 'INTERNAL' },
  };
}

export async function createApollo(config: Config): Promise<ApolloServer<GraphQLContext>> {
  const armor = new ApolloArmor({
    maxDepth: { n: config.graphql.maxDepth },
    maxAliases: { n: config.graphql.maxAliases },
    // Token limits are enforced by graphql-js's own parser (parseOptions below), so
    // syntax errors keep Apollo's 400 GRAPHQL_PARSE_FAILED.
    maxTokens: { enabled: false },
    costLimit: { maxCost: config.graphql.maxCost },
    // Field suggestions help developers; hide them where introspection is off.
    blockFieldSuggestion: { enabled: !config.graphql.introspection },
  }).protect();
  const apollo = new ApolloServer<GraphQLContext>({
    schema: await getSchema(),
    introspection: config.graphql.introspection,
    allowBatchedHttpRequests: false,
    // main.ts owns SIGTERM/SIGINT (drain, flush, exit 0). Apollo's own handler would stop
    // the server and re-send the signal, killing in-flight requests; under NODE_ENV=test it
    // installs none, which is why only a child-process test sees the difference.
    stopOnTerminationSignals: false,
    parseOptions: { maxTokens: config.graphql.maxTokens },
    includeStacktraceInErrorResponses: false,
    validationRules: armor.validationRules,
    plugins: [inputGuardPlugin({ maxListElements: config.graphql.maxListElements }), ...(armor.plugins as ApolloServerPlugin<GraphQLContext>[]), ApolloServerPluginLandingPageDisabled(),
      // The schema has no cache hints, and the plugin's per-field hook made Apollo wrap every resolver (~5 % of a request's allocations).
      ApolloServerPluginCacheControlDisabled(),
      // Nothing goes to Apollo's cloud, whatever APOLLO_KEY the environment holds (config/ parses every variable the gateway reads).
      ApolloServerPluginUsageReportingDisabled(),
      authPlugin(), errorPlugin(), rateLimitPlugin()],
    formatError,
  });
  await apollo.start();
  return apollo;
}

export { GraphQLError };
