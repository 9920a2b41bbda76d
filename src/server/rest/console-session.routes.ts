/**
 * The console's sign-in door (issue #26):
 *   POST   /console/session          a key in Authorization, once → session cookie + CSRF token
 *   GET    /console/session          is this browser signed in (CSRF token again, after a reload)?
 *                                    ?passive=1: the page's periodic check, not counted as use
 *   DELETE /console/session          sign out (CSRF header required)
 *   GET    /console/oidc/login       → the identity provider (when OIDC is configured)
 *   GET    /console/oidc/callback    ← the provider; session cookie, back to /console
 * Refusals are the error contract's JSON (401, 403, 503), or for the OIDC
 * redirects a return to /console#signin-error=CODE that the page explains.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ConsoleConfig } from '../../config';
import { NotFoundError, UnauthenticatedError, domainErrorOf, errorBody } from '../../errors';
import { statusFor } from '../../errors/contract';
import { credentialFrom } from '../../auth/authenticator';
import { SESSION_COOKIE, checkCsrf, sessionCookie, type ConsoleSessions, type OpenedSession } from '../../auth/console-sessions';
import type { OidcSignIn, OidcTransaction } from '../../auth/oidc';

const OIDC_COOKIE = 'mg_oidc';
const OIDC_COOKIE_PATH = '/console/oidc';
/** How long a person may take at the identity provider. */
const OIDC_TRANSACTION_SECONDS = 600;

export interface ConsoleSessionDeps {
  sessions: ConsoleSessions;
  oidc: OidcSignIn | null;
  config: ConsoleConfig;
}

export function registerConsoleSessionRoutes(app: FastifyInstance, deps: ConsoleSessionDeps): void {
  const { sessions, oidc, config } = deps;

  app.post('/console/session', async (request, reply) =>
    answer(request, reply, async () => {
      // The key only in a header: a cross-site form cannot send one, so nobody can sign a browser in to their own key.
      const key = credentialFrom(request.headers);
      if (!key) throw new UnauthenticatedError('Send the API key in the Authorization header to start a console session');
      const opened = await sessions.signInWithKey(key);
      setSessionCookie(request, reply, config, opened);
      return reply.code(201).send({ ...sessionBody(opened), traceUrlTemplate: config.traceUrlTemplate });
    }),
  );

  // ?passive=1: the page's periodic check, which does not count as use (idle timeout).
  app.get<{ Querystring: { passive?: string } }>('/console/session', async (request, reply) =>
    answer(request, reply, async () => {
      const token = sessionCookie(request.headers);
      const signedOut = { signedIn: false, oidc: oidc !== null };
      if (token === undefined) return reply.send(signedOut);
      try {
        const s = await sessions.resolve(token, { passive: request.query.passive === '1' });
        return reply.send({ signedIn: true, csrfToken: s.csrfToken, kind: s.kind, subject: s.subject, expiresAt: s.expiresAt.toISOString(), idleExpiresAt: s.idleExpiresAt.toISOString(), oidc: oidc !== null, traceUrlTemplate: config.traceUrlTemplate });
      } catch (error) {
        if (!(error instanceof UnauthenticatedError)) throw error;
        clearCookie(request, reply, config, SESSION_COOKIE, '/');
        return reply.send({ ...signedOut, ended: error.message });
      }
    }),
  );

  app.delete('/console/session', async (request, reply) =>
    answer(request, reply, async () => {
      const token = sessionCookie(request.headers);
      if (token !== undefined) {
        try {
          checkCsrf(request.headers, (await sessions.resolve(token)).csrfToken);
        } catch (error) {
          // An ended session is signed out already; only a live one needs the CSRF proof.
          if (!(error instanceof UnauthenticatedError)) throw error;
        }
        await sessions.signOut(token);
      }
      clearCookie(request, reply, config, SESSION_COOKIE, '/');
      return reply.code(204).send();
    }),
  );

  app.get('/console/oidc/login', async (request, reply) =>
    answer(request, reply, async () => {
      if (!oidc) throw new NotFoundError('OIDC sign-in is not configured on this gateway (OIDC_ISSUER_URL)');
      const { url, transaction } = await oidc.start();
      const value = Buffer.from(JSON.stringify(transaction)).toString('base64url');
      // Lax, not Strict: the provider's redirect back is a cross-site navigation, which must carry it.
      reply.header('set-cookie', cookie(OIDC_COOKIE, value, { path: OIDC_COOKIE_PATH, maxAge: OIDC_TRANSACTION_SECONDS, sameSite: 'Lax', secure: secureFor(request, config) }));
      return reply.redirect(url, 302);
    }),
  );

  app.get('/console/oidc/callback', async (request, reply) => {
    const endTransaction = cookie(OIDC_COOKIE, '', { path: OIDC_COOKIE_PATH, maxAge: 0, sameSite: 'Lax', secure: secureFor(request, config) });
    try {
      if (!oidc) throw new NotFoundError('OIDC sign-in is not configured on this gateway (OIDC_ISSUER_URL)');
      const transaction = transactionFrom(request);
      if (!transaction) throw new UnauthenticatedError('The sign-in with the identity provider expired or was started elsewhere; start it again');
      const identity = await oidc.finish(callbackUrl(request, config), transaction);
      const opened = await sessions.signInMinted({ tenant: config.oidc?.tenant ?? '', scopes: identity.scopes, subject: identity.subject });
      reply.header('set-cookie', [sessionCookieValue(request, config, opened), endTransaction]);
      return reply.redirect('/console', 303);
    } catch (error) {
      const domain = domainErrorOf(error);
      if (!domain) throw error;
      request.log.info({ code: domain.code, reason: domain.message }, 'console OIDC sign-in refused');
      reply.header('set-cookie', endTransaction);
      return reply.redirect(`/console#signin-error=${encodeURIComponent(domain.code)}`, 303);
    }
  });
}

