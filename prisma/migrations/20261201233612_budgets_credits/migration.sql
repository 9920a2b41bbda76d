-- CreateEnum
CREATE TYPE "CreditRefillInterval" AS ENUM ('DAILY', 'MONTHLY');

-- AlterTable
ALTER TABLE "ApiKey" ADD COLUMN     "budgetCurrency" CHAR(3),
ADD COLUMN     "creditRefillAmount" INTEGER,
ADD COLUMN     "creditRefillInterval" "CreditRefillInterval",
ADD COLUMN     "creditsSince" TIMESTAMPTZ(3),
ADD COLUMN     "monthlyBudgetMicros" BIGINT;

-- AlterTable
ALTER TABLE "Tenant" ADD COLUMN     "budgetCurrency" CHAR(3),
ADD COLUMN     "creditRefillAmount" INTEGER,
ADD COLUMN     "creditRefillInterval" "CreditRefillInterval",
ADD COLUMN     "creditsSince" TIMESTAMPTZ(3),
ADD COLUMN     "monthlyBudgetMicros" BIGINT;

-- CreateTable
CREATE TABLE "CreditGrant" (
    "id" UUID NOT NULL,
    "tenantId" UUID NOT NULL,
    "apiKeyId" UUID,
    "amount" INTEGER NOT NULL,
    "reason" TEXT,
    "actor" TEXT NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "CreditGrant_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "CreditGrant_tenantId_apiKeyId_createdAt_idx" ON "CreditGrant"("tenantId", "apiKeyId", "createdAt");
