/**
 * Billing view (usage:read: its own tenant; admin: any tenant, picked): the
 * price book (in force, scheduled, superseded), the invoice of a calendar
 * month (lines, totals, CSV, a printable view), the money budget and the
 * credit balance with burn-down and a linear projection to month end.
 * Money is exact: integer micro-units added as BigInt, shown with 6 decimals.
 */
import { useEffect, useMemo, useRef, useState } from 'preact/hooks';
import { explain, gql, hasScope, type Me } from './api';
import { Chart, type Series } from './chart';
import { DataTable, Message } from './components';
import { download, fmt, fmtTime, toCsv, type Cell } from './util';

interface Money { currency: string; amount: string; amountMicros: string }
interface MoneyBudget { currency: string; amountMicros: string }
interface Credits { refillAmount: number | null; refillInterval: 'DAILY' | 'MONTHLY' | null; since: string }
interface TenantMoney { id: string; name: string; monthlyBudget: MoneyBudget | null; credits: Credits | null }
interface Price { id: string; model: string; tenantId: string | null; currency: string; unitPriceMicros: string; effectiveFrom: string; createdBy: string }
interface InvoiceLine { model: string; currency: string | null; unitPriceMicros: string | null; units: string; amountMicros: string; from: string; to: string }
interface Invoice { tenantId: string; tenantName: string; month: string; from: string; to: string; lines: InvoiceLine[]; totals: Money[]; unpricedUnits: string }
interface Day { day: string; computeUnits: number; spend: Money[] }
interface LimitState { name: string; currency: string | null; limit: number; remaining: number; resetSeconds: number }

interface BillingData {
  invoice: Invoice;
  prices: Price[];
  days: Day[];
  me: { limits: { limits: LimitState[] } };
}

const TENANT_FIELDS = 'id name monthlyBudget { currency amountMicros } credits { refillAmount refillInterval since }';
const BILLING_QUERY = `query Billing($tenant: String!, $tenantId: ID, $month: String!, $from: DateTimeISO!, $to: DateTimeISO!) {
  invoice(tenant: $tenant, month: $month) { tenantId tenantName month from to unpricedUnits
    lines { model currency unitPriceMicros units amountMicros from to } totals { currency amount amountMicros } }
  prices(tenant: $tenant) { id model tenantId currency unitPriceMicros effectiveFrom createdBy }
  days: usageSummary(from: $from, to: $to, tenantId: $tenantId, groupBy: [DAY]) { day computeUnits spend { currency amount amountMicros } }
  me { limits { limits { name currency limit remaining resetSeconds } } }
}`;

const MILLION = BigInt(1_000_000);

/** Integer micro-units as a decimal with 6 places, exact ("12.004500"). */
export function fmtMicros(micros: bigint): string {
  const sign = micros < BigInt(0) ? '-' : '';
  const abs = micros < BigInt(0) ? -micros : micros;
  return `${sign}${abs / MILLION}.${(abs % MILLION).toString().padStart(6, '0')}`;
}

const money = (micros: bigint, currency: string) => `${fmtMicros(micros)} ${currency}`;

/** The last 12 calendar months (UTC), newest first, as YYYY-MM. */
function recentMonths(nowMs: number): string[] {
  const now = new Date(nowMs);
  return Array.from({ length: 12 }, (_, i) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - i, 1)).toISOString().slice(0, 7));
}

type PriceState = 'in force' | 'scheduled' | 'superseded' | 'overridden by the tenant price';

/** Each price's state now: per model and tenant (null: list) the latest started one is in force, later ones scheduled. */
function priceStates(prices: Price[], nowMs: number): Map<string, PriceState> {
  const current = new Map<string, Price>();
  for (const p of prices) {
    if (Date.parse(p.effectiveFrom) > nowMs) continue;
    const k = `${p.model}\u0000${p.tenantId ?? ''}`;
    const seen = current.get(k);
    if (!seen || Date.parse(seen.effectiveFrom) <= Date.parse(p.effectiveFrom)) current.set(k, p);
  }
  const overridden = new Set([...current.values()].filter((p) => p.tenantId !== null).map((p) => p.model));
  const states = new Map<string, PriceState>();
  for (const p of prices) {
    if (Date.parse(p.effectiveFrom) > nowMs) states.set(p.id, 'scheduled');
    else if (current.get(`${p.model}\u0000${p.tenantId ?? ''}`)?.id !== p.id) states.set(p.id, 'superseded');
    else states.set(p.id, p.tenantId === null && overridden.has(p.model) ? 'overridden by the tenant price' : 'in force');
  }
  return states;
}

