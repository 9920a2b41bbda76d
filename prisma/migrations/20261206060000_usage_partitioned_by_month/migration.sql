-- UsageRecord partitioned by month of "createdAt" (declarative RANGE partitioning).
-- The existing table becomes the DEFAULT partition as it stands: no row is copied,
-- so none can be lost or duplicated here. Its months are split out into monthly
-- partitions (rows moved in one transaction per month) and the coming months created
-- by the gateway's partition maintenance (src/usage/usage-partitions.ts) at start and
-- every few hours. The DEFAULT partition stays as the net for a month with no
-- partition yet, so an insert never fails for want of one.
-- Statements carry no semicolons inside them: the driver adapters run a migration
-- statement by statement, outside one transaction. A writer running the old code
-- between the rename and the attach gets "relation does not exist", and its usage
-- service retries the batch from its write-ahead log.
-- A partitioned table's primary key must include the partition key: ("id", "createdAt").
-- Retried and replayed records carry their original "createdAt", so ON CONFLICT on the pair
-- still skips them.

-- The old table keeps its data and its secondary indexes (the parent's indexes attach them).
ALTER TABLE "UsageRecord" RENAME TO "UsageRecord_default";
ALTER TABLE "UsageRecord_default" DROP CONSTRAINT "UsageRecord_pkey";
ALTER INDEX "UsageRecord_tenantId_createdAt_id_idx" RENAME TO "UsageRecord_default_tenantId_createdAt_id_idx";
ALTER INDEX "UsageRecord_createdAt_idx" RENAME TO "UsageRecord_default_createdAt_idx";
ALTER TABLE "UsageRecord_default" ADD CONSTRAINT "UsageRecord_default_pkey" PRIMARY KEY ("id", "createdAt");

CREATE TABLE "UsageRecord" (
    "id" TEXT NOT NULL,
    "tenantId" UUID NOT NULL,
    "apiKeyId" UUID,
    "model" TEXT NOT NULL,
    "modelVersion" TEXT,
    "items" INTEGER NOT NULL,
    "computeUnits" DOUBLE PRECISION NOT NULL,
    "status" "UsageStatus" NOT NULL,
    "latencyMs" DOUBLE PRECISION NOT NULL,
    "queueMs" DOUBLE PRECISION NOT NULL,
    "computeMs" DOUBLE PRECISION NOT NULL,
    "executionProvider" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "protocol" "UsageProtocol" NOT NULL,
    "cacheHit" BOOLEAN NOT NULL DEFAULT false,

    CONSTRAINT "UsageRecord_pkey" PRIMARY KEY ("id", "createdAt")
) PARTITION BY RANGE ("createdAt");

CREATE INDEX "UsageRecord_tenantId_createdAt_id_idx" ON "UsageRecord"("tenantId", "createdAt" DESC, "id" DESC);
CREATE INDEX "UsageRecord_createdAt_idx" ON "UsageRecord"("createdAt");

ALTER TABLE "UsageRecord" ATTACH PARTITION "UsageRecord_default" DEFAULT;
