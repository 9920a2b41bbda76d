/** Usage view (usage:read, or admin with a tenant picker): charts over time, breakdowns with spend, top keys, quota burn-down. */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { explain, gql, hasScope, type EffectiveLimit, type Me } from './api';
import { Chart, type Series } from './chart';
import { DataTable, Message } from './components';
import { download, fmt, toCsv, type Cell } from './util';

type Granularity = 'HOUR' | 'DAY';
type Breakdown = 'MODEL' | 'API_KEY' | 'STATUS' | 'PROTOCOL';

interface Row {
  hour?: string | null;
  day?: string | null;
  model?: string | null;
  apiKeyId?: string | null;
  status?: string | null;
  protocol?: string | null;
  requests: number;
  items: number;
  computeUnits: number;
  errors: number;
  avgLatencyMs: number | null;
  p50LatencyMs: number | null;
  p95LatencyMs: number | null;
  /** Priced spend per currency (exact micro-units; amount with 6 decimals), from the price book. */
  spend: { currency: string; amount: string; amountMicros: string }[];
  unpricedComputeUnits: number;
}

/** Spend as people read it, currency stated ("1.500000 USD", two currencies joined); null when nothing was priced. */
function spendCell(r: Row): string | null {
  return r.spend.length ? r.spend.map((m) => `${m.amount} ${m.currency}`).join(', ') : null;
}

/** The exact sum of rows' spend per currency (micro-units added as integers), as spendCell shows it. */
function spendSum(rows: Row[]): string | null {
  const by = new Map<string, bigint>();
  for (const r of rows) for (const m of r.spend) by.set(m.currency, (by.get(m.currency) ?? BigInt(0)) + BigInt(m.amountMicros));
  if (by.size === 0) return null;
  const amount = (micros: bigint) => `${micros / BigInt(1_000_000)}.${(micros % BigInt(1_000_000)).toString().padStart(6, '0')}`;
  return [...by].sort(([a], [b]) => (a < b ? -1 : 1)).map(([currency, micros]) => `${amount(micros)} ${currency}`).join(', ');
}

interface UsageData {
  series: Row[];
  byGroup: Row[];
  totals: Row[];
  keys: Row[];
  total: Row[];
  month: Row[];
}

const METRICS = 'requests items computeUnits errors avgLatencyMs p50LatencyMs p95LatencyMs spend { currency amount amountMicros } unpricedComputeUnits';
const USAGE_QUERY = `query Usage($from: DateTimeISO!, $to: DateTimeISO!, $tenantId: ID, $g: [UsageGroupBy!]!, $gb: [UsageGroupBy!]!, $b: [UsageGroupBy!]!, $mFrom: DateTimeISO!, $mTo: DateTimeISO!) {
  series: usageSummary(from: $from, to: $to, tenantId: $tenantId, groupBy: $g) { hour day ${METRICS} }
  byGroup: usageSummary(from: $from, to: $to, tenantId: $tenantId, groupBy: $gb) { hour day model apiKeyId status protocol ${METRICS} }
  totals: usageSummary(from: $from, to: $to, tenantId: $tenantId, groupBy: $b) { model apiKeyId status protocol ${METRICS} }
  keys: usageSummary(from: $from, to: $to, tenantId: $tenantId, groupBy: [API_KEY]) { apiKeyId ${METRICS} }
  total: usageSummary(from: $from, to: $to, tenantId: $tenantId, groupBy: []) { ${METRICS} }
  month: usageSummary(from: $mFrom, to: $mTo, tenantId: $tenantId, groupBy: [DAY]) { day ${METRICS} }
}`;

