/** The audit log (admin): who changed what, newest first, per tenant or all, with the change itself; 50 a page through the connection's cursors. */
import { useEffect, useState } from 'preact/hooks';
import { explain, gql, type Me } from './api';
import { DataTable, Message } from './components';
import { fmtTime } from './util';

interface Event { id: string; action: string; actor: string; targetType: string; targetId: string | null; tenantId: string | null; createdAt: string; requestId: string | null; ip: string | null; before: unknown; after: unknown }
const FIELDS = 'id action actor targetType targetId tenantId createdAt requestId ip before after';
const PAGE = 50;

/** Why over 80 lines: filters, the cursor stack and the table share one set of hooks. */
export function AuditView(props: { apiKey: string; me: Me }) {
  const { apiKey } = props;
  const [tenants, setTenants] = useState<{ id: string; name: string }[]>([]);
  const [tenant, setTenant] = useState('');
  const [text, setText] = useState('');
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [page, setPage] = useState<{ events: Event[]; endCursor: string | null; hasNext: boolean } | null>(null);
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    gql<{ tenants: { edges: { node: { id: string; name: string } }[] } }>(apiKey, '{ tenants(first: 100) { edges { node { id name } } } }')
      .then((r) => setTenants(r.data.tenants.edges.map((e) => e.node))).catch(() => undefined);
  }, [apiKey]);
  const after = cursors[cursors.length - 1] ?? null;
  useEffect(() => {
    gql<{ auditEvents: { edges: { node: Event }[]; pageInfo: { endCursor: string | null; hasNextPage: boolean } } }>(apiKey,
      `query($tenant: String, $after: String, $first: Int) { auditEvents(tenant: $tenant, after: $after, first: $first) { edges { node { ${FIELDS} } } pageInfo { endCursor hasNextPage } } }`,
      { ...(tenant ? { tenant } : {}), after, first: PAGE })
      .then((r) => { setPage({ events: r.data.auditEvents.edges.map((e) => e.node), endCursor: r.data.auditEvents.pageInfo.endCursor, hasNext: r.data.auditEvents.pageInfo.hasNextPage }); setError(null); })
      .catch((e: unknown) => setError(explain(e)));
  }, [apiKey, tenant, after]);

  const tenantName = (id: string | null) => (id ? tenants.find((t) => t.id === id)?.name ?? id : '—');
  const needle = text.trim().toLowerCase();
  const events = (page?.events ?? []).filter((e) => !needle || [e.action, e.actor, e.targetType, e.targetId ?? '', e.requestId ?? ''].some((v) => v.toLowerCase().includes(needle)));
  const change = (e: Event) => JSON.stringify(e.before === null || e.before === undefined ? e.after : { before: e.before, after: e.after });

  return (
    <div>
      {error && <Message kind="error">{error}</Message>}
      <div class="controls" role="search" aria-label="Filter the audit log">
        <label>Tenant
          <select value={tenant} onChange={(e) => { setTenant(e.currentTarget.value); setCursors([null]); }} data-testid="audit-tenant">
            <option value="">All tenants</option>
            {tenants.map((t) => <option value={t.id}>{t.name}</option>)}
          </select>
        </label>
        <label>Action, actor, target or request id contains <input type="search" value={text} onInput={(e) => setText(e.currentTarget.value)} data-testid="audit-filter" /></label>
      </div>
      <DataTable id="table-audit" tall caption={`${events.length} events on page ${cursors.length}, newest first${needle ? ' (filtered)' : ''}`} csvName="audit.csv"
        columns={[{ label: 'at' }, { label: 'action' }, { label: 'actor' }, { label: 'target' }, { label: 'tenant' }, { label: 'request id' }, { label: 'change' }]}
        rows={events.map((e) => [e.createdAt, e.action, e.actor, `${e.targetType} ${e.targetId ?? ''}`.trim(), tenantName(e.tenantId), e.requestId, change(e)])}
        display={events.map((e) => [fmtTime(e.createdAt), e.action, e.actor, `${e.targetType} ${e.targetId ?? ''}`.trim(), tenantName(e.tenantId), e.requestId ?? '—', <code class="change">{change(e)}</code>])}
        empty="No audit events." />
      <nav class="row" aria-label="Audit log pages">
        <button type="button" class="secondary" disabled={cursors.length <= 1} onClick={() => setCursors((c) => c.slice(0, -1))}>Newer</button>
        <span>Page {cursors.length}</span>
        <button type="button" class="secondary" disabled={!page?.hasNext} onClick={() => setCursors((c) => [...c, page?.endCursor ?? null])}>Older</button>
      </nav>
    </div>
  );
}
