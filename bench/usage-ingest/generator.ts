/**
 * Synthetic usage records for the benchmark: a fixed population of tenants,
 * keys and models, one "big" tenant with half of all traffic (the one whose
 * month summary is timed), 90 % OK and the rest spread over the refusal and
 * failure statuses, log-normal-ish latencies, spread over one month.
 *
 * Two generators with the same shape: `event(i)` in JS for the ingest path,
 * and `bulkSql` for server-side `INSERT … SELECT generate_series` when
 * filling millions of rows (through a staging table, so the hourly rollups
 * are built from exactly the rows inserted).
 */
import { perBucketSql, rollupUpsert } from '../../src/usage/usage.service';
import { USAGE_STATUSES, type UsageEvent, type UsageStatusName } from '../../src/usage/usage-event';

export const TENANTS = Array.from({ length: 10 }, (_, t) => `10000000-0000-4000-8000-${String(t).padStart(12, '0')}`);
export const BIG_TENANT = TENANTS[0] as string;
export const KEYS_PER_TENANT = 3;
export const MODELS = ['fashion-cnn', 'fashion-lstm', 'fashion-attention', 'fashion-hybrid'];
export const MONTH_START = new Date(Date.UTC(2026, 9, 1)); // October 2026: 31 days
export const MONTH_END = new Date(Date.UTC(2026, 10, 1));
const MONTH_MS = MONTH_END.getTime() - MONTH_START.getTime();

export function keyId(tenant: number, key: number): string {
  return `20000000-0000-4000-8000-${String(tenant * 100 + key).padStart(12, '0')}`;
}

/** Small fast PRNG (mulberry32): reproducible runs. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class SyntheticUsage {
  private readonly random: () => number;
  /**
   * @param live true: createdAt is "now" (the ingest path sees live traffic,
   *   all in the current hour); false: spread over the benchmark month.
   */
  constructor(
    private readonly prefix: string,
    private readonly live = false,
    seed = 42,
  ) {
    this.random = rng(seed);
  }

  event(i: number): UsageEvent {
    const r = this.random;
    const tenant = r() < 0.5 ? 0 : 1 + Math.floor(r() * (TENANTS.length - 1));
    const s = r();
    const status: UsageStatusName = s < 0.9 ? 'OK' : (USAGE_STATUSES[1 + Math.floor(r() * (USAGE_STATUSES.length - 1))] as UsageStatusName);
    const items = status === 'OK' ? 1 + Math.floor(r() * 32) : 0;
    const latencyMs = Math.exp(Math.log(2) + r() * 4);
    return {
      id: `${this.prefix}-${i}`,
      tenantId: TENANTS[tenant] as string,
      apiKeyId: keyId(tenant, Math.floor(r() * KEYS_PER_TENANT)),
      model: MODELS[Math.floor(r() * MODELS.length)] as string,
      modelVersion: '1',
      items,
      computeUnits: items * 1.25,
      status,
      protocol: (['GRAPHQL', 'REST', 'GRPC'] as const)[i % 3] ?? 'REST',
      latencyMs,
      queueMs: latencyMs * 0.1,
      computeMs: status === 'OK' ? latencyMs * 0.8 : 0,
      executionProvider: status === 'OK' ? 'cpu' : null,
      createdAt: this.live ? new Date() : new Date(MONTH_START.getTime() + Math.floor(r() * MONTH_MS)),
    };
  }
}

const STAGE_COLUMNS = `"id","tenantId","apiKeyId","model","modelVersion","items","computeUnits","status","latencyMs","queueMs","computeMs","executionProvider","protocol","createdAt"`;

/** Statements that add rows [from, to) of the synthetic population server-side. Run in order, in one transaction. */
export function bulkSql(prefix: string, from: number, to: number): string[] {
  const tenants = `ARRAY[${TENANTS.map((t) => `'${t}'`).join(',')}]::uuid[]`;
  const models = `ARRAY[${MODELS.map((m) => `'${m}'`).join(',')}]`;
  const statuses = `ARRAY[${USAGE_STATUSES.map((s) => `'${s}'`).join(',')}]`;
  return [
    `CREATE TEMP TABLE IF NOT EXISTS bench_stage (LIKE "UsageRecord" INCLUDING DEFAULTS) ON COMMIT DELETE ROWS`,
    `INSERT INTO bench_stage (${STAGE_COLUMNS})
     SELECT '${prefix}-' || i,
            (${tenants})[t + 1],
            ('20000000-0000-4000-8000-' || lpad((t * 100 + k)::text, 12, '0'))::uuid,
            (${models})[1 + floor(r3 * 4)::int],
            '1',
            items, items * 1.25,
            st::"UsageStatus",
            lat, lat * 0.1, CASE WHEN st = 'OK' THEN lat * 0.8 ELSE 0 END,
            CASE WHEN st = 'OK' THEN 'cpu' END,
            (ARRAY['GRAPHQL','REST','GRPC']::"UsageProtocol"[])[1 + (i % 3)],
            timestamptz '${MONTH_START.toISOString()}' + (r4 * ${MONTH_MS / 1000}) * interval '1 second'
     FROM (
       SELECT i, t, k, r3, r4, lat, st, CASE WHEN st = 'OK' THEN 1 + floor(r5 * 32)::int ELSE 0 END AS items
       FROM (
         SELECT i,
                CASE WHEN random() < 0.5 THEN 0 ELSE 1 + floor(random() * ${TENANTS.length - 1})::int END AS t,
                floor(random() * ${KEYS_PER_TENANT})::int AS k,
                random() AS r3, random() AS r4, random() AS r5,
                exp(ln(2) + random() * 4) AS lat,
                CASE WHEN random() < 0.9 THEN 'OK' ELSE (${statuses})[2 + floor(random() * ${USAGE_STATUSES.length - 1})::int] END AS st
         FROM generate_series(${from}, ${to - 1}) AS i
       ) g
     ) x`,
    `INSERT INTO "UsageRecord" (${STAGE_COLUMNS}) SELECT ${STAGE_COLUMNS} FROM bench_stage ON CONFLICT ("id", "createdAt") DO NOTHING`,
    `WITH per_bucket AS (${perBucketSql('bench_stage')}),
          hourly AS (${rollupUpsert('UsageHourly', 'hour')}),
          daily AS (${rollupUpsert('UsageDaily', 'day')})
     SELECT 1`,
  ];
}
