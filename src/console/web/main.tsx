/**
 * The modelgate web console: sign in with an API key (exchanged once for a
 * server-side session; the key is not kept) or through the identity provider
 * (OIDC), then the views the session's scopes allow. The session is an
 * HttpOnly cookie this page cannot read; the page holds only its CSRF token,
 * in memory.
 */
import { render, type ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, currentSession, endSession, explain, gql, hasScope, ME_QUERY, onKeyRefused, startSession, type Me, type Scope } from './api';
import { Message } from './components';
import { BillingView } from './billing';
import { KeysView, TenantsView } from './keys';
import { ModelsView } from './models';
import { RequestsView } from './requests';
import { AuditView } from './audit';
import { VersionsView } from './versions';
import { WebhooksView } from './webhooks';
import { UsageView } from './usage';
import './styles.css';

const THEME_KEY = 'modelgate.console.theme';

type ViewId = 'usage' | 'billing' | 'requests' | 'keys' | 'tenants' | 'webhooks' | 'audit' | 'models' | 'versions';
const VIEWS: { id: ViewId; title: string; scope: Scope }[] = [
  { id: 'usage', title: 'Usage', scope: 'USAGE_READ' },
  { id: 'billing', title: 'Billing', scope: 'USAGE_READ' },
  { id: 'requests', title: 'Request log', scope: 'USAGE_READ' },
  { id: 'keys', title: 'Keys', scope: 'KEYS_MANAGE' },
  { id: 'tenants', title: 'Tenants', scope: 'ADMIN' },
  { id: 'webhooks', title: 'Webhooks', scope: 'KEYS_MANAGE' },
  { id: 'audit', title: 'Audit log', scope: 'ADMIN' },
  { id: 'models', title: 'Models & playground', scope: 'INFERENCE' },
  { id: 'versions', title: 'Model versions', scope: 'MODELS_MANAGE' },
];

/** Where the identity provider's sign-in came back refused: /console#signin-error=CODE. */
function oidcRefusal(): string | null {
  const match = /^#signin-error=([A-Z_]+)$/.exec(location.hash);
  if (!match) return null;
  history.replaceState(null, '', location.pathname);
  switch (match[1]) {
    case 'FORBIDDEN':
      return 'Single sign-on worked, but none of your roles grants access to the console. Ask an administrator for a role.';
    case 'UNAVAILABLE':
      return 'The identity provider cannot be reached right now. Try again shortly.';
    default:
      return 'Single sign-on did not complete. Try again.';
  }
}

function initialTheme(): 'light' | 'dark' {
  // The theme is a preference, not a secret, so it may outlive the tab.
  const saved = localStorage.getItem(THEME_KEY);
  const theme = saved === 'light' || saved === 'dark' ? saved : matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
  applyTheme(theme);
  return theme;
}

/** Set before the state changes: charts read the theme's CSS variables in their own effects, which run before the App's. */
function applyTheme(theme: 'light' | 'dark'): void {
  document.documentElement.dataset['theme'] = theme;
}

function SignIn(props: { message: string | null; oidc: boolean; onSignIn: (key: string) => Promise<void> }) {
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  return (
    <main id="main" class="signin">
      <h1>modelgate console</h1>
      <p>Sign in with an API key. What you see follows the key's scopes. The key is exchanged once for a session that ends when you sign out, after a while without use, or when the key is revoked; it is never stored in this browser.</p>
      {props.message && <Message kind="error" testid="signin-error">{props.message}</Message>}
      <form class="stack" onSubmit={(e) => {
        e.preventDefault();
        const f = new FormData(e.currentTarget);
        setBusy(true);
        void props.onSignIn(String(f.get('key') ?? '').trim()).finally(() => setBusy(false));
      }}>
        <label for="key">API key</label>
        <input id="key" name="key" ref={input} type="password" autoComplete="off" spellcheck={false} required placeholder="mg_live_…" data-testid="signin-key" />
        <button type="submit" disabled={busy}>{busy ? 'Checking…' : 'Sign in'}</button>
      </form>
      {props.oidc && <p><a class="button" href="/console/oidc/login" data-testid="signin-oidc">Sign in with single sign-on</a></p>}
    </main>
  );
}