const SPANS = { '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400 } as const;
/** A rolling span, or a calendar month (UTC): the current one so far, or the previous one whole (as invoices bill them). */
type Span = keyof typeof SPANS | 'month' | 'last-month';
const BREAKDOWN_LABEL: Record<Breakdown, string> = { MODEL: 'model', API_KEY: 'API key', STATUS: 'status', PROTOCOL: 'protocol' };

interface TenantOption { id: string; name: string; effectiveLimits: { monthlyComputeUnitQuota: EffectiveLimit } }

/** [from, to) aligned to the granularity, the current (partial) bucket included. */
function rangeFor(span: Span, g: Granularity, nowMs: number): { from: number; to: number; step: number } {
  const step = g === 'HOUR' ? 3600 : 86400;
  if (span === 'month' || span === 'last-month') {
    const now = new Date(nowMs);
    const back = span === 'last-month' ? 1 : 0;
    const from = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - back, 1) / 1000;
    const to = span === 'month' ? Math.ceil(nowMs / 1000 / step) * step : Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1) / 1000;
    return { from, to: Math.max(to, from + step), step };
  }
  const to = Math.ceil(nowMs / 1000 / step) * step;
  const buckets = Math.max(1, Math.ceil(SPANS[span] / step));
  return { from: to - buckets * step, to, step };
}

const iso = (seconds: number) => new Date(seconds * 1000).toISOString();
const bucketOf = (r: Row) => Date.parse((r.hour ?? r.day) as string) / 1000;

