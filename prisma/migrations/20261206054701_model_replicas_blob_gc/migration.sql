-- AlterTable
ALTER TABLE "ModelBlob" ADD COLUMN     "storedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP;

-- CreateTable
CREATE TABLE "ModelReplica" (
    "id" UUID NOT NULL,
    "host" TEXT NOT NULL,
    "pid" INTEGER NOT NULL,
    "startedAt" TIMESTAMPTZ(3) NOT NULL,
    "heartbeatAt" TIMESTAMPTZ(3) NOT NULL,
    "expiresAt" TIMESTAMPTZ(3) NOT NULL,
    "generation" BIGINT NOT NULL,
    "versions" JSONB NOT NULL,

    CONSTRAINT "ModelReplica_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "ModelReplica_expiresAt_idx" ON "ModelReplica"("expiresAt");
