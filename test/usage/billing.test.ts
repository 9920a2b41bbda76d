/**
 * Prices, spend and invoices on real PostgreSQL: usage written by the real
 * UsageService (records + rollups), a price history built with a fake clock,
 * and every figure checked against an independent per-record computation.
 */
import { randomUUID } from 'node:crypto';
import type { Database } from '../../src/db/database';
import { PriceBook } from '../../src/billing/price-book';
import type { UsageService } from '../../src/usage/usage.service';
import type { UsageEvent } from '../../src/usage/usage-event';
import { testEnv } from '../helpers/env';
import { testPrincipal } from '../helpers/principal';
import { drain, makeEvent, openDatabase, quietLogger, startUsage } from './helpers';
import { graphql, startGateway } from '../helpers/gateway';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { STARTUP_TEST_TIMEOUT_MS } from '../harness/until';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const H = 3_600_000;
const NOV = Date.UTC(2026, 10, 1);
const admin = testPrincipal({ scopes: ['admin'] });

interface P {
  model: string;
  tenant: boolean;
  micros: bigint;
  from: number;
}

/** The rule, restated independently: the tenant's own price first, then the list price, latest start at or before the hour. */
function priceOf(prices: P[], model: string, at: number): P | null {
  const hour = Math.floor(at / H) * H;
  const fits = prices.filter((p) => p.model === model && p.from <= hour).sort((a, b) => b.from - a.from);
  return fits.find((p) => p.tenant) ?? fits.find((p) => !p.tenant) ?? null;
}

