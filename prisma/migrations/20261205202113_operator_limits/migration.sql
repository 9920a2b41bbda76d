-- AlterTable
ALTER TABLE "ApiKey" ADD COLUMN     "operatorLimits" JSONB;

-- Keys made before this column existed: their limits count as an admin's (a keys:manage key may
-- tighten them, never lift them), the safe reading when nobody recorded who set them.
UPDATE "ApiKey" SET "operatorLimits" = jsonb_build_object(
  'requestsPerMinute', "requestsPerMinute",
  'computeUnitsPerMinute', "computeUnitsPerMinute",
  'monthlyComputeUnitBudget', "monthlyComputeUnitBudget",
  'monthlyBudget', CASE WHEN "monthlyBudgetMicros" IS NULL OR "budgetCurrency" IS NULL THEN NULL
    ELSE jsonb_build_object('amountMicros', "monthlyBudgetMicros"::text, 'currency', "budgetCurrency") END,
  'credits', CASE WHEN "creditsSince" IS NULL THEN NULL
    ELSE jsonb_build_object('refillAmount', "creditRefillAmount", 'refillInterval', "creditRefillInterval"::text) END
);