/** This month's cumulative spend in one currency (micro-units) per UTC day, and a linear projection to month end. */
function spendBurnDown(days: Day[], currency: string, nowMs: number, budgetMicros: bigint | null) {
  const now = new Date(nowMs);
  const start = Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1) / 1000;
  const end = Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 1, 1) / 1000;
  const nowS = nowMs / 1000;
  const perDay = new Map<number, bigint>();
  for (const d of days) {
    const m = d.spend.find((s) => s.currency === currency);
    if (m) perDay.set(Date.parse(d.day) / 1000, BigInt(m.amountMicros));
  }
  const spent = [...perDay.values()].reduce((a, b) => a + b, BigInt(0));
  // The rate so far this month, per second, applied to the whole month.
  const elapsed = Math.max(1, Math.round(nowS - start));
  const projected = (spent * BigInt(end - start)) / BigInt(elapsed);
  const asNumber = (micros: bigint) => Number(micros) / 1e6;
  const x: number[] = [];
  const actual: (number | null)[] = [];
  const projection: (number | null)[] = [];
  const rows: Cell[][] = [];
  let cumulative = BigInt(0);
  for (let day = start; day < end; day += 86400) {
    x.push(day);
    const past = day <= nowS;
    const amount = perDay.get(day) ?? BigInt(0);
    if (past) cumulative += amount;
    const dayEnd = day + 86400;
    const proj = dayEnd > nowS ? (spent * BigInt(Math.round(dayEnd - start))) / BigInt(elapsed) : null;
    actual.push(past ? asNumber(cumulative) : null);
    projection.push(proj !== null ? asNumber(proj) : dayEnd + 86400 > nowS ? asNumber(cumulative) : null);
    rows.push([new Date(day * 1000).toISOString().slice(0, 10), past ? fmtMicros(amount) : null, past ? fmtMicros(cumulative) : null, proj !== null ? fmtMicros(proj) : null]);
  }
  const series: Series[] = [
    { label: `spent (${currency}, cumulative)`, values: actual },
    { label: 'projected', values: projection, dash: true },
    ...(budgetMicros !== null ? [{ label: 'budget', values: x.map(() => asNumber(budgetMicros)) }] : []),
  ];
  return { x, series, rows, spent, projected };
}

