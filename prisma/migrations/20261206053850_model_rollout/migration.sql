-- AlterTable
ALTER TABLE "ModelCatalogVersion" ADD COLUMN     "shadowPercent" INTEGER;

-- CreateTable
CREATE TABLE "ModelServingSnapshot" (
    "id" UUID NOT NULL,
    "model" TEXT NOT NULL,
    "generation" BIGINT NOT NULL,
    "versions" JSONB NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ModelServingSnapshot_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "ModelServingSnapshot_model_generation_idx" ON "ModelServingSnapshot"("model", "generation");
