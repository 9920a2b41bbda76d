/** Keys (keys:manage: own tenant; admin: any) and tenants (admin): list, filter, search, page, create with every setting, rotate, revoke, suspend; #keys/<id> opens one key. */
import { useEffect, useState } from 'preact/hooks';
import { explain, gql, hasScope, type Me } from './api';
import { AUDIT_FIELDS, AuditPanel, ConfirmDialog, DataTable, Message, SecretOnce, type AuditEvent } from './components';
import { KeyDetail } from './key-detail';
import { creditsText, KEY_FIELDS, KeyFields, moneyText, readKeyForm, scopeLabel, type ApiKey } from './key-form';
import { fmtTime } from './util';

interface Tenant { id: string; name: string; status: string; requestsPerMinute: number | null; computeUnitsPerMinute: number | null; monthlyComputeUnitQuota: number | null; createdAt: string }

const TENANT_FIELDS = 'id name status requestsPerMinute computeUnitsPerMinute monthlyComputeUnitQuota createdAt';
const PAGE = 25;
/** The list reads at most this many keys (10 pages of 100); search and paging run over them. */
const MAX_KEYS = 1000;

interface Done { summary: string; requestId: string | null; event: AuditEvent | null }

/** Finds the audit event a mutation wrote, by its request id (admins only can read the trail). */
async function auditFor(apiKey: string, me: Me, requestId: string | null, tenant: string | null): Promise<AuditEvent | null> {
  if (!hasScope(me, 'ADMIN') || !requestId) return null;
  const r = await gql<{ auditEvents: { edges: { node: AuditEvent }[] } }>(apiKey, `query($tenant: String) { auditEvents(tenant: $tenant, first: 50) { edges { node { ${AUDIT_FIELDS} } } } }`, tenant ? { tenant } : {});
  return r.data.auditEvents.edges.map((e) => e.node).find((e) => e.requestId === requestId) ?? null;
}

function useTenants(apiKey: string, me: Me, reload: number): Tenant[] {
  const [tenants, setTenants] = useState<Tenant[]>([]);
  useEffect(() => {
    if (!hasScope(me, 'ADMIN')) return;
    gql<{ tenants: { edges: { node: Tenant }[] } }>(apiKey, `{ tenants(first: 100) { edges { node { ${TENANT_FIELDS} } } } }`)
      .then((r) => setTenants(r.data.tenants.edges.map((e) => e.node)))
      .catch(() => undefined);
  }, [apiKey, me, reload]);
  return tenants;
}

const limitCell = (v: number | null) => (v === null ? 'default' : v.toLocaleString('en-US'));

/** Every key the filters select, newest first, read page by page up to MAX_KEYS. */
async function loadKeys(apiKey: string, vars: Record<string, unknown>): Promise<{ keys: ApiKey[]; more: boolean }> {
  const keys: ApiKey[] = [];
  let after: string | null = null;
  for (;;) {
    const r: { data: { apiKeys: { edges: { node: ApiKey }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } } } = await gql(apiKey,
      `query($tenant: String, $revoked: Boolean, $after: String) { apiKeys(tenant: $tenant, revoked: $revoked, first: 100, after: $after) { edges { node { ${KEY_FIELDS} } } pageInfo { hasNextPage endCursor } } }`,
      { ...vars, after });
    keys.push(...r.data.apiKeys.edges.map((e) => e.node));
    const { hasNextPage, endCursor } = r.data.apiKeys.pageInfo;
    if (!hasNextPage || !endCursor) return { keys, more: false };
    if (keys.length >= MAX_KEYS) return { keys, more: true };
    after = endCursor;
  }
}

