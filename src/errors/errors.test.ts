import { buildSchema, graphqlSync, GraphQLError } from 'graphql';
import { BadInputError, classifyError, domainErrorOf, httpStatusFor, RateLimitedError, toGraphQLError } from '.';
import { formatError } from '../server/graphql/apollo';

describe('error mapping', () => {
  it('maps domain errors to codes and HTTP statuses', () => {
    const gql = toGraphQLError(new RateLimitedError('slow down', { retryAfterSeconds: 3 }));
    expect(gql.extensions).toMatchObject({ code: 'RATE_LIMITED', retryAfterSeconds: 3, http: { status: 429 } });
    expect(httpStatusFor('UNAUTHENTICATED')).toBe(401);
    expect(httpStatusFor('FORBIDDEN')).toBe(403);
    expect(httpStatusFor('OVERLOADED')).toBe(503);
    expect(httpStatusFor('BAD_USER_INPUT')).toBeUndefined();
  });

  it('finds a domain error wrapped by graphql-js', () => {
    const inner = new BadInputError('bad shape', 'inputs[0].shape');
    const wrapped = new GraphQLError(inner.message, { originalError: inner });
    expect(domainErrorOf(wrapped)).toBe(inner);
    expect(formatError({ message: inner.message }, wrapped)).toEqual({
      message: 'bad shape',
      locations: undefined,
      path: undefined,
      extensions: { code: 'BAD_USER_INPUT', field: 'inputs[0].shape' },
    });
  });

  it('hides unexpected errors behind INTERNAL', () => {
    const wrapped = new GraphQLError('connection string postgres://secret@x failed', {
      originalError: new Error('connection string postgres://secret@x failed'),
    });
    expect(classifyError(wrapped)).toBe('internal');
    const shown = formatError({ message: wrapped.message }, wrapped);
    expect(shown).toMatchObject({ message: 'Internal server error', extensions: { code: 'INTERNAL' } });
    expect(JSON.stringify(shown)).not.toContain('secret');
  });

  it('passes client GraphQL errors through with their own code and no stack', () => {
    const syntax = new GraphQLError('Syntax Error: Expected Name, found <EOF>.', {
      extensions: { code: 'GRAPHQL_PARSE_FAILED' },
    });
    const shown = formatError(
      { message: syntax.message, extensions: { code: 'GRAPHQL_PARSE_FAILED', stacktrace: ['at parse'] } },
      syntax,
    );
    expect(shown).toEqual({ message: syntax.message, extensions: { code: 'GRAPHQL_PARSE_FAILED' } });
  });

  it('treats a result the scalar cannot serialize as internal', () => {
    const schema = buildSchema('type Query { x: [Float!]!, y(a: Int!): Int }');
    const result = graphqlSync({ schema, source: '{ x }', rootValue: { x: () => [1, NaN] } });
    const serialization = result.errors![0]!;
    expect(serialization.message).toMatch(/Float cannot represent/);
    expect(classifyError(serialization)).toBe('internal');
    expect(formatError({ message: serialization.message }, serialization)).toMatchObject({ message: 'Internal server error', extensions: { code: 'INTERNAL' } });
    // An argument error found during execution stays the client's.
    const argument = graphqlSync({ schema, source: 'query($a: Int = 1) { y(a: $a) }', variableValues: { a: null }, rootValue: { y: () => 1 } });
    expect(argument.errors?.[0]?.message).toMatch(/must not be null/);
    expect(classifyError(argument.errors![0]!)).toBe('client');
  });
});
