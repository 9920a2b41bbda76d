-- CreateTable
CREATE TABLE "Price" (
    "id" UUID NOT NULL,
    "model" TEXT NOT NULL,
    "tenantId" UUID,
    "currency" CHAR(3) NOT NULL,
    "microsPerUnit" BIGINT NOT NULL,
    "effectiveFrom" TIMESTAMPTZ(3) NOT NULL,
    "createdBy" TEXT NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Price_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "Price_model_effectiveFrom_idx" ON "Price"("model", "effectiveFrom");