/** Why over 80 lines: one view's hooks (list, create, revoke dialogs) and markup read top to bottom; hooks cannot move into helpers without lifting their state. */
export function KeysView(props: { apiKey: string; me: Me; sub: string }) {
  const { apiKey, me } = props;
  const isAdmin = hasScope(me, 'ADMIN');
  const [reload, setReload] = useState(0);
  const tenants = useTenants(apiKey, me, reload);
  const [tenant, setTenant] = useState(isAdmin ? '' : me.tenant.id);
  const [revoked, setRevoked] = useState<'all' | 'active' | 'revoked'>('all');
  const [text, setText] = useState('');
  const [page, setPage] = useState(0);
  const [keys, setKeys] = useState<ApiKey[]>([]);
  const [more, setMore] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [secret, setSecret] = useState<{ value: string; what: string } | null>(null);
  const [done, setDone] = useState<Done | null>(null);
  const [confirm, setConfirm] = useState<{ kind: 'revoke' | 'rotate'; key: ApiKey } | null>(null);
  const [grace, setGrace] = useState('3600');

  useEffect(() => {
    if (props.sub) return;
    const vars: Record<string, unknown> = {};
    if (tenant) vars['tenant'] = tenant;
    if (revoked !== 'all') vars['revoked'] = revoked === 'revoked';
    loadKeys(apiKey, vars)
      .then((r) => { setKeys(r.keys); setMore(r.more); setError(null); })
      .catch((e: unknown) => setError(explain(e)));
  }, [apiKey, tenant, revoked, reload, props.sub]);

  const tenantName = (id: string) => tenants.find((t) => t.id === id)?.name ?? (id === me.tenant.id ? me.tenant.name : id);
  if (props.sub) return <KeyDetail apiKey={apiKey} me={me} id={props.sub} tenantName={tenantName} />;

  const needle = text.trim().toLowerCase();
  const matching = keys.filter((k) => !needle || k.name.toLowerCase().includes(needle) || k.prefix.toLowerCase().includes(needle)
    || Object.values(k.metadata ?? {}).some((v) => String(v).toLowerCase().includes(needle)));
  const pages = Math.max(1, Math.ceil(matching.length / PAGE));
  const at = Math.min(page, pages - 1);
  const shown = matching.slice(at * PAGE, at * PAGE + PAGE);

  const create = async (form: HTMLFormElement) => {
    try {
      const input = readKeyForm(form, null);
      const metadata = input['metadata'];
      delete input['metadata'];
      const t = String(new FormData(form).get('tenant') ?? '');
      if (t) input['tenant'] = t;
      const r = await gql<{ createApiKey: { plaintext: string; apiKey: ApiKey } }>(apiKey, `mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { plaintext apiKey { ${KEY_FIELDS} } } }`, { input });
      const k = r.data.createApiKey.apiKey;
      setSecret({ value: r.data.createApiKey.plaintext, what: `key “${k.name}” (${k.prefix})` });
      // Metadata is only an update's field: set it right after, so the key is complete before anyone uses it.
      if (metadata) await gql(apiKey, 'mutation($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { id } }', { id: k.id, input: { metadata } });
      setDone({ summary: `Created key ${k.prefix}.`, requestId: r.requestId, event: await auditFor(apiKey, me, r.requestId, k.tenantId) });
      form.reset();
      setError(null);
      setReload((n) => n + 1);
    } catch (e) {
      setError(e instanceof Error && !('code' in e) ? e.message : explain(e));
    }
  };

  const act = async () => {
    if (!confirm) return;
    const { kind, key } = confirm;
    setConfirm(null);
    try {
      if (kind === 'revoke') {
        const r = await gql<{ revokeApiKey: ApiKey }>(apiKey, `mutation($id: ID!) { revokeApiKey(id: $id) { ${KEY_FIELDS} } }`, { id: key.id });
        setDone({ summary: `Revoked key ${key.prefix}.`, requestId: r.requestId, event: await auditFor(apiKey, me, r.requestId, key.tenantId) });
      } else {
        const r = await gql<{ rotateApiKey: { plaintext: string; apiKey: ApiKey; previous: ApiKey } }>(apiKey,
          `mutation($id: ID!, $g: Int!) { rotateApiKey(id: $id, gracePeriodSeconds: $g) { plaintext apiKey { ${KEY_FIELDS} } previous { ${KEY_FIELDS} } } }`, { id: key.id, g: Number(grace) || 0 });
        const next = r.data.rotateApiKey;
        setSecret({ value: next.plaintext, what: `rotated key “${next.apiKey.name}” (${next.apiKey.prefix})` });
        setDone({ summary: `Rotated ${key.prefix} to ${next.apiKey.prefix}; the old secret works until ${fmtTime(next.previous.graceUntil)}.`, requestId: r.requestId, event: await auditFor(apiKey, me, r.requestId, key.tenantId) });
      }
      setError(null);
      setReload((n) => n + 1);
    } catch (e) {
      setError(explain(e));
    }
  };

  return (
    <div>
      {error && <Message kind="error">{error}</Message>}
      {secret && <SecretOnce secret={secret.value} what={secret.what} onDone={() => setSecret(null)} />}
      {done && <><Message kind="ok">{done.summary}</Message><AuditPanel event={done.event} requestId={done.requestId} isAdmin={isAdmin} /></>}

      <section aria-labelledby="create-key-title">
        <h2 id="create-key-title">Create a key</h2>
        <form class="stack" onSubmit={(e) => { e.preventDefault(); void create(e.currentTarget); }}>
          {isAdmin && (
            <label>Tenant
              <select name="tenant" data-testid="key-tenant">
                {tenants.map((t) => <option value={t.id} selected={t.id === (tenant || me.tenant.id)}>{t.name}</option>)}
              </select>
            </label>
          )}
          <KeyFields key0={null} isAdmin={isAdmin} idPrefix="key" />
          <button type="submit">Create key</button>
        </form>
      </section>

      <section aria-labelledby="keys-title">
        <h2 id="keys-title">Keys</h2>
        <div class="controls" role="search" aria-label="Filter keys">
          {isAdmin && (
            <label>Tenant
              <select value={tenant} onChange={(e) => { setTenant(e.currentTarget.value); setPage(0); }} data-testid="keys-tenant-filter">
                <option value="">All tenants</option>
                {tenants.map((t) => <option value={t.id}>{t.name}</option>)}
              </select>
            </label>
          )}
          <label>Show
            <select value={revoked} onChange={(e) => { setRevoked(e.currentTarget.value as 'all' | 'active' | 'revoked'); setPage(0); }}>
              <option value="all">all keys</option>
              <option value="active">not revoked</option>
              <option value="revoked">revoked</option>
            </select>
          </label>
          <label>Name, prefix or metadata contains <input type="search" value={text} onInput={(e) => { setText(e.currentTarget.value); setPage(0); }} data-testid="keys-filter" /></label>
        </div>
        <DataTable id="table-keys" tall caption={`${matching.length} keys${more ? ` (the newest ${keys.length} read; narrow by tenant to see older ones)` : ''}, page ${at + 1} of ${pages}`} csvName="keys.csv"
          columns={[{ label: 'prefix' }, { label: 'name' }, { label: 'tenant' }, { label: 'scopes' }, { label: 'status' }, { label: 'requests/min', numeric: true }, { label: 'units/min', numeric: true },
            { label: 'units/month', numeric: true }, { label: 'money/month' }, { label: 'credits' }, { label: 'expires' }, { label: 'last used' }, { label: 'actions' }]}
          rows={shown.map((k) => [k.prefix, k.name, tenantName(k.tenantId), k.scopes.join(' '), k.status, k.requestsPerMinute, k.computeUnitsPerMinute, k.monthlyComputeUnitBudget, moneyText(k.monthlyBudget), creditsText(k.credits), k.expiresAt, k.lastUsedAt, null])}
          display={shown.map((k) => [<a href={`#keys/${k.id}`}>{k.prefix}<span class="sr-only"> details</span></a>, k.name, tenantName(k.tenantId), k.scopes.map(scopeLabel).join(', '), k.status,
            limitCell(k.requestsPerMinute), limitCell(k.computeUnitsPerMinute), limitCell(k.monthlyComputeUnitBudget), moneyText(k.monthlyBudget) ?? 'none', creditsText(k.credits) ?? 'none', fmtTime(k.expiresAt), fmtTime(k.lastUsedAt),
            k.revokedAt ? 'revoked' : (
              <span class="row">
                <a href={`#keys/${k.id}`}>Edit<span class="sr-only"> {k.prefix}</span></a>
                <button type="button" class="secondary" onClick={() => setConfirm({ kind: 'rotate', key: k })}>Rotate<span class="sr-only"> {k.prefix}</span></button>
                <button type="button" class="danger" onClick={() => setConfirm({ kind: 'revoke', key: k })}>Revoke<span class="sr-only"> {k.prefix}</span></button>
              </span>
            )])} />
        <nav class="row" aria-label="Key list pages">
          <button type="button" class="secondary" disabled={at === 0} onClick={() => setPage(at - 1)}>Previous page</button>
          <span>Page {at + 1} of {pages}</span>
          <button type="button" class="secondary" disabled={at + 1 >= pages} onClick={() => setPage(at + 1)}>Next page</button>
        </nav>
      </section>

      {confirm?.kind === 'revoke' && (
        <ConfirmDialog title={`Revoke ${confirm.key.prefix}?`} confirmLabel="Revoke key" danger onCancel={() => setConfirm(null)} onConfirm={() => void act()}>
          <p>Key “{confirm.key.name}” will be refused at once on every gateway. This cannot be undone.</p>
        </ConfirmDialog>
      )}
      {confirm?.kind === 'rotate' && (
        <ConfirmDialog title={`Rotate ${confirm.key.prefix}?`} confirmLabel="Rotate key" onCancel={() => setConfirm(null)} onConfirm={() => void act()}>
          <p>A new secret with the same settings is issued; the old one keeps working for the grace period.</p>
          <label>Grace period (seconds) <input type="number" min="0" value={grace} onInput={(e) => setGrace(e.currentTarget.value)} /></label>
        </ConfirmDialog>
      )}
    </div>
  );
}

