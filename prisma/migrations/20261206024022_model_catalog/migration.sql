-- CreateEnum
CREATE TYPE "ModelDesiredState" AS ENUM ('LOADED', 'UNLOADED');

-- CreateTable
CREATE TABLE "ModelCatalogVersion" (
    "model" TEXT NOT NULL,
    "version" INTEGER NOT NULL,
    "ownerTenantId" UUID,
    "config" JSONB,
    "desiredState" "ModelDesiredState" NOT NULL,
    "digest" CHAR(64),
    "generation" BIGINT NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "ModelCatalogVersion_pkey" PRIMARY KEY ("model","version")
);

-- CreateTable
CREATE TABLE "ModelBlob" (
    "digest" CHAR(64) NOT NULL,
    "uploadId" UUID NOT NULL,
    "sizeBytes" BIGINT NOT NULL,
    "chunkCount" INTEGER NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ModelBlob_pkey" PRIMARY KEY ("digest")
);

-- CreateTable
CREATE TABLE "ModelBlobChunk" (
    "uploadId" UUID NOT NULL,
    "index" INTEGER NOT NULL,
    "data" BYTEA NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "ModelBlobChunk_pkey" PRIMARY KEY ("uploadId","index")
);

-- CreateIndex
CREATE INDEX "ModelCatalogVersion_generation_idx" ON "ModelCatalogVersion"("generation");

-- CreateIndex
CREATE UNIQUE INDEX "ModelBlob_uploadId_key" ON "ModelBlob"("uploadId");
