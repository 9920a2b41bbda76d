/**
 * Threshold and rate-limit-burst alerts derived from usage, inside the usage
 * flush's own transaction (UsageCommitHook): the records, their rollups and
 * the events they cause commit together or not at all.
 *
 * Per batch: the tenants touched that have an enabled endpoint are locked
 * (transaction-scoped advisory locks, in id order, so two concurrent flushes
 * of one tenant take turns). Then the month's totals are read from the daily
 * rollups, which already hold this batch: after = total, before = total −
 * what this batch added. Under the lock, the flush that commits second sees
 * the first's rows, so no crossing falls between two concurrent batches. A
 * batch of tenants without endpoints costs one indexed lookup.
 */
import type { Prisma } from '../db/generated/client';
import type { UsageAdded, UsageCommitHook } from '../usage/usage.service';
import { amountMicrosSql, priceLateral } from '../billing/price-book';
import { enqueueWebhookEvents } from './outbox';
import { thresholdEvents, type OutboxEvent, type ThresholdLimit } from './webhook-events';

export interface UsageAlertsOptions {
  /** The gateway's default monthly quota for tenants without their own (null: none). */
  defaultMonthlyQuota: number | null;
  /** RATE_LIMITED requests of one key in one minute that make a ratelimit.breached event. */
  rateLimitBurst: number;
  /** Called after a transaction that wrote events committed (wakes the local dispatcher). */
  onEvents: () => void;
}

interface EndpointRow {
  tenantId: string;
  events: string[] | null;
  thresholds: number[] | null;
}

interface TotalsRow {
  kind: 'tenant' | 'key';
  tenantId: string;
  apiKeyId: string | null;
  month: string;
  limit: number;
  used: number;
}

const MONTH_RANGE = `u."day" >= (m."month" || '-01T00:00:00Z')::timestamptz AND u."day" < (m."month" || '-01T00:00:00Z')::timestamptz + interval '1 month'`;

/**
 * The month totals after the insert: once per tenant and month (tenants with
 * a quota of their own or the default, $2), and per key only for keys with a
 * budget, each summed from the daily rollups (primary-key range scans).
 */
const TOTALS_SQL = `
WITH d AS (
  SELECT * FROM jsonb_to_recordset($1::jsonb) AS d("tenantId" uuid, "apiKeyId" uuid, "month" text)
), tm AS (
  SELECT DISTINCT d."tenantId", d."month", coalesce(t."monthlyComputeUnitQuota", $2::int) AS "limit"
  FROM d JOIN "Tenant" t ON t."id" = d."tenantId"
), km AS (
  SELECT d."tenantId", d."apiKeyId", d."month", k."monthlyComputeUnitBudget" AS "limit"
  FROM d JOIN "ApiKey" k ON k."id" = d."apiKeyId" WHERE k."monthlyComputeUnitBudget" IS NOT NULL
)
SELECT 'tenant' AS "kind", m."tenantId"::text AS "tenantId", NULL::text AS "apiKeyId", m."month", m."limit",
  (SELECT coalesce(sum(u."computeUnits"), 0)::float8 FROM "UsageDaily" u WHERE u."tenantId" = m."tenantId" AND ${MONTH_RANGE}) AS "used"
FROM tm m WHERE m."limit" IS NOT NULL
UNION ALL
SELECT 'key', m."tenantId"::text, m."apiKeyId"::text, m."month", m."limit",
  (SELECT coalesce(sum(u."computeUnits"), 0)::float8 FROM "UsageDaily" u WHERE u."tenantId" = m."tenantId" AND u."apiKeyId" = m."apiKeyId" AND ${MONTH_RANGE})
FROM km m`;

/**
 * Money budgets (tenant and key) the batch touched: the month's spend in the
 * budget's currency, priced as the invoice prices it (hourly rollups, the
 * price in effect each hour, OK requests).
 */