/** Why over 80 lines: one view's hooks (tenant, month, fetch) and its four sections' markup read top to bottom. */
export function BillingView(props: { apiKey: string; me: Me; theme: string }) {
  const { apiKey, me } = props;
  const isAdmin = hasScope(me, 'ADMIN');
  const [now, setNow] = useState(Date.now());
  const months = useMemo(() => recentMonths(now), [now]);
  const [month, setMonth] = useState<string>(months[0] ?? '');
  const [tenantId, setTenantId] = useState<string>(me.tenant.id);
  const [tenants, setTenants] = useState<TenantMoney[]>([]);
  const [data, setData] = useState<BillingData | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(false);
  const latest = useRef(0);

  useEffect(() => {
    // The own tenant always (an admin's may be older than the newest 100), every tenant for an admin.
    const query = `{ me { tenant { ${TENANT_FIELDS} } }${isAdmin ? ` tenants(first: 100) { edges { node { ${TENANT_FIELDS} } } }` : ''} }`;
    gql<{ tenants?: { edges: { node: TenantMoney }[] }; me: { tenant: TenantMoney } }>(apiKey, query)
      .then((r) => {
        const listed = r.data.tenants?.edges.map((e) => e.node) ?? [];
        setTenants(listed.some((t) => t.id === r.data.me.tenant.id) ? listed : [r.data.me.tenant, ...listed]);
      })
      .catch((e: unknown) => setError(explain(e)));
  }, [apiKey, isAdmin, now]);

  useEffect(() => {
    const d = new Date(now);
    const from = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)).toISOString();
    const to = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1)).toISOString();
    const ticket = ++latest.current;
    setLoading(true);
    gql<BillingData>(apiKey, BILLING_QUERY, { tenant: tenantId, tenantId: isAdmin ? tenantId : null, month, from, to })
      .then((r) => { if (ticket === latest.current) { setData(r.data); setError(null); } })
      .catch((e: unknown) => { if (ticket === latest.current) setError(explain(e)); })
      .finally(() => { if (ticket === latest.current) setLoading(false); });
  }, [apiKey, tenantId, month, now]);

  const tenant = tenants.find((t) => t.id === tenantId);
  const tenantName = (id: string | null) => (id === null ? 'list price' : `${tenants.find((t) => t.id === id)?.name ?? id} (tenant price)`);
  const own = tenantId === me.tenant.id;

  return (
    <div>
      <form class="controls no-print" aria-label="Billing tenant and month" onSubmit={(e) => { e.preventDefault(); setNow(Date.now()); }}>
        {isAdmin && (
          <label>Tenant
            <select value={tenantId} onChange={(e) => setTenantId(e.currentTarget.value)} data-testid="billing-tenant">
              {tenants.length === 0 && <option value={me.tenant.id}>{me.tenant.name}</option>}
              {tenants.map((t) => <option value={t.id}>{t.name}</option>)}
            </select>
          </label>
        )}
        <label>Invoice month (UTC)
          <select value={month} onChange={(e) => setMonth(e.currentTarget.value)} data-testid="billing-month">
            {months.map((m, i) => <option value={m}>{m}{i === 0 ? ' (this month so far)' : ''}</option>)}
          </select>
        </label>
        <button type="submit">Refresh</button>
      </form>
      <p class="range no-print" data-testid="billing-scope" data-tenant={data?.invoice.tenantName ?? ''} data-month={data?.invoice.month ?? ''}>
        {data ? `${data.invoice.tenantName}, ${data.invoice.month}` : 'Loading…'}{loading ? ' · loading…' : ''}
      </p>
      {error && <Message kind="error">{error}</Message>}
      {data && (
        <div aria-busy={loading}>
          <InvoiceSection invoice={data.invoice} />
          <BudgetSection days={data.days} budget={tenant?.monthlyBudget ?? null} limits={own ? data.me.limits.limits : null} now={now} theme={props.theme} />
          <CreditsSection days={data.days} credits={tenant?.credits ?? null} limits={own ? data.me.limits.limits : null} now={now} />
          <section class="no-print" aria-labelledby="prices-title">
            <h2 id="prices-title">Price book</h2>
            <p>What one compute unit costs, per model: the list price, or this tenant's own price where it has one (which then applies instead). A price applies from its whole UTC hour until a later one of the same model and tenant.</p>
            <PriceTable prices={data.prices} now={now} tenantName={tenantName} />
          </section>
        </div>
      )}
    </div>
  );
}

function PriceTable(props: { prices: Price[]; now: number; tenantName: (id: string | null) => string }) {
  const states = priceStates(props.prices, props.now);
  const order: Record<PriceState, number> = { 'in force': 0, 'overridden by the tenant price': 1, scheduled: 2, superseded: 3 };
  const sorted = [...props.prices].sort((a, b) => order[states.get(a.id) ?? 'superseded'] - order[states.get(b.id) ?? 'superseded'] || a.model.localeCompare(b.model) || a.effectiveFrom.localeCompare(b.effectiveFrom));
  return (
    <DataTable id="table-prices" caption="Prices per compute unit: in force, scheduled and superseded" csvName="prices.csv" empty="No prices: usage is not priced (spend shows as nothing priced)."
      columns={[{ label: 'model' }, { label: 'applies to' }, { label: 'price per unit', numeric: true }, { label: 'currency' }, { label: 'from (UTC)' }, { label: 'state' }, { label: 'set by' }]}
      rows={sorted.map((p) => [p.model, props.tenantName(p.tenantId), fmtMicros(BigInt(p.unitPriceMicros)), p.currency, fmtTime(p.effectiveFrom), states.get(p.id) ?? null, p.createdBy])} />
  );
}

