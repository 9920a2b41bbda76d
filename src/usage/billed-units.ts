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
