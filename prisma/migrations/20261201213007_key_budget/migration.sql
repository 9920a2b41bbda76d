-- AlterTable
ALTER TABLE "ApiKey" ADD COLUMN     "monthlyComputeUnitBudget" INTEGER;
