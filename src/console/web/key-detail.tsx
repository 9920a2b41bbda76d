/** One key (#keys/<id>): its settings and effective limits, edit, credit grants, its own usage, spend, recent requests and history. */
import { useEffect, useState } from 'preact/hooks';
import { explain, gql, hasScope, type Me } from './api';
import { AUDIT_FIELDS, AuditPanel, DataTable, Message, type AuditEvent } from './components';
import { creditsText, KEY_FIELDS, KeyFields, metadataText, moneyText, readKeyForm, scopeLabel, type ApiKey, type Effective } from './key-form';
import { fmt, fmtTime } from './util';

interface Money { currency: string; amount: string; amountMicros: string }
interface UsageRow { apiKeyId: string | null; model: string | null; requests: number; items: number; computeUnits: number; errors: number; spend: Money[] }
export interface UsageRecord {
  id: string; createdAt: string; apiKeyId: string | null; model: string; modelVersion: string | null; protocol: string; status: string;
  items: number; computeUnits: number; latencyMs: number; spend: Money | null; traceId?: string | null;
}
export const RECORD_FIELDS = 'id createdAt apiKeyId model modelVersion protocol status items computeUnits latencyMs traceId spend { currency amount amountMicros }';

const DAY_MS = 86_400_000;
const effective = (e: Effective) => (e.source === 'DISABLED' ? 'off (limits disabled)' : `${e.value === null ? 'unlimited' : fmt(e.value)} (${e.source === 'GATEWAY_DEFAULT' ? 'gateway default' : e.source.toLowerCase()})`);
const spendText = (spend: Money[]) => (spend.length ? spend.map((m) => `${m.amount} ${m.currency}`).join(', ') : null);

interface Done { summary: string; requestId: string | null; event: AuditEvent | null }

