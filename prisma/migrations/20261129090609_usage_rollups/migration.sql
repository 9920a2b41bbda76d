-- CreateTable
CREATE TABLE "UsageHourly" (
    "tenantId" UUID NOT NULL,
    "apiKeyId" UUID NOT NULL,
    "model" TEXT NOT NULL,
    "status" "UsageStatus" NOT NULL,
    "hour" TIMESTAMPTZ(3) NOT NULL,
    "requests" INTEGER NOT NULL,
    "items" BIGINT NOT NULL,
    "computeUnits" DOUBLE PRECISION NOT NULL,
    "latencySumMs" DOUBLE PRECISION NOT NULL,
    "latencyHist" INTEGER[],

    CONSTRAINT "UsageHourly_pkey" PRIMARY KEY ("tenantId","hour","apiKeyId","model","status")
);

-- CreateTable
CREATE TABLE "UsageDaily" (
    "tenantId" UUID NOT NULL,
    "apiKeyId" UUID NOT NULL,
    "model" TEXT NOT NULL,
    "status" "UsageStatus" NOT NULL,
    "day" TIMESTAMPTZ(3) NOT NULL,
    "requests" INTEGER NOT NULL,
    "items" BIGINT NOT NULL,
    "computeUnits" DOUBLE PRECISION NOT NULL,
    "latencySumMs" DOUBLE PRECISION NOT NULL,
    "latencyHist" INTEGER[],

    CONSTRAINT "UsageDaily_pkey" PRIMARY KEY ("tenantId","day","apiKeyId","model","status")
);

-- CreateIndex
CREATE INDEX "UsageHourly_hour_idx" ON "UsageHourly"("hour");

-- CreateIndex
CREATE INDEX "UsageDaily_day_idx" ON "UsageDaily"("day");
