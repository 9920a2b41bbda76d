/**
 * The schema's scalars. DateTimeISO is graphql-scalars' own (what type-graphql
 * maps Date to by default, serialized identically) with the specifiedByURL the
 * default lacks; JSON and SafeInt come from graphql-scalars with theirs.
 */
import { GraphQLScalarType } from 'graphql';
import { GraphQLDateTimeISO } from 'graphql-scalars';

export const DateTimeISO = new GraphQLScalarType({
  ...GraphQLDateTimeISO.toConfig(),
  description: 'A UTC instant as an RFC 3339 date-time string with milliseconds, e.g. 2026-12-01T10:15:30.000Z (inputs may carry any offset).',
  specifiedByURL: 'https://datatracker.ietf.org/doc/html/rfc3339#section-5.6',
});
