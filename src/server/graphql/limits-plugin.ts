/**
 * Where limits meet the GraphQL request path. The Apollo plugin consumes the
 * request limits once for every authenticated operation, after
 * authentication and before execution, except operations with an inference
 * root field (`infer`, `classify`): those go through the inference pipeline,
 * which checks the compute units of the request (items x model cost) and
 * whose decision the resolver puts on the context. Every authenticated
 * response carries the RateLimit headers of the decision made for it.
 */
import type { ApolloServerPlugin } from '@apollo/server';
import { Kind, type GraphQLError, type DocumentNode, type OperationDefinitionNode, type SelectionSetNode } from 'graphql';
import type { GraphQLContext } from './context';
import type { DomainError } from '../../errors';
import { graphqlErrorFor } from '../../errors/contract';
import { limitError, rateLimitHeaders } from '../../ratelimit/headers';
import type { LimitDecision } from '../../ratelimit/types';
import { admitInSpan } from '../../ratelimit/admit';

/** Root fields whose resolvers meter themselves (with compute units). */
export const SELF_METERED_ROOT_FIELDS = new Set(['infer', 'classify']);

/** Remembers the decision whose headers this response carries (the latest wins). */
export function recordLimitDecision(context: GraphQLContext, decision: LimitDecision | null): void {
  if (decision) context.limitDecision = decision;
}

/** Per cached document and operation (both immutable): the answer is computed once per query text. */
const selfMetered = new WeakMap<DocumentNode, Map<OperationDefinitionNode, boolean>>();

/** Whether the operation selects `infer`/`classify` at its root (through fragments too). */
export function selectsSelfMeteredField(document: DocumentNode, operation: OperationDefinitionNode): boolean {
  let answers = selfMetered.get(document);
  if (!answers) {
    answers = new Map();
    selfMetered.set(document, answers);
  }
  let answer = answers.get(operation);
  if (answer === undefined) {
    answer = walkSelfMetered(document, operation);
    answers.set(operation, answer);
  }
  return answer;
}

function walkSelfMetered(document: DocumentNode, operation: OperationDefinitionNode): boolean {
  const fragments = new Map<string, SelectionSetNode>();
  for (const def of document.definitions) {
    if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def.selectionSet);
  }
  const seen = new Set<string>();
  const visit = (set: SelectionSetNode): boolean =>
    set.selections.some((s) => {
      if (s.kind === Kind.FIELD) return SELF_METERED_ROOT_FIELDS.has(s.name.value);
      if (s.kind === Kind.INLINE_FRAGMENT) return visit(s.selectionSet);
      if (seen.has(s.name.value)) return false;
      seen.add(s.name.value);
      const fragment = fragments.get(s.name.value);
      return fragment ? visit(fragment) : false;
    });
  return visit(operation.selectionSet);
}

/** A GraphQL error that keeps the domain error (for formatError) and its HTTP status. */
function asGraphQLError(error: DomainError): GraphQLError {
  return graphqlErrorFor(error, { refusesRequest: true, originalError: error });
}

export function rateLimitPlugin(): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ contextValue, document, operation }) {
          const principal = contextValue.principal;
          if (!principal || !contextValue.services.config.limits.enabled) return;
          if (operation && selectsSelfMeteredField(document, operation)) {
            // The resolver meters it; if it never runs (@skip, bad variables), willSendResponse does.
            contextValue.limitsDeferred = true;
            return;
          }
          const decision = await admitInSpan(contextValue.services.limits, principal, { computeUnits: 0 }, contextValue.trace);
          recordLimitDecision(contextValue, decision);
          if (!decision.allowed) throw asGraphQLError(limitError(decision));
        },
        async willSendResponse({ contextValue, response }) {
          const principal = contextValue.principal;
          if (!principal || !contextValue.services.config.limits.enabled) return;
          let decision = contextValue.limitDecision ?? undefined;
          if (!decision && contextValue.limitsDeferred) {
            // An inference operation whose resolver never metered it still costs one request.
            try {
              decision = await contextValue.services.limits.check(principal, { computeUnits: 0 });
            } catch {
              return;
            }
          }
          if (!decision) {
            // No check ran (a document that failed validation, or an inference
            // call that failed before metering): show the state without consuming.
            try {
              const status = await contextValue.services.limits.status(principal);
              decision = { allowed: true, states: status.limits, source: 'local' };
            } catch {
              return;
            }
          }
          for (const [name, value] of Object.entries(rateLimitHeaders(decision))) response.http.headers.set(name, value);
        },
      };
    },
  };
}
