/**
 * The compute units billed to a tenant in a period, from Postgres: what the
 * monthly quota counter is rebuilt from when Redis lost it.
 *
 * Reads the daily rollups only, and that is complete: usage.service.ts adds
 * each record to UsageDaily in the same statement that inserts it, so no
 * stored record is ever outside the rollups. Refused and failed requests are
 * recorded with 0 units, so the sum is exactly what was billed. What is not
 * in Postgres yet (a replica's in-memory buffer, at most
 * USAGE_FLUSH_INTERVAL_MS old, or its spool during a database outage) is not
 * counted.
 */
import type { PrismaClient } from '../db/database';

/** Tried while the database is down too (the caller refuses with UNAVAILABLE when it fails), so it works on the first query after recovery. */
export async function billedComputeUnits(db: { readonly prismaEvenIfDown: PrismaClient }, tenantId: string, from: Date, to: Date, apiKeyId?: string): Promise<number> {
  const rows = await db.prismaEvenIfDown.$queryRawUnsafe<{ units: number }[]>(
    `SELECT coalesce(sum("computeUnits"), 0)::float8 AS units FROM "UsageDaily"
     WHERE "tenantId" = $1::uuid AND "day" >= $2::timestamptz AND "day" < $3::timestamptz${apiKeyId ? ` AND "apiKeyId" = $4::uuid` : ''}`,
    tenantId,
    from.toISOString(),
    to.toISOString(),
    ...(apiKeyId ? [apiKeyId] : []),
  );
  // Each record holds whole units (items x cost, rounded up), so the sum is whole; round away float noise.
  return Math.round(Number(rows[0]?.units ?? 0));
}

const HOUR_MS = 3_600_000;

/**
 * Compute units billed in [from, to) at any instant, not only whole days
 * (a credit period starts when credits were configured): the hourly rollups
 * for the whole hours, the records themselves for the partial hours at
 * either end. Same completeness as billedComputeUnits.
 */
export async function billedUnitsBetween(db: { readonly prismaEvenIfDown: PrismaClient }, tenantId: string, from: Date, to: Date, apiKeyId?: string): Promise<number> {
  const firstHour = Math.ceil(from.getTime() / HOUR_MS) * HOUR_MS;
  const lastHour = Math.floor(to.getTime() / HOUR_MS) * HOUR_MS;
  const key = apiKeyId ? ` AND "apiKeyId" = $4::uuid` : '';
  const args = apiKeyId ? [apiKeyId] : [];
  let units = 0;
  if (firstHour < lastHour) {
    const rows = await db.prismaEvenIfDown.$queryRawUnsafe<{ units: number }[]>(
      `SELECT coalesce(sum("computeUnits"), 0)::float8 AS units FROM "UsageHourly"
       WHERE "tenantId" = $1::uuid AND "hour" >= $2::timestamptz AND "hour" < $3::timestamptz${key}`,
      tenantId,
      new Date(firstHour).toISOString(),
      new Date(lastHour).toISOString(),
      ...args,
    );
    units += Number(rows[0]?.units ?? 0);
  }
  // The partial hours: [from, firstHour) and [lastHour, to), or all of [from, to) inside one hour.
  const edges: [number, number][] = firstHour < lastHour ? [[from.getTime(), firstHour], [lastHour, to.getTime()]] : [[from.getTime(), to.getTime()]];
  for (const [a, b] of edges) {
    if (a >= b) continue;
    const rows = await db.prismaEvenIfDown.$queryRawUnsafe<{ units: number }[]>(
      `SELECT coalesce(sum("computeUnits"), 0)::float8 AS units FROM "UsageRecord"
       WHERE "tenantId" = $1::uuid AND "createdAt" >= $2::timestamptz AND "createdAt" < $3::timestamptz${key}`,
      tenantId,
      new Date(a).toISOString(),
      new Date(b).toISOString(),
      ...args,
    );
    units += Number(rows[0]?.units ?? 0);
  }
  return Math.round(units);
}