/** Runs a handler; a domain error becomes the contract's JSON answer. */
async function answer(request: FastifyRequest, reply: FastifyReply, handler: () => Promise<FastifyReply>): Promise<FastifyReply> {
  reply.header('cache-control', 'no-store');
  try {
    return await handler();
  } catch (error) {
    const domain = domainErrorOf(error);
    if (!domain) throw error;
    return reply.code(statusFor(domain.code)).send(errorBody(domain.code, domain.message, request.id, domain.extensions));
  }
}

function sessionBody(opened: OpenedSession): Record<string, unknown> {
  return { signedIn: true, csrfToken: opened.csrfToken, expiresAt: opened.expiresAt.toISOString() };
}

function setSessionCookie(request: FastifyRequest, reply: FastifyReply, config: ConsoleConfig, opened: OpenedSession): void {
  reply.header('set-cookie', sessionCookieValue(request, config, opened));
}

function sessionCookieValue(request: FastifyRequest, config: ConsoleConfig, opened: OpenedSession): string {
  const maxAge = Math.max(1, Math.floor((opened.expiresAt.getTime() - Date.now()) / 1000));
  // Path=/: /graphql and /usage.csv read it. No Domain: this host only.
  return cookie(SESSION_COOKIE, opened.token, { path: '/', maxAge, sameSite: 'Strict', secure: secureFor(request, config) });
}

function clearCookie(request: FastifyRequest, reply: FastifyReply, config: ConsoleConfig, name: string, path: string): void {
  reply.header('set-cookie', cookie(name, '', { path, maxAge: 0, sameSite: 'Strict', secure: secureFor(request, config) }));
}

function cookie(name: string, value: string, o: { path: string; maxAge: number; sameSite: 'Strict' | 'Lax'; secure: boolean }): string {
  return `${name}=${value}; Path=${o.path}; Max-Age=${o.maxAge}; HttpOnly; SameSite=${o.sameSite}${o.secure ? '; Secure' : ''}`;
}

/** Secure when the browser reached us over TLS: directly, or through a proxy that says so (it can only make the cookie stricter). */
function secureFor(request: FastifyRequest, config: ConsoleConfig): boolean {
  if (config.cookieSecure !== 'auto') return config.cookieSecure === 'always';
  const forwarded = request.headers['x-forwarded-proto'];
  const proto = (Array.isArray(forwarded) ? forwarded[0] : forwarded)?.split(',')[0]?.trim().toLowerCase();
  return request.protocol === 'https' || proto === 'https';
}

function transactionFrom(request: FastifyRequest): OidcTransaction | null {
  const header = request.headers.cookie ?? '';
  const part = header.split(';').map((p) => p.trim()).find((p) => p.startsWith(`${OIDC_COOKIE}=`));
  if (!part) return null;
  try {
    const value = JSON.parse(Buffer.from(part.slice(OIDC_COOKIE.length + 1), 'base64url').toString('utf8')) as Partial<OidcTransaction>;
    if (typeof value.state !== 'string' || typeof value.nonce !== 'string' || typeof value.verifier !== 'string') return null;
    return { state: value.state, nonce: value.nonce, verifier: value.verifier };
  } catch {
    return null;
  }
}

/** The URL the provider redirected to, as registered (OIDC_REDIRECT_URL) plus the query it sent. */
function callbackUrl(request: FastifyRequest, config: ConsoleConfig): URL {
  const url = new URL(config.oidc?.redirectUrl ?? 'http://invalid/');
  url.search = new URL(request.url, 'http://x').search;
  return url;
}
