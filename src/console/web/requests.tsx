/**
 * The request log (usage:read: own tenant; admin: any): usage records, newest
 * first, filtered by key, model, status, protocol and time, a page of 50 at a
 * time through the connection's cursors. "#requests?key=<id>" opens it on one key.
 */
import { useEffect, useState } from 'preact/hooks';
import { explain, gql, hasScope, type Me } from './api';
import { DataTable, Message } from './components';
import { RECORD_FIELDS, type UsageRecord } from './key-detail';
import { fmtTime } from './util';

const STATUSES = ['OK', 'BAD_INPUT', 'RATE_LIMITED', 'QUOTA_EXCEEDED', 'OVERLOADED', 'TIMEOUT', 'ERROR'];
const PROTOCOLS = ['GRAPHQL', 'REST', 'GRPC', 'UNKNOWN'];
const PAGE = 50;

interface Filter { tenantId: string; apiKeyId: string; model: string; status: string; protocol: string; from: string; to: string }
interface Page { records: UsageRecord[]; endCursor: string | null; hasNext: boolean }

/** The GraphQL filter for the form's values (empty fields: no filter; local datetimes as instants). */
export function recordFilter(f: Filter): Record<string, string> {
  const out: Record<string, string> = {};
  if (f.tenantId) out['tenantId'] = f.tenantId;
  if (f.apiKeyId) out['apiKeyId'] = f.apiKeyId;
  if (f.model) out['model'] = f.model;
  if (f.status) out['status'] = f.status;
  if (f.protocol) out['protocol'] = f.protocol;
  if (f.from) out['from'] = new Date(f.from).toISOString();
  if (f.to) out['to'] = new Date(f.to).toISOString();
  return out;
}

