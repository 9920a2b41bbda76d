/**
 * type-graphql's auth checker: `@Authorized()` needs any valid key,
 * `@Authorized('scope')` needs that scope (or `admin`). Refusals throw domain
 * errors so the client gets UNAUTHENTICATED (401) or FORBIDDEN (403).
 */
import type { AuthCheckerFn } from 'type-graphql';
import { UnauthenticatedError } from '../../errors';
import type { GraphQLContext } from './context';
import { hasScope, isScope, missingScope } from '../../auth/scopes';

export const authChecker: AuthCheckerFn<GraphQLContext> = ({ context }, roles) => {
  const principal = context.principal;
  if (!principal) throw context.authError ?? new UnauthenticatedError();
  if (roles.length === 0) return true;
  for (const role of roles) {
    if (!isScope(role)) throw new Error(`@Authorized names an unknown scope "${role}"`);
    if (hasScope(principal, role)) return true;
  }
  throw missingScope(roles);
};