const SPEND_SQL = `
WITH d AS (
  SELECT DISTINCT * FROM jsonb_to_recordset($1::jsonb) AS d("tenantId" uuid, "apiKeyId" uuid, "month" text)
), b AS (
  SELECT DISTINCT 'tenant' AS "kind", d."tenantId", NULL::uuid AS "apiKeyId", d."month", t."monthlyBudgetMicros" AS "limit", t."budgetCurrency" AS "currency"
  FROM d JOIN "Tenant" t ON t."id" = d."tenantId" WHERE t."monthlyBudgetMicros" IS NOT NULL
  UNION
  SELECT 'key', d."tenantId", d."apiKeyId", d."month", k."monthlyBudgetMicros", k."budgetCurrency"
  FROM d JOIN "ApiKey" k ON k."id" = d."apiKeyId" WHERE k."monthlyBudgetMicros" IS NOT NULL
)
SELECT b."kind", b."tenantId"::text AS "tenantId", b."apiKeyId"::text AS "apiKeyId", b."month", b."limit"::text AS "limit",
  (SELECT ${amountMicrosSql('h')}::text
     FROM "UsageHourly" h ${priceLateral('h', 'h."hour"')}
    WHERE h."tenantId" = b."tenantId" AND (b."apiKeyId" IS NULL OR h."apiKeyId" = b."apiKeyId")
      AND h."hour" >= (b."month" || '-01T00:00:00Z')::timestamptz AND h."hour" < (b."month" || '-01T00:00:00Z')::timestamptz + interval '1 month'
      AND h."status" = 'OK' AND h."computeUnits" > 0 AND price.p_currency = b."currency") AS "used"
FROM b`;

const BURST_SQL = `
SELECT m."tenantId"::text AS "tenantId", m."apiKeyId"::text AS "apiKeyId", m."minute",
  (SELECT count(*) FROM "UsageRecord" r WHERE r."tenantId" = m."tenantId" AND r."apiKeyId" IS NOT DISTINCT FROM m."apiKeyId" AND r."status" = 'RATE_LIMITED'
     AND r."createdAt" >= m."minute"::timestamptz AND r."createdAt" < m."minute"::timestamptz + interval '1 minute')::int AS "count"
FROM jsonb_to_recordset($1::jsonb) AS m("tenantId" uuid, "apiKeyId" uuid, "minute" text)`;

export class UsageAlerts implements UsageCommitHook {
  constructor(private readonly options: UsageAlertsOptions) {}