describe('price book, spend and invoices', () => {
  const { log } = quietLogger();
  let db: Database;
  let usage: UsageService;
  let tenantId: string;
  let tenantName: string;
  let events: UsageEvent[];
  const prices: P[] = [
    { model: 'fashion-cnn', tenant: false, micros: 1_234_567n, from: NOV },
    { model: 'fashion-cnn', tenant: true, micros: 2_000_001n, from: NOV + 5 * H },
    { model: 'fashion-lstm', tenant: false, micros: 333_333n, from: NOV },
    { model: 'fashion-lstm', tenant: false, micros: 777_777n, from: NOV + 10 * H },
  ];

  beforeAll(async () => {
    db = await openDatabase(testEnv.databaseUrl, log);
    usage = await startUsage(db, log);
    tenantName = `billing-${randomUUID().slice(0, 8)}`;
    tenantId = (await db.prisma.tenant.create({ data: { name: tenantName } })).id;
    // ~17 h of traffic from Nov 1 00:00, crossing every price change; a third model has no price at all.
    events = Array.from({ length: 900 }, (_, i) => {
      const e = makeEvent(tenantId, i, i % 9 === 8 ? { model: 'unpriced-model' } : {});
      return { ...e, computeUnits: e.status === 'OK' ? e.items * 3 : 0 };
    });
    for (const e of events) await usage.record(e);
    await drain(usage);
    // The history is written with the clock at October, as if each price had been set ahead of time.
    const book = new PriceBook(db, () => Date.UTC(2026, 9, 1));
    for (const p of prices) {
      await book.setPrice(admin, { model: p.model, tenant: p.tenant ? tenantName : null, currency: 'USD', unitPriceMicros: p.micros.toString(), effectiveFrom: new Date(p.from) });
    }
  });
  afterAll(async () => {
    await usage.close();
    await db.close();
  });

  function expectedFor(selected: UsageEvent[]) {
    const lines = new Map<string, { model: string; micros: bigint | null; units: bigint; amount: bigint }>();
    for (const e of selected) {
      if (e.status !== 'OK' || e.computeUnits === 0) continue;
      const p = priceOf(prices, e.model, e.createdAt.getTime());
      const key = `${e.model}|${p?.micros ?? 'none'}`;
      const line = lines.get(key) ?? { model: e.model, micros: p?.micros ?? null, units: 0n, amount: 0n };
      line.units += BigInt(e.computeUnits);
      line.amount += BigInt(e.computeUnits) * (p?.micros ?? 0n);
      lines.set(key, line);
    }
    return [...lines.values()];
  }

  it('bills each hour at the price in effect then: lines per model and price, totals exactly the sum of lines', async () => {
    const invoice = await new PriceBook(db).invoice(admin, tenantName, '2026-11');
    const expected = expectedFor(events);
    // cnn: list then tenant price; lstm: two list prices; unpriced-model: one line without a price.
    expect(expected).toHaveLength(5);
    const got = invoice.lines.map((l) => ({ model: l.model, micros: l.unitPriceMicros, units: l.units, amount: l.amountMicros }));
    const order = (a: { model: string; micros: bigint | null }, b: { model: string; micros: bigint | null }) =>
      `${a.model}|${a.micros}`.localeCompare(`${b.model}|${b.micros}`);
    expect(got.sort(order)).toEqual(expected.sort(order));
    const total = expected.reduce((s, l) => s + l.amount, 0n);
    expect(total).toBeGreaterThan(0n);
    expect(invoice.totals).toEqual([{ currency: 'USD', amountMicros: total }]);
    expect(invoice.totals[0]?.amountMicros).toBe(invoice.lines.reduce((s, l) => s + l.amountMicros, 0n));
    expect(invoice.unpricedUnits).toBe(expected.filter((l) => l.micros === null).reduce((s, l) => s + l.units, 0n));
    expect(invoice.unpricedUnits).toBeGreaterThan(0n);
    // Another month holds nothing.
    expect((await new PriceBook(db).invoice(admin, tenantName, '2026-10')).lines).toHaveLength(0);
  });

  it('shows the same spend in usageSummary, also for a range that starts and ends inside hours', async () => {
    const queries = usage.queries;
    const whole = await queries.summary({ tenantId, from: new Date(NOV), to: new Date(Date.UTC(2026, 11, 1)), groupBy: ['MODEL'] });
    const byModel = new Map<string, bigint>();
    for (const l of expectedFor(events)) byModel.set(l.model, (byModel.get(l.model) ?? 0n) + l.amount);
    expect(whole.map((r) => [r.model, r.spend])).toEqual(
      [...byModel].sort(([a], [b]) => a.localeCompare(b)).map(([m, amount]) => [m, amount > 0n ? [{ currency: 'USD', amountMicros: amount }] : []]),
    );
    const from = new Date(NOV + 2 * H + 17 * 60_000 + 13_000);
    const to = new Date(NOV + 11 * H + 41 * 60_000);
    const part = await queries.summary({ tenantId, from, to, groupBy: [] });
    const inRange = events.filter((e) => e.createdAt >= from && e.createdAt < to);
    const expected = expectedFor(inRange).reduce((s, l) => s + l.amount, 0n);
    expect(part).toHaveLength(1);
    expect(part[0]?.spend).toEqual([{ currency: 'USD', amountMicros: expected }]);
    expect(part[0]?.unpricedComputeUnits).toBe(Number(expectedFor(inRange).filter((l) => l.micros === null).reduce((s, l) => s + l.units, 0n)));
  });

  it('prices every CSV record, and the amounts add up to the invoice total', async () => {
    let text = '';
    for await (const chunk of usage.queries.csv(tenantId, new Date(NOV), new Date(Date.UTC(2026, 11, 1)))) text += chunk;
    const [header, ...rows] = text.trim().split('\n');
    const cols = (header ?? '').split(',');
    expect(cols.slice(-3)).toEqual(['currency', 'unitPriceMicros', 'amountMicros']);
    expect(rows).toHaveLength(events.length);
    const sum = rows.reduce((s, r) => s + BigInt(r.split(',').at(-1) || '0'), 0n);
    expect(sum).toBe(expectedFor(events).reduce((s, l) => s + l.amount, 0n));
  });

  it('refuses a price before the current hour, off the hour, fractional or duplicate, and a non-admin; takes the current hour', async () => {
    const now = Date.UTC(2026, 11, 1, 12, 30);
    const dropped: (string | null)[] = [];
    const book = new PriceBook(db, () => now, { resetSpend: async (t) => void dropped.push(t) });
    const base = { model: 'fashion-cnn', currency: 'USD', unitPriceMicros: '10' };
    const code = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string; extensions?: { field?: string } }) => `${e.code}:${e.extensions?.field}`);
    expect(await code(book.setPrice(admin, { ...base, effectiveFrom: new Date(Date.UTC(2026, 11, 1, 11)) }))).toBe('BAD_USER_INPUT:effectiveFrom');
    // The current hour: a tenant's own price (another model, so the list-price checks below stay as they are); its money-budget counters are dropped.
    expect(await code(book.setPrice(admin, { ...base, model: 'fashion-lstm', tenant: tenantName, effectiveFrom: new Date(Date.UTC(2026, 11, 1, 12)) }))).toBe('ok');
    expect(dropped).toEqual([tenantId]);
    expect(await code(book.setPrice(admin, { ...base, effectiveFrom: new Date(Date.UTC(2026, 11, 1, 13, 5)) }))).toBe('BAD_USER_INPUT:effectiveFrom');
    expect(await code(book.setPrice(admin, { ...base, unitPriceMicros: '1.5', effectiveFrom: new Date(Date.UTC(2026, 11, 1, 13)) }))).toBe('BAD_USER_INPUT:unitPriceMicros');
    expect(await code(book.setPrice(admin, { ...base, currency: 'dollars', effectiveFrom: new Date(Date.UTC(2026, 11, 1, 13)) }))).toBe('BAD_USER_INPUT:currency');
    expect(await code(book.setPrice(testPrincipal({ scopes: ['usage:read'] }), { ...base, effectiveFrom: new Date(Date.UTC(2026, 11, 1, 13)) }))).toBe('FORBIDDEN:undefined');
    expect(await code(book.setPrice(admin, { ...base, effectiveFrom: new Date(Date.UTC(2026, 11, 1, 13)) }))).toBe('ok');
    expect(await code(book.setPrice(admin, { ...base, effectiveFrom: new Date(Date.UTC(2026, 11, 1, 13)) }))).toBe('BAD_USER_INPUT:effectiveFrom');
    // A later hour reprices nothing recorded: no counter is dropped.
    expect(dropped).toEqual([tenantId]);
    // The November invoice is unchanged by a December price.
    const invoice = await new PriceBook(db).invoice(admin, tenantName, '2026-11');
    expect(invoice.totals[0]?.amountMicros).toBe(expectedFor(events).reduce((s, l) => s + l.amount, 0n));
  });

  it('serves setPrice, prices and invoice over GraphQL with the same exact figures and the tenant rules', async () => {
    const gw = await startGateway();
    try {
      const adminKey = (await createTestKey({ scopes: ['admin'] })).key;
      const reader = await createTestKey({ scopes: ['usage:read'], tenantName });
      const stranger = await createTestKey({ scopes: ['usage:read'] });
      const INVOICE = 'query($t: String!) { invoice(tenant: $t, month: "2026-11") { tenantName lines { model unitPriceMicros units amountMicros } totals { currency amountMicros amount } unpricedUnits } }';
      const own = await graphql<{ invoice: { lines: { amountMicros: string }[]; totals: { currency: string; amountMicros: string; amount: string }[] } }>(gw.url, INVOICE, { t: tenantName }, authHeaders(reader.key));
      expect(own.body.errors).toBeUndefined();
      const total = expectedFor(events).reduce((s, l) => s + l.amount, 0n);
      expect(own.body.data?.invoice.lines).toHaveLength(5);
      expect(own.body.data?.invoice.totals).toEqual([{ currency: 'USD', amountMicros: total.toString(), amount: `${total / 1_000_000n}.${(total % 1_000_000n).toString().padStart(6, '0')}` }]);
      const foreign = await graphql(gw.url, INVOICE, { t: tenantName }, authHeaders(stranger.key));
      expect(foreign.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');

      const SET = 'mutation($input: SetPriceInput!) { setPrice(input: $input) { model currency unitPriceMicros effectiveFrom } }';
      const nextHour = new Date(Math.ceil((Date.now() + 1) / H) * H).toISOString();
      const set = await graphql(gw.url, SET, { input: { model: 'fashion-hybrid', currency: 'eur', unitPriceMicros: '42', effectiveFrom: nextHour } }, authHeaders(adminKey));
      expect(set.body.data).toEqual({ setPrice: { model: 'fashion-hybrid', currency: 'EUR', unitPriceMicros: '42', effectiveFrom: nextHour } });
      const past = await graphql(gw.url, SET, { input: { model: 'fashion-hybrid', currency: 'EUR', unitPriceMicros: '42', effectiveFrom: '2026-01-01T00:00:00Z' } }, authHeaders(adminKey));
      expect(past.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'effectiveFrom' });
      const byReader = await graphql(gw.url, SET, { input: { model: 'x', currency: 'EUR', unitPriceMicros: '1', effectiveFrom: nextHour } }, authHeaders(reader.key));
      expect(byReader.body.errors?.[0]?.extensions?.['code']).toBe('FORBIDDEN');
      const listed = await graphql<{ prices: { model: string; tenantId: string | null }[] }>(gw.url, '{ prices(model: "fashion-cnn") { model tenantId } }', {}, authHeaders(stranger.key));
      // A stranger sees the two list prices (November, and December's from the test above), not this tenant's own.
      expect(listed.body.data?.prices).toEqual([
        { model: 'fashion-cnn', tenantId: null },
        { model: 'fashion-cnn', tenantId: null },
      ]);
      // An admin naming the tenant sees the list prices and that tenant's own (other tests price fashion-cnn for their own tenants meanwhile).
      const asAdmin = await graphql<{ prices: unknown[] }>(gw.url, 'query($t: String) { prices(model: "fashion-cnn", tenant: $t) { model tenantId } }', { t: tenantName }, authHeaders(adminKey));
      expect(asAdmin.body.data?.prices).toHaveLength(3);
    } finally {
      await gw.close();
      await closeTestKeys();
    }
  });
});
