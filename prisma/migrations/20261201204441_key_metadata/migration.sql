-- AlterTable
ALTER TABLE "ApiKey" ADD COLUMN     "metadata" JSONB;
