/**
 * Web console sessions (issue #26). A person exchanges an API key once (or
 * signs in through OIDC, which mints a key of its own) for a random token the
 * browser keeps only in an HttpOnly, SameSite=Strict cookie; the key never
 * reaches browser storage.
 *
 * Sessions live in Postgres (ConsoleSession), not Redis: every replica reads
 * the same rows (Redis is optional here, and a Redis without persistence
 * would sign everyone out on a restart), the row references the key it is
 * bound to, and embedded mode has the same table. Each request verifies that
 * key by its hash through the Authenticator, so the key cache's revocation
 * broadcast (Redis pub/sub and pg_notify) ends a session on its next request.
 *
 * CSRF: SameSite=Strict, plus a token in the `x-csrf-token` header on every
 * cookie-authenticated request that is not GET/HEAD (a /graphql query is a
 * POST too). The token is derived from the session token (SHA-256 with a
 * label), so it needs no storage and only a page that can read the
 * same-origin session answer knows it.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Database } from '../db/database';
import { ForbiddenError, UnauthenticatedError } from '../errors';
import type { Logger } from '../log/logger';
import { hashKey, isWellFormedKey } from '../ids/key-format';
import { credentialFrom, type Authenticator, type HeaderBag } from './authenticator';
import type { Principal, Scope } from './principal';

export const SESSION_COOKIE = 'mg_session';
export const CSRF_HEADER = 'x-csrf-token';

/** What every refusal of an ended session says (one message: idle, absolute, signed out, unknown). */
export const SESSION_ENDED_MESSAGE = 'The console session has ended (signed out, timed out or its key was revoked); sign in again';

export interface SessionTimeouts {
  idleTimeoutMs: number;
  absoluteTimeoutMs: number;
}

/** Mints and revokes the key an OIDC sign-in acts with (the key service, wired in the composition root). */
export interface SessionKeyMinter {
  mint(input: { tenant: string; scopes: Scope[]; subject: string; expiresAt: Date }): Promise<{ apiKeyId: string; hash: string; prefix: string }>;
  revoke(apiKeyId: string, subject: string): Promise<void>;
}

export interface SessionRequest {
  method: string;
  headers: HeaderBag;
}

export interface OpenedSession {
  /** The cookie's value; shown to the browser once, in Set-Cookie. */
  token: string;
  csrfToken: string;
  principal: Principal;
  expiresAt: Date;
}

export interface ResolvedSession {
  principal: Principal;
  csrfToken: string;
  kind: 'KEY' | 'OIDC';
  subject: string;
  expiresAt: Date;
  idleExpiresAt: Date;
}

export class ConsoleSessions {
  /** lastSeenAt is written at most this often per session: idle accuracy against a write per console call. */
  private readonly touchEveryMs: number;