function InvoiceSection(props: { invoice: Invoice }) {
  const { invoice } = props;
  const header = ['model', 'currency', 'unitPriceMicros', 'units', 'amountMicros', 'from', 'to'];
  const csv = () => download(`invoice-${invoice.tenantName.replace(/[^\w.-]+/g, '_')}-${invoice.month}.csv`, toCsv(header, [
    ...invoice.lines.map((l): Cell[] => [l.model, l.currency, l.unitPriceMicros, l.units, l.amountMicros, l.from, l.to]),
    ...invoice.totals.map((t): Cell[] => ['total', t.currency, null, null, t.amountMicros, invoice.from, invoice.to]),
    ...(invoice.unpricedUnits !== '0' ? [['unpriced', null, null, invoice.unpricedUnits, '0', invoice.from, invoice.to] as Cell[]] : []),
  ]));
  return (
    <section class="invoice" aria-labelledby="invoice-title" data-testid="invoice">
      <h2 id="invoice-title">Invoice {invoice.month}: {invoice.tenantName}</h2>
      <p class="muted">Calendar month {fmtTime(invoice.from)} to {fmtTime(invoice.to)} (UTC, end exclusive). Each line is one model at one price: units × price, exact.</p>
      <DataTable id="table-invoice" caption={`Invoice lines, ${invoice.tenantName}, ${invoice.month}`} empty="No usage this month."
        columns={[{ label: 'model' }, { label: 'price per unit', numeric: true }, { label: 'units', numeric: true }, { label: 'amount', numeric: true }, { label: 'hours covered (UTC)' }]}
        rows={invoice.lines.map((l) => [l.model, l.unitPriceMicros !== null && l.currency ? money(BigInt(l.unitPriceMicros), l.currency) : 'no price', l.units,
          l.currency ? money(BigInt(l.amountMicros), l.currency) : '—', `${fmtTime(l.from)} to ${fmtTime(l.to)}`])} />
      <dl class="tiles invoice-totals">
        {invoice.totals.length === 0 && <div><dt>total</dt><dd data-testid="invoice-total">nothing priced</dd></div>}
        {invoice.totals.map((t) => <div><dt>total ({t.currency})</dt><dd data-testid="invoice-total" data-micros={t.amountMicros}>{t.amount} {t.currency}</dd></div>)}
        <div><dt>unpriced units</dt><dd data-testid="invoice-unpriced">{invoice.unpricedUnits}</dd></div>
      </dl>
      <div class="row no-print">
        <button type="button" class="secondary" onClick={csv}>Download invoice CSV</button>
        <button type="button" class="secondary" onClick={() => window.print()}>Print invoice</button>
      </div>
    </section>
  );
}

const limitOf = (limits: LimitState[] | null, name: string) => limits?.find((l) => l.name === name) ?? null;