/** Why over 80 lines: the filter form, the cursor stack and the table share one set of hooks. */
export function RequestsView(props: { apiKey: string; me: Me; query: string; traceUrl: string | null }) {
  const { apiKey, me } = props;
  const isAdmin = hasScope(me, 'ADMIN');
  const initialKey = new URLSearchParams(props.query).get('key') ?? '';
  const [filter, setFilter] = useState<Filter>({ tenantId: '', apiKeyId: initialKey, model: '', status: '', protocol: '', from: '', to: '' });
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const [page, setPage] = useState<Page | null>(null);
  const [tenants, setTenants] = useState<{ id: string; name: string }[]>([]);
  const [keyNames, setKeyNames] = useState<Record<string, string>>({ [me.apiKey.id]: `${me.apiKey.prefix} (${me.apiKey.name})` });
  const [error, setError] = useState<string | null>(null);

  useEffect(() => {
    if (isAdmin) {
      gql<{ tenants: { edges: { node: { id: string; name: string } }[] } }>(apiKey, '{ tenants(first: 100) { edges { node { id name } } } }')
        .then((r) => setTenants(r.data.tenants.edges.map((e) => e.node))).catch(() => undefined);
    }
    if (hasScope(me, 'KEYS_MANAGE')) {
      gql<{ apiKeys: { edges: { node: { id: string; prefix: string; name: string } }[] } }>(apiKey, '{ apiKeys(first: 100) { edges { node { id prefix name } } } }')
        .then((r) => setKeyNames((m) => ({ ...m, ...Object.fromEntries(r.data.apiKeys.edges.map((e) => [e.node.id, `${e.node.prefix} (${e.node.name})`])) })))
        .catch(() => undefined);
    }
  }, [apiKey]);

  const after = cursors[cursors.length - 1] ?? null;
  useEffect(() => {
    gql<{ usageRecords: { edges: { node: UsageRecord }[]; pageInfo: { endCursor: string | null; hasNextPage: boolean } } }>(apiKey,
      `query($first: Int!, $after: String, $filter: UsageRecordFilter) { usageRecords(first: $first, after: $after, filter: $filter) { edges { node { ${RECORD_FIELDS} } } pageInfo { endCursor hasNextPage } } }`,
      { first: PAGE, after, filter: recordFilter(filter) })
      .then((r) => { setPage({ records: r.data.usageRecords.edges.map((e) => e.node), endCursor: r.data.usageRecords.pageInfo.endCursor, hasNext: r.data.usageRecords.pageInfo.hasNextPage }); setError(null); })
      .catch((e: unknown) => setError(explain(e)));
  }, [apiKey, filter, after]);

  const apply = (form: HTMLFormElement) => {
    const f = new FormData(form);
    const v = (n: string) => String(f.get(n) ?? '').trim();
    setFilter({ tenantId: v('tenantId'), apiKeyId: v('apiKeyId'), model: v('model'), status: v('status'), protocol: v('protocol'), from: v('from'), to: v('to') });
    setCursors([null]);
  };
  const keyName = (id: string | null) => (id ? keyNames[id] ?? id : '(no key)');
  const records = page?.records ?? [];

  return (
    <div>
      {error && <Message kind="error">{error}</Message>}
      <form class="controls" role="search" aria-label="Filter requests" onSubmit={(e) => { e.preventDefault(); apply(e.currentTarget); }} data-testid="requests-filter">
        {isAdmin && (
          <label>Tenant
            <select name="tenantId" defaultValue={filter.tenantId}>
              <option value="">{me.tenant.name} (yours)</option>
              {tenants.filter((t) => t.id !== me.tenant.id).map((t) => <option value={t.id}>{t.name}</option>)}
            </select>
          </label>
        )}
        <label>Key id <input name="apiKeyId" list="request-keys" defaultValue={filter.apiKeyId} size={20} data-testid="requests-key" /></label>
        <datalist id="request-keys">{Object.entries(keyNames).map(([id, name]) => <option value={id}>{name}</option>)}</datalist>
        <label>Model <input name="model" defaultValue={filter.model} size={14} data-testid="requests-model" /></label>
        <label>Status
          <select name="status" defaultValue={filter.status} data-testid="requests-status">
            <option value="">any</option>
            {STATUSES.map((s) => <option value={s}>{s.toLowerCase().replace('_', ' ')}</option>)}
          </select>
        </label>
        <label>Protocol
          <select name="protocol" defaultValue={filter.protocol}>
            <option value="">any</option>
            {PROTOCOLS.map((p) => <option value={p}>{p.toLowerCase()}</option>)}
          </select>
        </label>
        <label>From (local) <input name="from" type="datetime-local" defaultValue={filter.from} /></label>
        <label>To (local) <input name="to" type="datetime-local" defaultValue={filter.to} /></label>
        <button type="submit">Apply filters</button>
      </form>
      <DataTable id="table-requests" tall caption={`${records.length} requests on page ${cursors.length}, newest first${page?.hasNext ? '; more follow' : ''}`} csvName="requests.csv"
        columns={[{ label: 'request id' }, { label: 'trace' }, { label: 'at' }, { label: 'key' }, { label: 'model' }, { label: 'version' }, { label: 'protocol' }, { label: 'status' }, { label: 'items', numeric: true },
          { label: 'compute units', numeric: true }, { label: 'latency ms', numeric: true }, { label: 'spend' }]}
        rows={records.map((r) => [r.id, r.traceId ?? null, r.createdAt, r.apiKeyId, r.model, r.modelVersion, r.protocol, r.status, r.items, r.computeUnits, r.latencyMs, r.spend ? r.spend.amountMicros : null])}
        display={records.map((r) => [<code>{r.id}</code>, <TraceLink traceId={r.traceId ?? null} template={props.traceUrl} />, fmtTime(r.createdAt), keyName(r.apiKeyId), r.model, r.modelVersion ?? '—', r.protocol.toLowerCase(), r.status.toLowerCase().replace('_', ' '),
          String(r.items), r.computeUnits.toLocaleString('en-US', { maximumFractionDigits: 3 }), r.latencyMs.toFixed(1), r.spend ? `${r.spend.amount} ${r.spend.currency}` : '—'])}
        empty="No requests match these filters." />
      <nav class="row" aria-label="Request log pages">
        <button type="button" class="secondary" disabled={cursors.length <= 1} onClick={() => setCursors((c) => c.slice(0, -1))}>Newer</button>
        <span>Page {cursors.length}</span>
        <button type="button" class="secondary" disabled={!page?.hasNext} onClick={() => setCursors((c) => [...c, page?.endCursor ?? null])}>Older</button>
      </nav>
      <p class="muted">The request id is the gateway's x-request-id: search it in your logs and traces. The trace is the request's trace id, recorded when tracing exported its span{props.traceUrl ? '; it opens the trace viewer' : ' (select it to copy; set CONSOLE_TRACE_URL_TEMPLATE to link it to a trace viewer)'}.</p>
    </div>
  );
}

/** A record's trace id: a link into the trace viewer when a template is configured, else text selected whole on a click. */
function TraceLink(props: { traceId: string | null; template: string | null }) {
  const { traceId, template } = props;
  if (!traceId) return <>—</>;
  if (!template) return <code class="copyable" data-testid="trace-id">{traceId}</code>;
  return <a href={template.replace('{traceId}', traceId)} target="_blank" rel="noopener noreferrer" data-testid="trace-link"><code>{traceId}</code><span class="sr-only"> (trace, opens in a new tab)</span></a>;
}
