-- AlterTable
-- The W3C trace id (32 hex) of the request's span when tracing recorded it, else null.
-- Added on the partitioned parent: Postgres adds it to every partition (the monthly ones and
-- the DEFAULT one) in the same statement, a catalog change only (no default, so no rewrite).
ALTER TABLE "UsageRecord" ADD COLUMN     "traceId" TEXT;