/** Why over 80 lines: one view's hooks (filters, fetch, chart) and markup read top to bottom; hooks cannot move into helpers without lifting their state. */
export function UsageView(props: { apiKey: string; me: Me; theme: string }) {
  const { apiKey, me } = props;
  const isAdmin = hasScope(me, 'ADMIN');
  const [span, setSpan] = useState<Span>('24h');
  const [gran, setGran] = useState<Granularity>('HOUR');
  const [breakdown, setBreakdown] = useState<Breakdown>('MODEL');
  const [tenantId, setTenantId] = useState<string>(isAdmin ? '' : me.tenant.id);
  const [tenants, setTenants] = useState<TenantOption[]>([]);
  const [keyNames, setKeyNames] = useState<Record<string, string>>({ [me.apiKey.id]: `${me.apiKey.prefix} (${me.apiKey.name})` });
  const [data, setData] = useState<UsageData | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const [reloads, setReloads] = useState(0);
  const [now, setNow] = useState(Date.now());
  const range = useMemo(() => rangeFor(span, gran, now), [span, gran, now]);
  const latest = useRef(0);

  useEffect(() => {
    if (!isAdmin) return;
    gql<{ tenants: { edges: { node: TenantOption }[] } }>(apiKey, '{ tenants(first: 100) { edges { node { id name effectiveLimits { monthlyComputeUnitQuota { value source } } } } } }')
      .then((r) => setTenants(r.data.tenants.edges.map((e) => e.node)))
      .catch((e: unknown) => setError(explain(e)));
  }, [apiKey, isAdmin]);

  useEffect(() => {
    if (!hasScope(me, 'KEYS_MANAGE')) return;
    const vars = tenantId ? { tenant: tenantId } : {};
    gql<{ apiKeys: { edges: { node: { id: string; prefix: string; name: string } }[] } }>(apiKey, 'query($tenant: String) { apiKeys(tenant: $tenant, first: 100) { edges { node { id prefix name } } } }', vars)
      .then((r) => setKeyNames((old) => ({ ...old, ...Object.fromEntries(r.data.apiKeys.edges.map((e) => [e.node.id, `${e.node.prefix} (${e.node.name})`])) })))
      .catch(() => undefined);
  }, [apiKey, me, tenantId]);

  useEffect(() => {
    const monthStart = Date.UTC(new Date(now).getUTCFullYear(), new Date(now).getUTCMonth(), 1) / 1000;
    const tomorrow = Math.ceil(now / 1000 / 86400) * 86400;
    setLoading(true);
    // Answers can arrive out of order when the person changes the view quickly; only the latest counts.
    const ticket = ++latest.current;
    gql<UsageData>(apiKey, USAGE_QUERY, {
      from: iso(range.from), to: iso(range.to), tenantId: tenantId || null,
      g: [gran], gb: [gran, breakdown], b: [breakdown],
      mFrom: iso(monthStart), mTo: iso(tomorrow),
    })
      .then((r) => { if (ticket === latest.current) { setData(r.data); setError(null); } })
      .catch((e: unknown) => { if (ticket === latest.current) setError(explain(e)); })
      .finally(() => { if (ticket === latest.current) setLoading(false); });
  }, [apiKey, range, gran, breakdown, tenantId, reloads]);

  const groupName = (r: Row): string => {
    if (breakdown === 'MODEL') return r.model ?? '—';
    if (breakdown === 'STATUS') return r.status ?? '—';
    if (breakdown === 'PROTOCOL') return r.protocol ?? '—';
    return r.apiKeyId ? keyNames[r.apiKeyId] ?? r.apiKeyId : '(no key)';
  };
  const keyName = (id: string | null | undefined) => (id ? keyNames[id] ?? id : '(no key)');
  const tenant = tenants.find((t) => t.id === tenantId);
  // The quota in force, the gateway default included (the API says which it is).
  const quotaLimit = isAdmin ? (tenant?.effectiveLimits.monthlyComputeUnitQuota ?? null) : me.tenant.effectiveLimits.monthlyComputeUnitQuota;
  const quota = quotaLimit?.value ?? null;
  const quotaOrigin = quotaLimit?.source === 'GATEWAY_DEFAULT' ? ', the gateway default' : '';

  const view = useMemo(() => (data ? buildView(data, range, now, groupName, quota) : null), [data, keyNames]);
  const monthSpend = data ? spendSum(data.month) : null;
  const unit = gran === 'HOUR' ? 'hour' : 'day';
  const bLabel = BREAKDOWN_LABEL[breakdown];
  const tenantLabel = isAdmin ? (tenant ? tenant.name : 'all tenants') : me.tenant.name;

  const viewCsv = () => {
    if (!data) return;
    const header = ['section', 'time', 'group', 'requests', 'items', 'computeUnits', 'errors', 'avgLatencyMs', 'p50LatencyMs', 'p95LatencyMs', 'currency', 'amountMicros', 'unpricedComputeUnits'];
    const line = (section: string, time: string | null, group: string | null, r: Row): Cell[] =>
      [section, time, group, r.requests, r.items, r.computeUnits, r.errors, r.avgLatencyMs, r.p50LatencyMs, r.p95LatencyMs,
        r.spend.map((m) => m.currency).join(';'), r.spend.map((m) => m.amountMicros).join(';'), r.unpricedComputeUnits];
    const rows: Cell[][] = [
      ...data.series.map((r) => line('series', r.hour ?? r.day ?? null, null, r)),
      ...data.byGroup.map((r) => line(`by ${bLabel}`, r.hour ?? r.day ?? null, groupName(r), r)),
      ...data.totals.map((r) => line(`total by ${bLabel}`, null, groupName(r), r)),
      ...data.keys.map((r) => line('by API key', null, keyName(r.apiKeyId), r)),
      ...data.total.map((r) => line('total', null, null, r)),
    ];
    download(`usage-${tenantLabel.replace(/[^\w.-]+/g, '_')}-${iso(range.from).slice(0, 13)}.csv`, toCsv(header, rows));
  };

  return (
    <div>
      <form class="controls" aria-label="Usage range and grouping" onSubmit={(e) => { e.preventDefault(); setNow(Date.now()); setReloads((n) => n + 1); }}>
        {isAdmin && (
          <label>Tenant
            <select value={tenantId} onChange={(e) => setTenantId(e.currentTarget.value)} data-testid="tenant-picker">
              <option value="">All tenants</option>
              {tenants.map((t) => <option value={t.id}>{t.name}</option>)}
            </select>
          </label>
        )}
        <label>Range
          <select value={span} onChange={(e) => setSpan(e.currentTarget.value as Span)} data-testid="range-picker">
            <option value="24h">Last 24 hours</option>
            <option value="7d">Last 7 days</option>
            <option value="30d">Last 30 days</option>
            <option value="month">This month (UTC)</option>
            <option value="last-month">Last month (UTC)</option>
          </select>
        </label>
        <label>Per
          <select value={gran} onChange={(e) => setGran(e.currentTarget.value as Granularity)}>
            <option value="HOUR">hour</option>
            <option value="DAY">day</option>
          </select>
        </label>
        <label>Break down by
          <select value={breakdown} onChange={(e) => setBreakdown(e.currentTarget.value as Breakdown)} data-testid="breakdown">
            <option value="MODEL">model</option>
            <option value="API_KEY">API key</option>
            <option value="STATUS">status</option>
            <option value="PROTOCOL">protocol (GraphQL, REST, gRPC)</option>
          </select>
        </label>
        <button type="submit">Refresh</button>
        <button type="button" class="secondary" onClick={viewCsv} disabled={!data}>Download CSV of this view</button>
      </form>
      <p class="range" data-testid="usage-range" data-from={iso(range.from)} data-to={iso(range.to)} data-tenant={tenantLabel}>
        {tenantLabel}: {iso(range.from).slice(0, 16)}Z to {iso(range.to).slice(0, 16)}Z (UTC, end exclusive){loading ? ' · loading…' : ''}
      </p>
      {error && <Message kind="error">{error}</Message>}
      {view && data && (
        <div aria-busy={loading}>
          <section aria-labelledby="totals-title">
            <h2 id="totals-title">Totals</h2>
            <dl class="tiles" data-testid="usage-tiles">
              {(['requests', 'items', 'computeUnits', 'errors'] as const).map((k) => (
                <div><dt>{k === 'computeUnits' ? 'compute units' : k}</dt><dd data-testid={`tile-${k}`}>{fmt(view.total[k])}</dd></div>
              ))}
              <div><dt>spend</dt><dd data-testid="tile-spend">{spendCell(view.total) ?? 'nothing priced'}</dd></div>
              <div><dt>p50 latency</dt><dd>{fmt(view.total.p50LatencyMs, 2)} ms</dd></div>
              <div><dt>p95 latency</dt><dd>{fmt(view.total.p95LatencyMs, 2)} ms</dd></div>
            </dl>
          </section>

          <section aria-labelledby="traffic-title">
            <h2 id="traffic-title">Requests and errors per {unit}</h2>
            <Chart id="traffic" theme={props.theme} title={`Requests and errors per ${unit}`} yLabel="requests" x={view.x}
              series={view.traffic} summary={`${fmt(view.total.requests)} requests, ${fmt(view.total.errors)} errors in the range.`} />
            <DataTable id="table-traffic" caption={`Requests and errors per ${unit} (${unit}s without requests omitted)`} csvName="usage-requests.csv"
              columns={[{ label: `${unit} (UTC)` }, { label: 'requests', numeric: true }, { label: 'errors', numeric: true }]}
              rows={data.series.map((r) => [r.hour ?? r.day ?? '', r.requests, r.errors])} />
          </section>

          <section aria-labelledby="units-title">
            <h2 id="units-title">Items and compute units per {unit}</h2>
            <Chart id="units" theme={props.theme} title={`Items and compute units per ${unit}`} yLabel="count" x={view.x}
              series={view.units} summary={`${fmt(view.total.items)} items, ${fmt(view.total.computeUnits)} compute units in the range.`} />
            <DataTable id="table-units" caption={`Items and compute units per ${unit}`} csvName="usage-units.csv"
              columns={[{ label: `${unit} (UTC)` }, { label: 'items', numeric: true }, { label: 'compute units', numeric: true }]}
              rows={data.series.map((r) => [r.hour ?? r.day ?? '', r.items, r.computeUnits])} />
          </section>

          <section aria-labelledby="latency-title">
            <h2 id="latency-title">Latency per {unit}</h2>
            <Chart id="latency" theme={props.theme} title={`p50 and p95 latency per ${unit} (ms)`} yLabel="ms" x={view.x}
              series={view.latency} summary={`p50 ${fmt(view.total.p50LatencyMs, 2)} ms, p95 ${fmt(view.total.p95LatencyMs, 2)} ms over the range.`} />
            <DataTable id="table-latency" caption={`Latency per ${unit} in ms (p50/p95 estimated from latency buckets)`} csvName="usage-latency.csv"
              columns={[{ label: `${unit} (UTC)` }, { label: 'mean', numeric: true }, { label: 'p50', numeric: true }, { label: 'p95', numeric: true }]}
              rows={data.series.map((r) => [r.hour ?? r.day ?? '', r.avgLatencyMs, r.p50LatencyMs, r.p95LatencyMs])} />
          </section>

          <section aria-labelledby="breakdown-title">
            <h2 id="breakdown-title">By {bLabel}</h2>
            <Chart id="breakdown" theme={props.theme} title={`Requests per ${unit} by ${bLabel}`} yLabel="requests" x={view.x}
              series={view.groups} summary={`${view.groups.length} ${bLabel} groups.`} />
            <DataTable id="table-breakdown-series" caption={`Requests per ${unit} by ${bLabel}`} csvName="usage-by-group-series.csv"
              columns={[{ label: `${unit} (UTC)` }, { label: bLabel }, { label: 'requests', numeric: true }]}
              rows={data.byGroup.map((r) => [r.hour ?? r.day ?? '', groupName(r), r.requests])} />
            <DataTable id="table-breakdown" caption={`Totals by ${bLabel} over the range`} csvName="usage-by-group.csv"
              columns={[{ label: bLabel }, { label: 'requests', numeric: true }, { label: 'items', numeric: true }, { label: 'compute units', numeric: true }, { label: 'spend' }, { label: 'errors', numeric: true }, { label: 'p50 ms', numeric: true }, { label: 'p95 ms', numeric: true }]}
              rows={[...data.totals.map((r) => [groupName(r), r.requests, r.items, r.computeUnits, spendCell(r), r.errors, r.p50LatencyMs, r.p95LatencyMs] as Cell[]),
                ...data.total.map((r) => ['Total', r.requests, r.items, r.computeUnits, spendCell(r), r.errors, r.p50LatencyMs, r.p95LatencyMs] as Cell[])]} />
          </section>

          <section aria-labelledby="keys-title">
            <h2 id="keys-title">Top keys</h2>
            <DataTable id="table-top-keys" caption="Top 10 keys by compute units, then requests" csvName="usage-top-keys.csv"
              columns={[{ label: 'key' }, { label: 'requests', numeric: true }, { label: 'items', numeric: true }, { label: 'compute units', numeric: true }, { label: 'spend' }, { label: 'errors', numeric: true }]}
              rows={view.topKeys.map((r) => [keyName(r.apiKeyId), r.requests, r.items, r.computeUnits, spendCell(r), r.errors])} />
          </section>

          <section aria-labelledby="quota-title">
            <h2 id="quota-title">Monthly quota burn-down</h2>
            <p data-testid="quota-projection">
              Used this month: <strong>{fmt(view.month.used)}</strong> compute units{monthSpend ? <> (<strong data-testid="month-spend">{monthSpend}</strong> spent)</> : ''}; projected at month end: <strong>{fmt(view.month.projected)}</strong>
              {quota !== null ? <> of a quota of <strong>{fmt(quota)}</strong> ({fmt((view.month.projected / quota) * 100, 1)}%{view.month.projected > quota ? ', over quota' : ''}{quotaOrigin})</> : isAdmin && !tenant ? ' (all tenants together; quotas are per tenant: pick one).' : quotaLimit?.source === 'DISABLED' ? ' (limits are off on this gateway: no quota is enforced).' : quotaOrigin ? ' (no monthly quota: the gateway default sets none).' : ' (no monthly quota).'}
            </p>
            <Chart id="quota" theme={props.theme} title="Cumulative compute units this month, with projection" yLabel="units" x={view.month.x}
              series={view.month.series} summary={`${fmt(view.month.used)} used, ${fmt(view.month.projected)} projected at month end.`} />
            <DataTable id="table-quota" caption="Compute units per day this month (UTC), cumulative and projected" csvName="usage-quota.csv"
              columns={[{ label: 'day (UTC)' }, { label: 'units', numeric: true }, { label: 'cumulative', numeric: true }, { label: 'projected', numeric: true }]}
              rows={view.month.rows} />
          </section>
        </div>
      )}
    </div>
  );
}

