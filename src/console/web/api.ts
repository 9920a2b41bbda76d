/**
 * The console's only way to the gateway: POST /graphql with the session
 * cookie (HttpOnly: the page cannot read it) and the session's CSRF token in
 * `x-csrf-token`. The API key is sent once, to POST /console/session, and
 * never kept: what the views pass around as `apiKey` is that CSRF token, a
 * value useless without the cookie (kept as the parameter's name so the views
 * need no change).
 */

export type Scope = 'ADMIN' | 'INFERENCE' | 'KEYS_MANAGE' | 'MODELS_MANAGE' | 'USAGE_READ';

export class ApiError extends Error {
  constructor(
    message: string,
    readonly code: string,
    readonly status: number,
  ) {
    super(message);
  }
}

export interface GqlResult<T> {
  data: T;
  /** The gateway's request id (x-request-id), which audit events carry */
  requestId: string | null;
}

/** The signed-in key was refused on some call: 401 (unknown, revoked, expired) or 403 (this call, or the key or its tenant as a whole). */
export interface KeyRefusal {
  key: string;
  error: ApiError;
}

let refusalListener: ((refusal: KeyRefusal) => void) | null = null;

/**
 * Hears every 401/403 answer to any call (the signed-in session listens, so
 * a key revoked or suspended meanwhile ends it on its next call, not at the
 * next periodic re-check). One listener; returns its removal.
 */
export function onKeyRefused(listener: (refusal: KeyRefusal) => void): () => void {
  refusalListener = listener;
  return () => {
    if (refusalListener === listener) refusalListener = null;
  };
}

function refused(key: string, error: ApiError): ApiError {
  if (error.status === 401 || error.status === 403 || error.code === 'UNAUTHENTICATED' || error.code === 'FORBIDDEN') refusalListener?.({ key, error });
  return error;
}

interface GqlBody<T> {
  data?: T | null;
  errors?: { message: string; extensions?: { code?: string } }[];
}

export async function gql<T>(key: string, query: string, variables: Record<string, unknown> = {}): Promise<GqlResult<T>> {
  let res: Response;
  try {
    res = await fetch('/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': key },
      body: JSON.stringify({ query, variables }),
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch {
    throw new ApiError('The gateway cannot be reached. Check that it is running and try again.', 'NETWORK', 0);
  }
  let body: GqlBody<T>;
  try {
    body = (await res.json()) as GqlBody<T>;
  } catch {
    throw refused(key, new ApiError(`The gateway answered HTTP ${res.status} without a GraphQL body.`, 'HTTP', res.status));
  }
  const first = body.errors?.[0];
  if (first) throw refused(key, new ApiError(first.message, first.extensions?.code ?? 'UNKNOWN', res.status));
  if (!body.data) throw new ApiError('The gateway answered without data.', 'UNKNOWN', res.status);
  return { data: body.data, requestId: res.headers.get('x-request-id') };
}

/** The gateway's answer about this browser's console session. */
export interface SessionState {
  signedIn: boolean;
  /** Sent as x-csrf-token on every call (the views' `apiKey`). */
  csrfToken?: string;
  /** OIDC sign-in is configured. */
  oidc: boolean;
  /** Where a trace id links to (CONSOLE_TRACE_URL_TEMPLATE, with {traceId}); null or absent: shown as text. */
  traceUrlTemplate?: string | null;
  /** Why a session this browser had is over. */
  ended?: string;
}

async function sessionCall(method: 'GET' | 'POST' | 'DELETE', headers: Record<string, string>, query = ''): Promise<SessionState> {
  let res: Response;
  try {
    res = await fetch(`/console/session${query}`, { method, headers, credentials: 'same-origin', cache: 'no-store' });
  } catch {
    throw new ApiError('The gateway cannot be reached. Check that it is running and try again.', 'NETWORK', 0);
  }
  if (res.status === 204) return { signedIn: false, oidc: false };
  const body = (await res.json().catch(() => ({}))) as SessionState & GqlBody<never>;
  const first = body.errors?.[0];
  if (first) throw new ApiError(first.message, first.extensions?.code ?? 'UNKNOWN', res.status);
  return body;
}

/** Exchanges a pasted key for a session cookie; the key is not kept anywhere after this call. */
export function startSession(key: string): Promise<SessionState> {
  return sessionCall('POST', { authorization: `Bearer ${key}` });
}

/** Whether this browser holds a live session (after a reload, or back from the identity provider); `passive`: a background check, not counted as use. */
export function currentSession(passive = false): Promise<SessionState> {
  return sessionCall('GET', {}, passive ? '?passive=1' : '');
}

export async function endSession(csrfToken: string): Promise<void> {
  await sessionCall('DELETE', { 'x-csrf-token': csrfToken });
}

/** What a person should read for a refused sign-in or call. */
export function explain(error: unknown): string {
  if (!(error instanceof ApiError)) return `Unexpected error: ${String(error)}`;
  if (error.code === 'UNAUTHENTICATED' && /session has ended/.test(error.message)) return 'Your console session has ended (signed out, timed out, or its key was revoked). Sign in again.';
  switch (error.code) {
    case 'UNAUTHENTICATED':
      return 'This key was refused: it is unknown, mistyped, expired or revoked. Paste a current key.';
    case 'FORBIDDEN':
      return `Not allowed: ${error.message}`;
    case 'RATE_LIMITED':
    case 'QUOTA_EXCEEDED':
      return `Limit reached: ${error.message}`;
    default:
      return `${error.message} (${error.code})`;
  }
}

export interface Me {
  scopes: Scope[];
  tenant: { id: string; name: string; status: string; monthlyComputeUnitQuota: number | null; effectiveLimits: { monthlyComputeUnitQuota: EffectiveLimit } };
  apiKey: { id: string; prefix: string; name: string };
  expiresAt: string | null;
  limits: { monthlyQuota: { limit: number | null; used: number; remaining: number | null; resetsAt: string } };
}

/** A limit as the gateway enforces it, and whether it is the tenant's (key's) own or the gateway default. */
export interface EffectiveLimit {
  value: number | null;
  source: 'KEY' | 'TENANT' | 'GATEWAY_DEFAULT' | 'DISABLED';
}

export const ME_QUERY = `{ me { scopes expiresAt tenant { id name status monthlyComputeUnitQuota effectiveLimits { monthlyComputeUnitQuota { value source } } }
  apiKey { id prefix name } limits { monthlyQuota { limit used remaining resetsAt } } } }`;

export function hasScope(me: Me, scope: Scope): boolean {
  return me.scopes.includes('ADMIN') || me.scopes.includes(scope);
}