/** Why over 80 lines: the page's loads (key, usage, records, history), its two forms and its markup share one set of hooks. */
export function KeyDetail(props: { apiKey: string; me: Me; id: string; tenantName: (id: string) => string }) {
  const { apiKey, me, id } = props;
  const isAdmin = hasScope(me, 'ADMIN');
  const canReadUsage = hasScope(me, 'USAGE_READ');
  const [key, setKey] = useState<ApiKey | null>(null);
  const [usage, setUsage] = useState<UsageRow[] | null>(null);
  const [records, setRecords] = useState<UsageRecord[] | null>(null);
  const [history, setHistory] = useState<AuditEvent[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<Done | null>(null);
  const [balance, setBalance] = useState<number | null>(null);
  const [version, setVersion] = useState(0);

  useEffect(() => {
    gql<{ apiKey: ApiKey }>(apiKey, `query($id: ID!) { apiKey(id: $id) { ${KEY_FIELDS} creditBalance } }`, { id })
      .then(async (r) => {
        const k = r.data.apiKey;
        setKey(k);
        setError(null);
        const now = Date.now();
        const loads: Promise<unknown>[] = [];
        if (canReadUsage) {
          loads.push(gql<{ usageSummary: UsageRow[]; usageRecords: { edges: { node: UsageRecord }[] } }>(apiKey,
            `query($from: DateTimeISO!, $to: DateTimeISO!, $tenantId: ID, $filter: UsageRecordFilter) {
              usageSummary(from: $from, to: $to, tenantId: $tenantId, groupBy: [API_KEY, MODEL]) { apiKeyId model requests items computeUnits errors spend { currency amount amountMicros } }
              usageRecords(first: 20, filter: $filter) { edges { node { ${RECORD_FIELDS} } } } }`,
            { from: new Date(now - 30 * DAY_MS).toISOString(), to: new Date(now + 60_000).toISOString(), tenantId: k.tenantId, filter: { apiKeyId: k.id, tenantId: k.tenantId } })
            .then((u) => { setUsage(u.data.usageSummary.filter((row) => row.apiKeyId === k.id)); setRecords(u.data.usageRecords.edges.map((e) => e.node)); }));
        }
        if (isAdmin) {
          loads.push(gql<{ auditEvents: { edges: { node: AuditEvent }[] } }>(apiKey, `query($tenant: String) { auditEvents(tenant: $tenant, first: 100) { edges { node { ${AUDIT_FIELDS} } } } }`, { tenant: k.tenantId })
            .then((a) => setHistory(a.data.auditEvents.edges.map((e) => e.node).filter((e) => e.targetId === k.id))));
        }
        await Promise.all(loads);
      })
      .catch((e: unknown) => setError(explain(e)));
  }, [apiKey, id, version]);

  /** The audit event a change wrote: by its request id, or (a credit grant's event carries none) by the grant id it records. */
  const auditFor = async (requestId: string | null, tenantId: string, grantId?: string): Promise<AuditEvent | null> => {
    if (!isAdmin || (!requestId && !grantId)) return null;
    const r = await gql<{ auditEvents: { edges: { node: AuditEvent }[] } }>(apiKey, `query($tenant: String) { auditEvents(tenant: $tenant, first: 50) { edges { node { ${AUDIT_FIELDS} } } } }`, { tenant: tenantId });
    return r.data.auditEvents.edges.map((e) => e.node).find((e) => (grantId ? (e.after as { grantId?: string } | null)?.grantId === grantId : e.requestId === requestId)) ?? null;
  };

  const save = async (form: HTMLFormElement) => {
    if (!key) return;
    try {
      const input = readKeyForm(form, key);
      if (!Object.keys(input).length) {
        setDone({ summary: 'Nothing changed.', requestId: null, event: null });
        return;
      }
      const r = await gql<{ updateApiKey: ApiKey }>(apiKey, `mutation($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { ${KEY_FIELDS} } }`, { id: key.id, input });
      setDone({ summary: `Saved ${key.prefix}: ${Object.keys(input).join(', ')}.`, requestId: r.requestId, event: await auditFor(r.requestId, key.tenantId) });
      setError(null);
      setVersion((v) => v + 1);
    } catch (e) {
      setError(e instanceof Error && !('code' in e) ? e.message : explain(e));
    }
  };

  const grant = async (form: HTMLFormElement) => {
    if (!key) return;
    const f = new FormData(form);
    const reason = String(f.get('reason') ?? '').trim();
    try {
      const r = await gql<{ grantCredits: { id: string; amount: number; balance: number } }>(apiKey, 'mutation($input: GrantCreditsInput!) { grantCredits(input: $input) { id amount balance } }',
        { input: { tenant: key.tenantId, apiKey: key.id, amount: Number(f.get('amount')), ...(reason ? { reason } : {}) } });
      setBalance(r.data.grantCredits.balance);
      setDone({ summary: `Granted ${fmt(r.data.grantCredits.amount)} units to ${key.prefix}.`, requestId: r.requestId, event: await auditFor(r.requestId, key.tenantId, r.data.grantCredits.id) });
      setError(null);
      form.reset();
      setVersion((v) => v + 1);
    } catch (e) {
      setError(explain(e));
    }
  };

  if (!key) return <div>{error ? <Message kind="error">{error}</Message> : <p>Loading the key…</p>}<p><a href="#keys">Back to all keys</a></p></div>;
  const totals = usage ? usage.reduce((s, r) => ({ requests: s.requests + r.requests, units: s.units + r.computeUnits }), { requests: 0, units: 0 }) : null;
  const grants = history?.filter((e) => e.action === 'credits.grant') ?? [];

  return (
    <div data-testid="key-detail" data-key={key.prefix}>
      <p><a href="#keys">Back to all keys</a></p>
      <h2 id="key-title">{key.prefix} · {key.name}</h2>
      {error && <Message kind="error">{error}</Message>}
      {done && <><Message kind="ok" testid="key-saved">{done.summary}</Message>{done.requestId && <AuditPanel event={done.event} requestId={done.requestId} isAdmin={isAdmin} />}</>}
      <dl class="tiles" aria-labelledby="key-title">
        <div><dt>Status</dt><dd>{key.status.toLowerCase()}</dd></div>
        <div><dt>Tenant</dt><dd>{props.tenantName(key.tenantId)}</dd></div>
        <div><dt>Requests/min</dt><dd data-testid="key-rpm">{effective(key.effectiveLimits.requestsPerMinute)}</dd></div>
        <div><dt>Units/min</dt><dd>{effective(key.effectiveLimits.computeUnitsPerMinute)}</dd></div>
        <div><dt>Units/month</dt><dd>{key.monthlyComputeUnitBudget === null ? 'none of its own' : fmt(key.monthlyComputeUnitBudget)}</dd></div>
        <div><dt>Money/month</dt><dd>{moneyText(key.monthlyBudget) ?? 'none of its own'}</dd></div>
        <div><dt>Credits</dt><dd data-testid="key-credits">{creditsText(key.credits) ?? 'none'}</dd></div>
        {key.credits && key.creditBalance !== undefined && key.creditBalance !== null && <div><dt>Credit balance now</dt><dd data-testid="key-credit-balance">{fmt(key.creditBalance)} units</dd></div>}
        {totals && <div><dt>Requests, 30 days</dt><dd data-testid="key-requests">{fmt(totals.requests)}</dd></div>}
        {totals && <div><dt>Units, 30 days</dt><dd>{fmt(totals.units, 2)}</dd></div>}
        {usage && <div><dt>Spend, 30 days</dt><dd data-testid="key-spend">{spendText(sumSpend(usage)) ?? 'nothing priced'}</dd></div>}
      </dl>
      <p class="muted">Scopes {key.scopes.map(scopeLabel).join(', ')}; models {key.allowedModels.length ? key.allowedModels.join(', ') : 'all'}; created {fmtTime(key.createdAt)}{key.createdBy ? ` by ${key.createdBy}` : ''};
        expires {fmtTime(key.expiresAt)}; last used {fmtTime(key.lastUsedAt)}{key.metadata && Object.keys(key.metadata).length ? `; metadata ${metadataText(key.metadata)}` : ''}.</p>

      {!key.revokedAt && (
        <section aria-labelledby="edit-key-title">
          <h2 id="edit-key-title">Edit settings</h2>
          <form class="stack" key={`${key.id}-${version}`} onSubmit={(e) => { e.preventDefault(); void save(e.currentTarget); }} data-testid="key-edit">
            <KeyFields key0={key} isAdmin={isAdmin} idPrefix="edit" />
            <button type="submit">Save changes</button>
          </form>
        </section>
      )}

      {isAdmin && key.credits && !key.revokedAt && (
        <section aria-labelledby="grant-title">
          <h2 id="grant-title">Grant credits</h2>
          {balance !== null && <Message kind="info" testid="credit-balance">Balance after the grant: {fmt(balance)} units</Message>}
          <form class="controls" onSubmit={(e) => { e.preventDefault(); void grant(e.currentTarget); }}>
            <label>Compute units <input name="amount" type="number" min="1" max="1000000000" step="1" required data-testid="grant-amount" /></label>
            <label>Reason <input name="reason" maxLength={500} /></label>
            <button type="submit">Grant credits</button>
          </form>
          <DataTable id="table-grants" caption={`${grants.length} credit grants to this key`}
            columns={[{ label: 'at' }, { label: 'units', numeric: true }, { label: 'reason' }, { label: 'by' }]}
            rows={grants.map((g) => { const a = (g.after ?? {}) as { amount?: number; reason?: string | null }; return [g.createdAt, a.amount ?? null, a.reason ?? null, g.actor]; })}
            display={grants.map((g) => [fmtTime(g.createdAt)])} empty="No grants yet." />
        </section>
      )}

      {usage && (
        <section aria-labelledby="key-usage-title">
          <h2 id="key-usage-title">Usage and spend, last 30 days, by model</h2>
          <DataTable id="table-key-usage" caption="This key's usage by model" csvName={`usage-${key.prefix}.csv`}
            columns={[{ label: 'model' }, { label: 'requests', numeric: true }, { label: 'items', numeric: true }, { label: 'compute units', numeric: true }, { label: 'spend' }, { label: 'errors', numeric: true }]}
            rows={usage.map((r) => [r.model ?? '—', r.requests, r.items, r.computeUnits, spendText(r.spend), r.errors])} empty="No requests in the last 30 days." />
        </section>
      )}
      {records && (
        <section aria-labelledby="key-records-title">
          <h2 id="key-records-title">Recent requests</h2>
          <DataTable id="table-key-records" caption={`The ${records.length} latest requests of this key`}
            columns={[{ label: 'at' }, { label: 'model' }, { label: 'protocol' }, { label: 'status' }, { label: 'items', numeric: true }, { label: 'units', numeric: true }, { label: 'latency ms', numeric: true }, { label: 'spend' }]}
            rows={records.map((r) => [r.createdAt, `${r.model}${r.modelVersion ? ` v${r.modelVersion}` : ''}`, r.protocol, r.status, r.items, r.computeUnits, r.latencyMs, r.spend ? `${r.spend.amount} ${r.spend.currency}` : null])}
            display={records.map((r) => [fmtTime(r.createdAt)])} empty="No requests recorded yet." />
          <p><a href={`#requests?key=${key.id}`}>All requests of this key in the request log</a></p>
        </section>
      )}
      {history && (
        <section aria-labelledby="key-history-title">
          <h2 id="key-history-title">History</h2>
          <DataTable id="table-key-history" caption="Audit events about this key, newest first"
            columns={[{ label: 'at' }, { label: 'action' }, { label: 'actor' }, { label: 'change' }]}
            rows={history.map((e) => [e.createdAt, e.action, e.actor, JSON.stringify(e.after)])}
            display={history.map((e) => [fmtTime(e.createdAt)])} empty="No audit events." />
        </section>
      )}
    </div>
  );
}

function sumSpend(rows: UsageRow[]): Money[] {
  const by = new Map<string, bigint>();
  for (const r of rows) for (const m of r.spend) by.set(m.currency, (by.get(m.currency) ?? BigInt(0)) + BigInt(m.amountMicros));
  return [...by].map(([currency, micros]) => ({ currency, amountMicros: micros.toString(), amount: `${micros / BigInt(1e6)}.${(micros % BigInt(1e6)).toString().padStart(6, '0')}` }));
}
