/**
 * A request that presents a key which fails verification is refused as a
 * whole (401/403), even for public fields: a client sending a bad key should
 * learn so rather than get a partial answer.
 */
import type { ApolloServerPlugin } from '@apollo/server';
import { graphqlErrorFor } from '../../errors/contract';
import type { GraphQLContext } from './context';

export function authPlugin(): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ contextValue }) {
          const error = contextValue.authError;
          if (!error) return;
          throw graphqlErrorFor(error, { refusesRequest: true, originalError: error });
        },
      };
    },
  };
}