function buildView(data: UsageData, range: { from: number; to: number; step: number }, nowMs: number, groupName: (r: Row) => string, quota: number | null) {
  const x: number[] = [];
  for (let t = range.from; t < range.to; t += range.step) x.push(t);
  const index = new Map(x.map((t, i) => [t, i]));
  const column = (rows: Row[], pick: (r: Row) => number | null, empty: number | null): (number | null)[] => {
    const values: (number | null)[] = x.map(() => empty);
    for (const r of rows) {
      const i = index.get(bucketOf(r));
      if (i !== undefined) values[i] = pick(r);
    }
    return values;
  };
  const traffic: Series[] = [
    { label: 'requests', values: column(data.series, (r) => r.requests, 0) },
    { label: 'errors', values: column(data.series, (r) => r.errors, 0) },
  ];
  const units: Series[] = [
    { label: 'items', values: column(data.series, (r) => r.items, 0) },
    { label: 'compute units', values: column(data.series, (r) => r.computeUnits, 0) },
  ];
  const latency: Series[] = [
    { label: 'p50 ms', values: column(data.series, (r) => r.p50LatencyMs, null) },
    { label: 'p95 ms', values: column(data.series, (r) => r.p95LatencyMs, null) },
  ];
  const byName = new Map<string, Row[]>();
  for (const r of data.byGroup) byName.set(groupName(r), [...(byName.get(groupName(r)) ?? []), r]);
  const groups: Series[] = [...byName.entries()]
    .sort((a, b) => b[1].reduce((s, r) => s + r.requests, 0) - a[1].reduce((s, r) => s + r.requests, 0))
    .slice(0, 8)
    .map(([label, rows]) => ({ label, values: column(rows, (r) => r.requests, 0) }));
  const topKeys = [...data.keys].sort((a, b) => b.computeUnits - a.computeUnits || b.requests - a.requests).slice(0, 10);
  const zero: Row = { requests: 0, items: 0, computeUnits: 0, errors: 0, avgLatencyMs: null, p50LatencyMs: null, p95LatencyMs: null, spend: [], unpricedComputeUnits: 0 };
  return { x, traffic, units, latency, groups, topKeys, total: data.total[0] ?? zero, month: burnDown(data.month, nowMs, quota) };
}

