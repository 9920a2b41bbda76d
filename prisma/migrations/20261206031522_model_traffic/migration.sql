-- AlterTable
ALTER TABLE "ModelCatalogVersion" ADD COLUMN     "loadGeneration" BIGINT NOT NULL DEFAULT 0,
ADD COLUMN     "trafficPercent" INTEGER;
