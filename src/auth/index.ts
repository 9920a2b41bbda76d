/** What other domains use from auth. */
export { SCOPES, type Scope, type Principal } from './principal';
export { hasScope, isScope, assertModelAllowed, assertModelManageable, assertModelVisible, modelAllowed, modelOwner, missingScope, requireScope } from './scopes';
export { Authenticator, credentialFrom, INVALID_KEY_MESSAGE } from './authenticator';
export type { KeyInvalidator, InvalidationTarget } from './invalidation';