/** Cumulative units per UTC day this month and a linear projection at this month's rate so far. */
function burnDown(rows: Row[], nowMs: number, quota: number | null) {
  const now = new Date(nowMs);
  const start = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1) / 1000;
  const end = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) / 1000;
  const nowS = nowMs / 1000;
  const perDay = new Map(rows.map((r) => [bucketOf(r), r.computeUnits]));
  const used = rows.reduce((s, r) => s + r.computeUnits, 0);
  const rate = used / Math.max(1, nowS - start);
  const projected = Math.round(rate * (end - start));
  const x: number[] = [];
  const actual: (number | null)[] = [];
  const projection: (number | null)[] = [];
  const table: Cell[][] = [];
  let cumulative = 0;
  for (let day = start; day < end; day += 86400) {
    const dayEnd = day + 86400;
    x.push(day);
    const past = day <= nowS;
    const units = perDay.get(day) ?? 0;
    if (past) cumulative += units;
    const proj = dayEnd > nowS ? Math.round(rate * (dayEnd - start)) : null;
    actual.push(past ? cumulative : null);
    projection.push(proj ?? (dayEnd + 86400 > nowS ? cumulative : null));
    table.push([new Date(day * 1000).toISOString().slice(0, 10), past ? units : null, past ? cumulative : null, proj]);
  }
  const series: Series[] = [
    { label: 'used (cumulative)', values: actual },
    { label: 'projected', values: projection, dash: true },
    ...(quota !== null ? [{ label: 'quota', values: x.map(() => quota) }] : []),
  ];
  return { x, series, rows: table, used, projected };
}