/** Why over 80 lines: the sign-in state, the tab router and the shell's markup share one set of hooks. */
function App() {
  const [key, setKey] = useState<string | null>(null);
  const [me, setMe] = useState<Me | null>(null);
  const [message, setMessage] = useState<string | null>(null);
  const [booting, setBooting] = useState(true);
  const [oidc, setOidc] = useState(false);
  const [traceUrl, setTraceUrl] = useState<string | null>(null);
  const [view, setView] = useState<ViewId>('usage');
  // What follows the view in the hash: "#keys/<id>" opens one key, "#requests?key=<id>" sets a filter.
  const [sub, setSub] = useState('');
  const [theme, setTheme] = useState(initialTheme);
  const heading = useRef<HTMLHeadingElement>(null);

  /** Shows the views for a live session (its CSRF token is what the views send). */
  const enter = async (csrfToken: string, template: string | null) => {
    const r = await gql<{ me: Me }>(csrfToken, ME_QUERY);
    setTraceUrl(template);
    setKey(csrfToken);
    setMe(r.data.me);
    setMessage(null);
  };
  const signIn = async (candidate: string) => {
    try {
      const session = await startSession(candidate);
      await enter(session.csrfToken ?? '', session.traceUrlTemplate ?? null);
    } catch (error) {
      setKey(null);
      setMe(null);
      setMessage(error instanceof ApiError && error.code === 'BAD_USER_INPUT' ? 'That does not look like a modelgate key.' : explain(error));
    }
  };
  const signOut = (why: string | null = null) => {
    // Ends it on the gateway too (a no-op when the gateway already ended it).
    if (key) void endSession(key).catch(() => undefined);
    setKey(null);
    setMe(null);
    setMessage(why);
  };

  // Any call refused with 401 ends the session at once. A 403 may refuse only that call (a scope, a
  // model, a change only an admin may make), so it asks `me` whether the key itself still works: a
  // suspended tenant or a revoked key ends the session; narrowed scopes update the views.
  const scopes = me ? me.scopes.join(',') : '';
  useEffect(() => {
    if (!key) return;
    let checking = false;
    return onKeyRefused(({ key: used, error }) => {
      if (used !== key || checking) return;
      if (error.status === 401 || error.code === 'UNAUTHENTICATED') {
        signOut(explain(error));
        return;
      }
      checking = true;
      gql<{ me: Me }>(key, ME_QUERY)
        .then((r) => { if (r.data.me.scopes.join(',') !== scopes) setMe(r.data.me); })
        .catch((e: unknown) => { if (e instanceof ApiError && (e.status === 401 || e.status === 403 || e.code === 'UNAUTHENTICATED' || e.code === 'FORBIDDEN')) signOut(explain(e)); })
        .finally(() => { checking = false; });
    });
  }, [key, scopes]);

  useEffect(() => {
    const refused = oidcRefusal();
    currentSession()
      .then(async (session) => {
        setOidc(session.oidc);
        if (session.signedIn && session.csrfToken) await enter(session.csrfToken, session.traceUrlTemplate ?? null);
        else if (refused) setMessage(refused);
      })
      .catch((error: unknown) => setMessage(explain(error)))
      .finally(() => setBooting(false));
  }, []);

  const allowed = me ? VIEWS.filter((v) => hasScope(me, v.scope)) : [];
  useEffect(() => {
    const fromHash = () => {
      const hash = location.hash.replace(/^#\/?/, '');
      const cut = hash.search(/[/?]/);
      const wanted = (cut < 0 ? hash : hash.slice(0, cut)) as ViewId;
      const next = allowed.find((v) => v.id === wanted) ?? allowed[0];
      if (next) setView(next.id);
      setSub(next?.id === wanted && cut >= 0 ? hash.slice(cut + 1) : '');
      heading.current?.focus();
    };
    fromHash();
    addEventListener('hashchange', fromHash);
    return () => removeEventListener('hashchange', fromHash);
  }, [me]);

  if (booting) return <p class="boot">Loading the console…</p>;
  if (!key || !me) return <SignIn message={message} oidc={oidc} onSignIn={signIn} />;

  const current = allowed.find((v) => v.id === view);
  return (
    <>
      <a class="skip" href="#main" onClick={(e) => { e.preventDefault(); heading.current?.focus(); }}>Skip to content</a>
      <header class="top no-print">
        <span class="brand">modelgate</span>
        <nav aria-label="Console sections">
          <ul>
            {allowed.map((v) => (
              <li><a href={`#${v.id}`} aria-current={v.id === view ? 'page' : undefined}>{v.title}</a></li>
            ))}
          </ul>
        </nav>
        <span class="who" data-testid="who">
          {me.apiKey.prefix} · tenant {me.tenant.name} · {me.scopes.map((s) => s.toLowerCase().replace('_', ':')).join(', ')}
        </span>
        <button type="button" class="secondary" aria-pressed={theme === 'dark'} onClick={() => {
          const next = theme === 'dark' ? 'light' : 'dark';
          localStorage.setItem(THEME_KEY, next);
          applyTheme(next);
          setTheme(next);
        }}>Dark mode</button>
        <button type="button" class="secondary" onClick={() => signOut()}>Sign out</button>
      </header>
      <main id="main">
        <h1 ref={heading} tabIndex={-1} data-testid="view-title">{current?.title ?? 'Nothing to show'}</h1>
        {!current && <Message kind="info">This key has no scope the console has a view for.</Message>}
        <KeyWatch onAuthLost={signOut} apiKey={key}>
          {current?.id === 'usage' && <UsageView apiKey={key} me={me} theme={theme} />}
          {current?.id === 'billing' && <BillingView apiKey={key} me={me} theme={theme} />}
          {current?.id === 'requests' && <RequestsView apiKey={key} me={me} query={sub} traceUrl={traceUrl} />}
          {current?.id === 'keys' && <KeysView apiKey={key} me={me} sub={sub} />}
          {current?.id === 'tenants' && <TenantsView apiKey={key} me={me} />}
          {current?.id === 'webhooks' && <WebhooksView apiKey={key} me={me} />}
          {current?.id === 'audit' && <AuditView apiKey={key} me={me} />}
          {current?.id === 'versions' && <VersionsView apiKey={key} me={me} />}
          {current?.id === 'models' && <ModelsView apiKey={key} me={me} />}
        </KeyWatch>
      </main>
    </>
  );
}

/**
 * Re-checks the session every 30 s, so a key revoked or suspended meanwhile, or the idle timeout, ends
 * an idle page too (a call ends it at once: see App). The check is passive: it does not count as use.
 */
function KeyWatch(props: { apiKey: string; onAuthLost: (why: string) => void; children: ComponentChildren }) {
  useEffect(() => {
    const timer = setInterval(() => {
      currentSession(true)
        .then((session) => { if (!session.signedIn) props.onAuthLost('Your console session has ended (signed out, timed out, or its key was revoked). Sign in again.'); })
        .catch((error: unknown) => {
          if (error instanceof ApiError && (error.code === 'UNAUTHENTICATED' || error.code === 'FORBIDDEN')) props.onAuthLost(explain(error));
        });
    }, 30000);
    return () => clearInterval(timer);
  }, [props.apiKey]);
  return <>{props.children}</>;
}

const root = document.getElementById('app');
if (root) {
  root.textContent = '';
  render(<App />, root);
}