  async afterInsert(tx: Prisma.TransactionClient, added: UsageAdded): Promise<boolean> {
    const touched = [...new Set([...added.deltas.map((d) => d.tenantId), ...added.rateLimited.map((m) => m.tenantId)])];
    if (touched.length === 0) return false;
    const endpoints = await tx.$queryRawUnsafe<EndpointRow[]>(
      `SELECT "tenantId"::text AS "tenantId", "events", "thresholds" FROM "WebhookEndpoint" WHERE "enabled" AND "tenantId" = ANY($1::uuid[])`,
      touched,
    );
    if (endpoints.length === 0) return false;
    const subscribed = (tenantId: string, type: string) =>
      endpoints.some((e) => e.tenantId === tenantId && (!e.events || e.events.length === 0 || e.events.includes(type)));
    const thresholdsOf = new Map<string, number[]>();
    for (const e of endpoints) thresholdsOf.set(e.tenantId, [...new Set([...(thresholdsOf.get(e.tenantId) ?? []), ...(e.thresholds ?? [])])]);
    const tenants = [...thresholdsOf.keys()].sort();
    await tx.$queryRawUnsafe(
      `SELECT count(*)::int AS n FROM (SELECT pg_advisory_xact_lock(hashtextextended('modelgate.webhooks:' || t, 0)) FROM (SELECT unnest($1::text[]) AS t ORDER BY 1) s) l`,
      tenants,
    );

    const events: OutboxEvent[] = [];
    const deltas = added.deltas.filter((d) => thresholdsOf.has(d.tenantId) && d.units > 0);
    if (deltas.length > 0 && deltas.some((d) => subscribed(d.tenantId, 'quota.threshold') || subscribed(d.tenantId, 'budget.threshold'))) {
      const totals = await tx.$queryRawUnsafe<TotalsRow[]>(
        TOTALS_SQL,
        JSON.stringify(deltas.map((d) => ({ tenantId: d.tenantId, apiKeyId: d.apiKeyId, month: d.month }))),
        this.options.defaultMonthlyQuota,
      );
      events.push(...thresholdEvents(this.limitsFrom(deltas, totals), (t) => thresholdsOf.get(t) ?? []));
      if (deltas.some((d) => subscribed(d.tenantId, 'budget.threshold'))) {
        const spend = await tx.$queryRawUnsafe<{ kind: 'tenant' | 'key'; tenantId: string; apiKeyId: string | null; month: string; limit: string; used: string }[]>(
          SPEND_SQL,
          JSON.stringify(deltas.map((d) => ({ tenantId: d.tenantId, apiKeyId: d.apiKeyId, month: d.month }))),
        );
        // The batch's own money is not known per record here, so usedBefore is -1: every
        // crossed percentage is offered each time and the outbox's dedupe key keeps one.
        const money: ThresholdLimit[] = spend.map((row) => ({
          type: 'budget.threshold',
          tenantId: row.tenantId,
          apiKeyId: row.kind === 'key' ? row.apiKeyId : null,
          name: row.kind === 'key' ? 'key_monthly_spend' : 'tenant_monthly_spend',
          limit: Number(row.limit),
          usedBefore: -1,
          usedAfter: Number(row.used),
          period: row.month,
        }));
        events.push(...thresholdEvents(money, (t) => thresholdsOf.get(t) ?? []));
      }
    }
    const minutes = added.rateLimited.filter((m) => subscribed(m.tenantId, 'ratelimit.breached'));
    if (minutes.length > 0) {
      const counts = await tx.$queryRawUnsafe<{ tenantId: string; apiKeyId: string | null; minute: string; count: number }[]>(BURST_SQL, JSON.stringify(minutes));
      for (const c of counts) {
        if (c.count < this.options.rateLimitBurst) continue;
        const minute = new Date(c.minute).toISOString();
        events.push({
          tenantId: c.tenantId,
          type: 'ratelimit.breached',
          dedupeKey: `ratelimit.breached:${c.apiKeyId ?? c.tenantId}:${minute}`,
          data: { apiKeyId: c.apiKeyId, minute, rateLimitedRequests: c.count, burst: this.options.rateLimitBurst },
        });
      }
    }
    const written = await enqueueWebhookEvents(tx, events);
    return written.events > 0;
  }

  afterCommit(wroteEvents: boolean): void {
    if (wroteEvents) this.options.onEvents();
  }

  /** The tenant quota and key budget limits the batch moved, as generic (before, after) pairs. */
  private limitsFrom(deltas: UsageAdded['deltas'], totals: TotalsRow[]): ThresholdLimit[] {
    const added = new Map<string, number>();
    const add = (k: string, units: number) => added.set(k, (added.get(k) ?? 0) + units);
    for (const d of deltas) {
      add(`${d.tenantId}|${d.month}`, d.units);
      if (d.apiKeyId) add(`${d.tenantId}|${d.month}|${d.apiKeyId}`, d.units);
    }
    return totals.map((row) => {
      const used = Number(row.used);
      const batch = added.get(row.kind === 'tenant' ? `${row.tenantId}|${row.month}` : `${row.tenantId}|${row.month}|${row.apiKeyId}`) ?? 0;
      return row.kind === 'tenant'
        ? { type: 'quota.threshold', tenantId: row.tenantId, apiKeyId: null, name: 'tenant_monthly_compute_units', limit: Number(row.limit), usedBefore: used - batch, usedAfter: used, period: row.month }
        : { type: 'budget.threshold', tenantId: row.tenantId, apiKeyId: row.apiKeyId, name: 'key_monthly_compute_units', limit: Number(row.limit), usedBefore: used - batch, usedAfter: used, period: row.month };
    });
  }
}
