/**
 * OIDC single sign-on for the console (issue #26) through `openid-client`
 * (authorization code flow with PKCE, state and nonce). The provider's roles
 * (OIDC_ROLE_CLAIM, from the ID token or else userinfo) map to gateway scopes
 * through OIDC_ROLE_SCOPES; a person whose roles map to none is refused.
 *
 * The flow's state, nonce and PKCE verifier travel in a short-lived HttpOnly
 * cookie of their own (the door sets it), so any replica can finish a
 * sign-in another one started.
 */
import type { OidcConfig } from '../config';
import { ForbiddenError, UnauthenticatedError, UnavailableError } from '../errors';
import type { Logger } from '../log/logger';
import type { Scope } from './principal';
import { isScope } from './scopes';

/** openid-client is ESM-only; loaded with import() from this CommonJS build (kept as import() by module node16). */
type OidcLib = typeof import('openid-client', { with: { 'resolution-mode': 'import' } });
type OidcConfiguration = Awaited<ReturnType<OidcLib['discovery']>>;

export interface OidcTransaction {
  state: string;
  nonce: string;
  verifier: string;
}

export interface OidcIdentity {
  /** The provider's subject, or its email when it gives one (audit and key names read better). */
  subject: string;
  roles: string[];
  scopes: Scope[];
}

export class OidcSignIn {
  private discovered: Promise<{ lib: OidcLib; config: OidcConfiguration }> | undefined;

  constructor(
    private readonly config: OidcConfig,
    private readonly log: Logger,
  ) {}

  /** The provider's authorization URL and the transaction to keep until the callback. */
  async start(): Promise<{ url: string; transaction: OidcTransaction }> {
    const { lib, config } = await this.client();
    const transaction = { state: lib.randomState(), nonce: lib.randomNonce(), verifier: lib.randomPKCECodeVerifier() };
    const url = lib.buildAuthorizationUrl(config, {
      redirect_uri: this.config.redirectUrl,
      scope: this.config.scopes,
      code_challenge: await lib.calculatePKCECodeChallenge(transaction.verifier),
      code_challenge_method: 'S256',
      state: transaction.state,
      nonce: transaction.nonce,
    });
    return { url: url.href, transaction };
  }

  /** Finishes the sign-in at the callback: the code is exchanged and checked, the roles mapped. */
  async finish(callbackUrl: URL, transaction: OidcTransaction): Promise<OidcIdentity> {
    const { lib, config } = await this.client();
    let claims: Record<string, unknown>;
    let accessToken: string | undefined;
    try {
      const tokens = await lib.authorizationCodeGrant(config, callbackUrl, {
        pkceCodeVerifier: transaction.verifier,
        expectedState: transaction.state,
        expectedNonce: transaction.nonce,
        idTokenExpected: true,
      });
      claims = { ...(tokens.claims() ?? {}) };
      accessToken = tokens.access_token;
    } catch (error) {
      this.log.info({ reason: error instanceof Error ? error.message : String(error) }, 'OIDC sign-in refused');
      throw new UnauthenticatedError('The sign-in with the identity provider did not complete; try again');
    }
    const sub = String(claims['sub'] ?? '');
    if (claims[this.config.roleClaim] === undefined && accessToken) {
      try {
        claims = { ...(await lib.fetchUserInfo(config, accessToken, sub)), ...claims };
      } catch (error) {
        this.log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'OIDC userinfo failed');
      }
    }
    const roles = rolesOf(claims[this.config.roleClaim]);
    const scopes = scopesFor(roles, this.config.roleScopes);
    const subject = typeof claims['email'] === 'string' && claims['email'] !== '' ? claims['email'] : sub;
    if (scopes.length === 0) {
      throw new ForbiddenError(`${subject} has no role that grants a console scope (roles: ${roles.join(', ') || 'none'})`, { reason: 'NO_MAPPED_ROLE' });
    }
    return { subject, roles, scopes };
  }

  /** Discovery once; a failure is retried on the next sign-in rather than remembered. */
  private client(): Promise<{ lib: OidcLib; config: OidcConfiguration }> {
    this.discovered ??= (async () => {
      const lib = await import('openid-client');
      const auth = this.config.clientSecret === null ? lib.None() : lib.ClientSecretBasic(this.config.clientSecret);
      const options = this.config.allowInsecure ? { execute: [lib.allowInsecureRequests] } : {};
      const config = await lib.discovery(new URL(this.config.issuer), this.config.clientId, undefined, auth, options);
      return { lib, config };
    })();
    return this.discovered.catch((error: unknown) => {
      this.discovered = undefined;
      this.log.warn({ reason: error instanceof Error ? error.message : String(error) }, 'OIDC discovery failed');
      throw new UnavailableError('The identity provider cannot be reached right now; retry shortly');
    });
  }
}

/** A role claim as a list: an array of strings, or one string (space- or comma-separated). */
export function rolesOf(value: unknown): string[] {
  if (Array.isArray(value)) return value.filter((v): v is string => typeof v === 'string');
  if (typeof value === 'string') return value.split(/[\s,]+/).filter(Boolean);
  return [];
}

/** The union of the scopes the roles map to, in the gateway's own order. */
export function scopesFor(roles: string[], roleScopes: Record<string, string[]>): Scope[] {
  const granted = new Set(roles.flatMap((role) => roleScopes[role] ?? []));
  return [...granted].filter(isScope);
}