  constructor(
    private readonly deps: { db: Database; auth: Authenticator; minter: SessionKeyMinter; timeouts: SessionTimeouts; log: Logger; now?: () => number },
  ) {
    this.touchEveryMs = Math.min(60_000, Math.floor(deps.timeouts.idleTimeoutMs / 10));
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  /** Exchanges a presented API key for a session bound to it. Refusals are the key's own (401/403). */
  async signInWithKey(plaintext: string): Promise<OpenedSession> {
    if (!isWellFormedKey(plaintext)) throw new UnauthenticatedError();
    const principal = await this.deps.auth.verify(plaintext);
    return this.open({ apiKeyId: principal.apiKeyId, keyHash: hashKey(plaintext), kind: 'KEY', subject: principal.keyPrefix, keyExpiresAt: principal.expiresAt });
  }

  /** A person the OIDC provider vouched for: a key with the mapped scopes, expiring with the session. */
  async signInMinted(input: { tenant: string; scopes: Scope[]; subject: string }): Promise<OpenedSession> {
    const expiresAt = new Date(this.now() + this.deps.timeouts.absoluteTimeoutMs);
    const minted = await this.deps.minter.mint({ ...input, expiresAt });
    return this.open({ apiKeyId: minted.apiKeyId, keyHash: minted.hash, kind: 'OIDC', subject: input.subject, keyExpiresAt: expiresAt });
  }

  private async open(input: { apiKeyId: string; keyHash: string; kind: 'KEY' | 'OIDC'; subject: string; keyExpiresAt: Date | null }): Promise<OpenedSession> {
    const token = randomBytes(32).toString('base64url');
    const now = this.now();
    const absolute = now + this.deps.timeouts.absoluteTimeoutMs;
    // A session never outlives its key's own expiry.
    const expiresAt = new Date(input.keyExpiresAt ? Math.min(absolute, input.keyExpiresAt.getTime()) : absolute);
    await this.deps.db.prisma.consoleSession.create({
      data: { id: sessionId(token), apiKeyId: input.apiKeyId, keyHash: input.keyHash, kind: input.kind, subject: input.subject, createdAt: new Date(now), lastSeenAt: new Date(now), expiresAt },
    });
    const principal = await this.deps.auth.verifyHash(input.keyHash);
    // Rows whose absolute timeout passed are of no use to anyone; dropped off the request path.
    this.deps.db.prisma.consoleSession.deleteMany({ where: { expiresAt: { lt: new Date(now) } } }).catch(() => undefined);
    return { token, csrfToken: csrfTokenFor(token), principal, expiresAt };
  }

  /**
   * The session's caller; UNAUTHENTICATED once it ended (idle, absolute,
   * signed out) or its key was revoked or expired. `passive`: a background
   * check by the page, which must not count as use (else an open tab would
   * never go idle).
   */
  async resolve(token: string, options: { passive?: boolean } = {}): Promise<ResolvedSession> {
    const id = sessionId(token);
    const row = await this.deps.db.prisma.consoleSession.findUnique({ where: { id } });
    const now = this.now();
    const ended = () => new UnauthenticatedError(SESSION_ENDED_MESSAGE, { reason: 'SESSION_ENDED' });
    if (!row) throw ended();
    const idleExpires = row.lastSeenAt.getTime() + this.deps.timeouts.idleTimeoutMs;
    if (now >= row.expiresAt.getTime() || now >= idleExpires) {
      await this.deps.db.prisma.consoleSession.deleteMany({ where: { id } });
      throw ended();
    }
    let principal: Principal;
    try {
      principal = await this.deps.auth.verifyHash(row.keyHash);
    } catch (error) {
      if (error instanceof UnauthenticatedError) {
        // The key was revoked or expired: the session goes with it.
        await this.deps.db.prisma.consoleSession.deleteMany({ where: { id } });
        throw ended();
      }
      throw error;
    }
    let lastSeen = row.lastSeenAt.getTime();
    if (!options.passive && now - lastSeen >= this.touchEveryMs) {
      lastSeen = now;
      await this.deps.db.prisma.consoleSession.updateMany({ where: { id }, data: { lastSeenAt: new Date(now) } });
    }
    return {
      principal,
      csrfToken: csrfTokenFor(token),
      kind: row.kind === 'OIDC' ? 'OIDC' : 'KEY',
      subject: row.subject,
      expiresAt: row.expiresAt,
      idleExpiresAt: new Date(Math.min(row.expiresAt.getTime(), lastSeen + this.deps.timeouts.idleTimeoutMs)),
    };
  }

  /**
   * The caller of a request: a key in Authorization/x-api-key wins (API
   * clients), else the session cookie, whose unsafe requests must carry the
   * CSRF header. null: neither was sent.
   */
  async authenticate(request: SessionRequest): Promise<Principal | null> {
    if (credentialFrom(request.headers) !== undefined) return this.deps.auth.authenticate(request.headers);
    const token = sessionCookie(request.headers);
    if (token === undefined) return null;
    const session = await this.resolve(token);
    if (!safeMethod(request.method)) checkCsrf(request.headers, session.csrfToken);
    return session.principal;
  }

  /** Ends the session (a minted OIDC key is revoked with it); idempotent. */
  async signOut(token: string): Promise<void> {
    const id = sessionId(token);
    const row = await this.deps.db.prisma.consoleSession.findUnique({ where: { id } });
    if (!row) return;
    await this.deps.db.prisma.consoleSession.deleteMany({ where: { id } });
    if (row.kind === 'OIDC') await this.deps.minter.revoke(row.apiKeyId, row.subject);
  }
}

/** The CSRF check of a cookie-authenticated unsafe request: FORBIDDEN without the session's token in x-csrf-token. */
export function checkCsrf(headers: HeaderBag, expected: string): void {
  const raw = headers[CSRF_HEADER];
  const sent = Array.isArray(raw) ? raw[0] : raw;
  const a = Buffer.from(sent ?? '');
  const b = Buffer.from(expected);
  if (a.length !== b.length || !timingSafeEqual(a, b)) {
    throw new ForbiddenError(`A console request signed in by cookie must carry the session's ${CSRF_HEADER} header (cross-site request refused)`, { reason: 'CSRF' });
  }
}

export function safeMethod(method: string): boolean {
  return method === 'GET' || method === 'HEAD';
}

/** The session token from the Cookie header; undefined when absent. */
export function sessionCookie(headers: HeaderBag): string | undefined {
  const raw = headers['cookie'];
  const header = Array.isArray(raw) ? raw.join('; ') : raw;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === SESSION_COOKIE) {
      const value = part.slice(at + 1).trim();
      return /^[A-Za-z0-9_-]{16,128}$/.test(value) ? value : '';
    }
  }
  return undefined;
}

function sessionId(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}

function csrfTokenFor(token: string): string {
  return createHash('sha256').update(`modelgate console csrf\0${token}`).digest('base64url');
}