function BudgetSection(props: { days: Day[]; budget: MoneyBudget | null; limits: LimitState[] | null; now: number; theme: string }) {
  const { budget } = props;
  const budgetMicros = budget ? BigInt(budget.amountMicros) : null;
  // Without a budget: the currency this month was spent in (the first), else nothing to draw.
  const currency = budget?.currency ?? props.days.flatMap((d) => d.spend.map((s) => s.currency))[0] ?? null;
  const burn = useMemo(() => (currency ? spendBurnDown(props.days, currency, props.now, budgetMicros) : null), [props.days, currency, props.now, budget?.amountMicros]);
  const live = limitOf(props.limits, 'tenant_monthly_spend');
  const remaining = live ? BigInt(Math.round(live.remaining)) : budgetMicros !== null && burn ? budgetMicros - burn.spent : null;
  return (
    <section class="no-print" aria-labelledby="budget-title">
      <h2 id="budget-title">Money budget this month</h2>
      {!burn || !currency ? (
        <p data-testid="budget-summary">{budget ? `Budget ${money(BigInt(budget.amountMicros), budget.currency)} per month; nothing spent this month.` : 'No money budget, and nothing priced this month.'}</p>
      ) : (
        <>
          <dl class="tiles" data-testid="budget-summary">
            <div><dt>budget per month</dt><dd data-testid="budget-limit">{budget ? money(BigInt(budget.amountMicros), budget.currency) : 'none'}</dd></div>
            <div><dt>spent this month</dt><dd data-testid="budget-spent">{money(burn.spent, currency)}</dd></div>
            <div><dt>remaining{live ? ' (live)' : ''}</dt><dd data-testid="budget-remaining">{remaining !== null ? money(remaining, currency) : '—'}</dd></div>
            <div><dt>projected at month end</dt><dd data-testid="budget-projected">{money(burn.projected, currency)}{budgetMicros !== null && burn.projected > budgetMicros ? ' (over budget)' : ''}</dd></div>
          </dl>
          <Chart id="budget" theme={props.theme} title={`Cumulative spend this month (${currency}), with projection${budget ? ' and budget' : ''}`} yLabel={currency} x={burn.x}
            series={burn.series} summary={`${money(burn.spent, currency)} spent, ${money(burn.projected, currency)} projected at month end at this month's rate.`} />
          <DataTable id="table-budget" caption={`Spend per day this month (UTC, ${currency}), cumulative and projected`} csvName="spend-burn-down.csv"
            columns={[{ label: 'day (UTC)' }, { label: 'spent', numeric: true }, { label: 'cumulative', numeric: true }, { label: 'projected', numeric: true }]}
            rows={burn.rows} />
        </>
      )}
    </section>
  );
}

function CreditsSection(props: { days: Day[]; credits: Credits | null; limits: LimitState[] | null; now: number }) {
  const { credits } = props;
  const live = limitOf(props.limits, 'tenant_credits');
  // Units used since the current credit period began (a daily refill: today; monthly or none: this month, from `since`).
  const since = credits ? Date.parse(credits.since) : 0;
  const now = new Date(props.now);
  const periodStart = Math.max(since, credits?.refillInterval === 'DAILY' ? Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate()) : Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const used = props.days.filter((d) => Date.parse(d.day) + 86400000 > periodStart).reduce((s, d) => s + d.computeUnits, 0);
  const perDay = used / Math.max(1 / 24, (props.now - periodStart) / 86400000);
  const daysLeft = live && perDay > 0 ? live.remaining / perDay : null;
  return (
    <section class="no-print" aria-labelledby="credits-title">
      <h2 id="credits-title">Credit balance</h2>
      {!credits ? (
        <p data-testid="credits-summary">No credit balance: this tenant is not limited by credits.</p>
      ) : (
        <dl class="tiles" data-testid="credits-summary">
          <div><dt>balance now</dt><dd data-testid="credits-balance">{live ? `${fmt(live.remaining)} units` : 'read by the tenant\'s own keys'}</dd></div>
          <div><dt>refill</dt><dd>{credits.refillAmount !== null ? `${fmt(credits.refillAmount)} units ${credits.refillInterval === 'DAILY' ? 'daily' : 'monthly'}` : 'none (top-ups only)'}</dd></div>
          <div><dt>used this period</dt><dd data-testid="credits-used">{fmt(used)} units</dd></div>
          <div><dt>at this rate</dt><dd data-testid="credits-projection">{daysLeft === null ? (live ? 'no use yet' : '—') : daysLeft < 1 ? 'runs out today' : `lasts about ${fmt(daysLeft, 1)} more days`}</dd></div>
        </dl>
      )}
      {credits && !live && <p class="muted">The live balance is shown to the tenant's own keys (<code>me.limits</code>); usage here counts from {fmtTime(new Date(periodStart).toISOString())}.</p>}
    </section>
  );
}
