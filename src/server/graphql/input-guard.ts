/**
 * Checks every GraphQL request's inputs before graphql-js coerces them, so no
 * request can make the main thread pay for more than a bounded amount of
 * work, and no string the database would choke on gets that far:
 *
 * - JSON lists: at most GRAPHQL_MAX_LIST_ELEMENTS elements in all the
 *   request's variables together. graphql-js coerces each element on the
 *   event loop (~0.15 µs each here); 4 M pixels held every other client for
 *   over a second. Bulk data goes as dataBase64 / image, which is one string.
 * - Strings (variables and literals in the query): no NUL (Postgres refuses
 *   it in text), no unpaired UTF-16 surrogates (not encodable as UTF-8).
 * - `subscription` operations: the schema has none; a client mistake, not a
 *   server error.
 *
 * Each refusal is BAD_USER_INPUT (or GRAPHQL_VALIDATION_FAILED) with
 * `extensions.field` naming where: `$input.inputs[0].data` for a variable,
 * `tenant` or `filter.model` for an argument written in the query.
 */
import type { ApolloServerPlugin } from '@apollo/server';
import { visit, type GraphQLError, type DocumentNode } from 'graphql';
import { BadInputError, type DomainError } from '../../errors';
import { graphqlErrorFor } from '../../errors/contract';
import type { GraphQLContext } from './context';

interface Problem {
  message: string;
  field: string;
}

/** What a list is for decides where to send the client instead. */
function listAdvice(field: string): string {
  if (/\.data$/.test(field)) return 'send the tensor as dataBase64 (raw little-endian bytes)';
  if (/\.pixels$/.test(field)) return 'send the image as image (base64 of an encoded PNG, JPEG or WebP)';
  return 'send fewer values per request';
}

/** Why a string argument is refused, or null. */
export function stringProblem(value: string): string | null {
  if (value.includes('\u0000')) return 'contains a NUL character';
  if (!(value as unknown as { isWellFormed(): boolean }).isWellFormed()) return 'is not valid UTF-8 (an unpaired surrogate)';
  return null;
}

/** Walks raw (uncoerced) variables; the walk itself is bounded by the same element budget. */
export function checkVariables(variables: Record<string, unknown> | undefined, maxElements: number): Problem | null {
  if (!variables) return null;
  let remaining = maxElements;
  const walk = (value: unknown, field: string): Problem | null => {
    if (typeof value === 'string') {
      const problem = stringProblem(value);
      return problem ? { message: `${field} ${problem}`, field } : null;
    }
    if (Array.isArray(value)) {
      remaining -= value.length;
      if (remaining < 0) {
        return {
          message: `${field} has ${value.length} values; a request may hold at most ${maxElements} JSON list values in all (GRAPHQL_MAX_LIST_ELEMENTS): ${listAdvice(field)}`,
          field,
        };
      }
      for (let i = 0; i < value.length; i += 1) {
        const item: unknown = value[i];
        if (typeof item === 'number') continue;
        const problem = walk(item, `${field}[${i}]`);
        if (problem) return problem;
      }
      return null;
    }
    if (value !== null && typeof value === 'object') {
      for (const [key, child] of Object.entries(value)) {
        const problem = walk(child, `${field}.${key}`);
        if (problem) return problem;
      }
    }
    return null;
  };
  for (const [name, value] of Object.entries(variables)) {
    const problem = walk(value, `$${name}`);
    if (problem) return problem;
  }
  return null;
}

/**
 * Apollo's document store hands back the same parsed DocumentNode for a query
 * it has seen, and a document never changes: its verdict is computed once
 * (the walk was ~1 % of a small inference request's CPU).
 */
const documentVerdicts = new WeakMap<DocumentNode, Problem | null>();

/** String literals written in the query, named by their argument and input field path. */
export function checkDocumentStrings(document: DocumentNode): Problem | null {
  let verdict = documentVerdicts.get(document);
  if (verdict === undefined) {
    verdict = walkDocumentStrings(document);
    documentVerdicts.set(document, verdict);
  }
  return verdict;
}

function walkDocumentStrings(document: DocumentNode): Problem | null {
  const path: string[] = [];
  let found: Problem | null = null;
  visit(document, {
    Argument: { enter: (node) => void path.push(node.name.value), leave: () => void path.pop() },
    ObjectField: { enter: (node) => void path.push(node.name.value), leave: () => void path.pop() },
    StringValue(node) {
      if (found) return;
      const problem = stringProblem(node.value);
      const field = path.join('.') || 'query';
      if (problem) found = { message: `${field} ${problem}`, field };
    },
  });
  return found;
}

function refusal(error: DomainError): GraphQLError {
  // Refused before execution: the code's status (400), as for variables graphql-js rejects.
  return graphqlErrorFor(error, { refusesRequest: true, originalError: error });
}

export function inputGuardPlugin(options: { maxListElements: number }): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, document, operation }) {
          if (operation?.operation === 'subscription') {
            throw graphqlErrorFor({ code: 'GRAPHQL_VALIDATION_FAILED', message: 'This API has no subscriptions; use a query or a mutation', extensions: {} }, { refusesRequest: true });
          }
          const problem = checkVariables(request.variables, options.maxListElements) ?? checkDocumentStrings(document);
          if (problem) throw refusal(new BadInputError(problem.message, problem.field));
        },
      };
    },
  };
}