export function TenantsView(props: { apiKey: string; me: Me }) {
  const { apiKey, me } = props;
  const [reload, setReload] = useState(0);
  const tenants = useTenants(apiKey, me, reload);
  const [text, setText] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<Done | null>(null);
  const [confirm, setConfirm] = useState<Tenant | null>(null);
  const needle = text.trim().toLowerCase();
  const shown = tenants.filter((t) => !needle || t.name.toLowerCase().includes(needle));
  const optionalInt = (v: FormDataEntryValue | null) => (v === null || v === '' ? undefined : Number(v));

  const create = async (form: HTMLFormElement) => {
    const f = new FormData(form);
    const input = { name: String(f.get('name') ?? ''), monthlyComputeUnitQuota: optionalInt(f.get('quota')), requestsPerMinute: optionalInt(f.get('rpm')) };
    try {
      const r = await gql<{ createTenant: Tenant }>(apiKey, `mutation($input: CreateTenantInput!) { createTenant(input: $input) { ${TENANT_FIELDS} } }`, { input });
      setDone({ summary: `Created tenant ${r.data.createTenant.name}.`, requestId: r.requestId, event: await auditFor(apiKey, me, r.requestId, r.data.createTenant.id) });
      form.reset();
      setError(null);
      setReload((n) => n + 1);
    } catch (e) {
      setError(explain(e));
    }
  };
  const toggle = async (t: Tenant) => {
    setConfirm(null);
    const status = t.status === 'SUSPENDED' ? 'ACTIVE' : 'SUSPENDED';
    try {
      const r = await gql<{ updateTenant: Tenant }>(apiKey, `mutation($id: ID!, $status: TenantStatus!) { updateTenant(id: $id, input: { status: $status }) { ${TENANT_FIELDS} } }`, { id: t.id, status });
      setDone({ summary: `Tenant ${t.name} is now ${status.toLowerCase()}.`, requestId: r.requestId, event: await auditFor(apiKey, me, r.requestId, t.id) });
      setError(null);
      setReload((n) => n + 1);
    } catch (e) {
      setError(explain(e));
    }
  };

  return (
    <div>
      {error && <Message kind="error">{error}</Message>}
      {done && <><Message kind="ok">{done.summary}</Message><AuditPanel event={done.event} requestId={done.requestId} isAdmin /></>}
      <section aria-labelledby="create-tenant-title">
        <h2 id="create-tenant-title">Create a tenant</h2>
        <form class="stack" onSubmit={(e) => { e.preventDefault(); void create(e.currentTarget); }}>
          <label>Name <input name="name" required maxLength={64} data-testid="tenant-name" /></label>
          <label>Monthly compute-unit quota (empty: gateway default) <input name="quota" type="number" min="0" /></label>
          <label>Requests per minute (empty: gateway default) <input name="rpm" type="number" min="1" /></label>
          <button type="submit">Create tenant</button>
        </form>
      </section>
      <section aria-labelledby="tenants-title">
        <h2 id="tenants-title">Tenants</h2>
        <div class="controls" role="search" aria-label="Filter tenants">
          <label>Name contains <input type="search" value={text} onInput={(e) => setText(e.currentTarget.value)} data-testid="tenants-filter" /></label>
        </div>
        <DataTable id="table-tenants" caption={`${shown.length} tenants`} csvName="tenants.csv"
          columns={[{ label: 'name' }, { label: 'status' }, { label: 'requests/min', numeric: true }, { label: 'units/min', numeric: true }, { label: 'monthly quota', numeric: true }, { label: 'created' }, { label: 'actions' }]}
          rows={shown.map((t) => [t.name, t.status, t.requestsPerMinute, t.computeUnitsPerMinute, t.monthlyComputeUnitQuota, t.createdAt, null])}
          display={shown.map((t) => [t.name, t.status, t.requestsPerMinute ?? 'default', t.computeUnitsPerMinute ?? 'default', t.monthlyComputeUnitQuota ?? 'default', fmtTime(t.createdAt),
            t.id === me.tenant.id ? 'your tenant' : (
              <button type="button" class={t.status === 'SUSPENDED' ? 'secondary' : 'danger'} onClick={() => setConfirm(t)}>
                {t.status === 'SUSPENDED' ? 'Resume' : 'Suspend'}<span class="sr-only"> {t.name}</span>
              </button>
            )])} />
      </section>
      {confirm && (
        <ConfirmDialog title={`${confirm.status === 'SUSPENDED' ? 'Resume' : 'Suspend'} ${confirm.name}?`} confirmLabel={confirm.status === 'SUSPENDED' ? 'Resume tenant' : 'Suspend tenant'}
          danger={confirm.status !== 'SUSPENDED'} onCancel={() => setConfirm(null)} onConfirm={() => void toggle(confirm)}>
          <p>{confirm.status === 'SUSPENDED' ? 'Its keys will work again.' : 'Every key of this tenant will be refused (FORBIDDEN) at once.'}</p>
        </ConfirmDialog>
      )}
    </div>
  );
}
