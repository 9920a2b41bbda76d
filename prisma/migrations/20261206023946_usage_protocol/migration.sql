-- CreateEnum
CREATE TYPE "UsageProtocol" AS ENUM ('GRAPHQL', 'REST', 'GRPC', 'UNKNOWN');

-- Rows stored before this migration did not record their door: they read UNKNOWN (never a guess).
-- The default only fills existing rows, and is dropped so that every new insert must name its protocol.

-- AlterTable
ALTER TABLE "UsageDaily" DROP CONSTRAINT "UsageDaily_pkey",
ADD COLUMN     "protocol" "UsageProtocol" NOT NULL DEFAULT 'UNKNOWN',
ADD CONSTRAINT "UsageDaily_pkey" PRIMARY KEY ("tenantId", "day", "apiKeyId", "model", "status", "protocol");
ALTER TABLE "UsageDaily" ALTER COLUMN "protocol" DROP DEFAULT;

-- AlterTable
ALTER TABLE "UsageHourly" DROP CONSTRAINT "UsageHourly_pkey",
ADD COLUMN     "protocol" "UsageProtocol" NOT NULL DEFAULT 'UNKNOWN',
ADD CONSTRAINT "UsageHourly_pkey" PRIMARY KEY ("tenantId", "hour", "apiKeyId", "model", "status", "protocol");
ALTER TABLE "UsageHourly" ALTER COLUMN "protocol" DROP DEFAULT;

-- AlterTable
ALTER TABLE "UsageRecord" ADD COLUMN     "protocol" "UsageProtocol" NOT NULL DEFAULT 'UNKNOWN';
ALTER TABLE "UsageRecord" ALTER COLUMN "protocol" DROP DEFAULT;
