/**
 * Where published weights live so every replica can read them (issue #23):
 * content-addressed by SHA-256, streamed in and out in chunks, never held
 * whole in memory. `WeightStore` is the port; PostgreSQL (chunked rows) is
 * the one implementation today, and a DATA_DIR or S3-compatible store can
 * come later behind the same interface.
 *
 * Writes are crash-safe: chunks are written under a fresh upload id, and the
 * blob row that names a digest is written only after the last chunk, so a
 * `kill -9` mid-upload leaves chunks no blob names (swept later), never a
 * digest whose content is incomplete.
 */
import { createHash, randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import type { Database } from '../db/database';
import { ModelTooLargeError, ModelUnavailableError } from '../errors';

/** Rows of 1 MiB: small enough for any driver, few enough that a 200 MB model is 200 rows. */
export const WEIGHT_CHUNK_BYTES = 1024 * 1024;

export interface StoredWeights {
  digest: string;
  sizeBytes: number;
}

export interface WeightStore {
  /** Streams the bytes in, hashing as they come; refuses (MODEL_TOO_LARGE) past maxBytes. */
  put(source: AsyncIterable<Uint8Array>, maxBytes: number): Promise<StoredWeights>;
  /** Whether a complete blob with this digest exists. */
  has(digest: string): Promise<boolean>;
  /** The blob's bytes in order, one chunk at a time; NOT_FOUND-free: throws if absent. */
  open(digest: string): AsyncIterable<Uint8Array>;
  /** Removes what uploads a crash cut short, older than `olderThanMs`; answers how many pieces went. */
  sweepUnfinished(olderThanMs: number): Promise<number>;
  /**
   * Deletes blobs no catalog version names whose last upload is older than
   * `graceMs`, under `lockKey` (the catalog writers' advisory lock, so a commit
   * naming a digest never races its deletion); answers the digests deleted.
   */
  collectUnreferenced(graceMs: number, lockKey: number): Promise<string[]>;
  /** Every digest a catalog version names (the rule collectUnreferenced keeps by). */
  referencedDigests(): Promise<string[]>;
}

export const SHA256_HEX = /^[0-9a-f]{64}$/;

/**
 * The digests catalog versions name: as weights, or as warm-up files a version was published with
 * (config.warmup_files). The one statement of that rule: blob GC keeps by it, the fleet's cache
 * sweep reads it.
 */
const REFERENCED_DIGESTS = `SELECT v."digest" FROM "ModelCatalogVersion" v WHERE v."digest" IS NOT NULL
  UNION SELECT f.value FROM "ModelCatalogVersion" v,
    jsonb_each_text(CASE WHEN jsonb_typeof(v."config"->'warmup_files') = 'object' THEN v."config"->'warmup_files' END) f`;
const REFERENCING_VERSION = `SELECT 1 FROM (${REFERENCED_DIGESTS}) r("digest") WHERE r."digest" = b."digest"`;

export class PostgresWeightStore implements WeightStore {
  constructor(private readonly db: Database) {}

  async put(source: AsyncIterable<Uint8Array>, maxBytes: number): Promise<StoredWeights> {
    const uploadId = randomUUID();
    const hash = createHash('sha256');
    let size = 0;
    let index = 0;
    let pending: Buffer[] = [];
    let pendingBytes = 0;
    const flush = async (): Promise<void> => {
      if (pendingBytes === 0) return;
      const data = Buffer.concat(pending, pendingBytes);
      pending = [];
      pendingBytes = 0;
      await this.db.prisma.modelBlobChunk.create({ data: { uploadId, index: index++, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) } });
    };
    try {
      for await (const piece of source) {
        size += piece.byteLength;
        if (size > maxBytes) throw new ModelTooLargeError(`Model weights exceed MODEL_UPLOAD_MAX_BYTES (${maxBytes} bytes)`, { maxBytes });
        hash.update(piece);
        let offset = 0;
        while (offset < piece.byteLength) {
          const take = Math.min(WEIGHT_CHUNK_BYTES - pendingBytes, piece.byteLength - offset);
          pending.push(Buffer.from(piece.buffer, piece.byteOffset + offset, take));
          pendingBytes += take;
          offset += take;
          if (pendingBytes === WEIGHT_CHUNK_BYTES) await flush();
        }
      }
      await flush();
    } catch (error) {
      await this.discard(uploadId);
      throw error;
    }
    // An upload stalled past the GC grace period may have lost chunks to the sweep: never name an incomplete set.
    if ((await this.db.prisma.modelBlobChunk.count({ where: { uploadId } })) !== index) {
      await this.discard(uploadId);
      throw new ModelUnavailableError('The upload stalled longer than MODEL_BLOB_GC_GRACE_MS and its first chunks were swept; upload again', {});
    }
    const digest = hash.digest('hex');
    // The blob row makes the digest visible; a digest stored before keeps its own chunks.
    const created = await this.db.prisma.modelBlob.createMany({ data: [{ digest, uploadId, sizeBytes: BigInt(size), chunkCount: index }], skipDuplicates: true });
    if (created.count === 0) {
      await this.discard(uploadId);
      // Stored again: the grace period before blob GC may delete it starts over.
      await this.db.prisma.modelBlob.updateMany({ where: { digest }, data: { storedAt: new Date() } });
    }
    return { digest, sizeBytes: size };
  }

  async has(digest: string): Promise<boolean> {
    return (await this.db.prisma.modelBlob.findUnique({ where: { digest }, select: { digest: true } })) !== null;
  }

  async *open(digest: string): AsyncIterable<Uint8Array> {
    const blob = await this.db.prisma.modelBlob.findUnique({ where: { digest } });
    if (!blob) throw new Error(`no weights with digest ${digest} in the weight store`);
    for (let index = 0; index < blob.chunkCount; index++) {
      const chunk = await this.db.prisma.modelBlobChunk.findUnique({ where: { uploadId_index: { uploadId: blob.uploadId, index } } });
      if (!chunk) throw new Error(`weights ${digest} are missing chunk ${index}`);
      yield chunk.data;
    }
  }

  /** Removes chunks no blob names that are older than `olderThanMs` (uploads a crash cut short). */
  async sweepUnfinished(olderThanMs: number): Promise<number> {
    const cutoff = new Date(Date.now() - olderThanMs);
    // An upload's age is its newest chunk's: one still streaming keeps adding chunks and is left alone.
    return this.db.prisma.$executeRawUnsafe(
      `DELETE FROM "ModelBlobChunk" c WHERE c."uploadId" IN (SELECT "uploadId" FROM "ModelBlobChunk" GROUP BY "uploadId" HAVING MAX("createdAt") < $1)
         AND NOT EXISTS (SELECT 1 FROM "ModelBlob" b WHERE b."uploadId" = c."uploadId")`,
      cutoff,
    );
  }

  async collectUnreferenced(graceMs: number, lockKey: number): Promise<string[]> {
    const cutoff = new Date(Date.now() - graceMs);
    // Most passes find nothing: look first without a transaction or the catalog lock.
    const [candidate] = await this.db.prisma.$queryRawUnsafe<{ digest: string }[]>(
      `SELECT b."digest" FROM "ModelBlob" b WHERE b."storedAt" < $1 AND NOT EXISTS (${REFERENCING_VERSION}) LIMIT 1`,
      cutoff,
    );
    if (!candidate) return [];
    return this.db.prisma.$transaction(async (tx) => {
      await tx.$queryRawUnsafe('SELECT pg_advisory_xact_lock($1)::text', lockKey);
      const gone = await tx.$queryRawUnsafe<{ digest: string; uploadId: string }[]>(
        `DELETE FROM "ModelBlob" b WHERE b."storedAt" < $1
           AND NOT EXISTS (${REFERENCING_VERSION})
         RETURNING b."digest", b."uploadId"::text AS "uploadId"`,
        cutoff,
      );
      if (gone.length > 0) await tx.modelBlobChunk.deleteMany({ where: { uploadId: { in: gone.map((g) => g.uploadId) } } });
      return gone.map((g) => g.digest);
    }, { timeout: 60_000 });
  }

  async referencedDigests(): Promise<string[]> {
    const rows = await this.db.prisma.$queryRawUnsafe<{ digest: string }[]>(`SELECT r."digest" FROM (${REFERENCED_DIGESTS}) r("digest")`);
    return rows.map((r) => r.digest);
  }

  private async discard(uploadId: string): Promise<void> {
    await this.db.prisma.modelBlobChunk.deleteMany({ where: { uploadId } }).catch(() => undefined);
  }
}

/** A Buffer as the one-piece stream `put` takes (base64 file contents of a Triton load call). */
export function bytesSource(bytes: Uint8Array): AsyncIterable<Uint8Array> {
  return Readable.from([bytes], { objectMode: true }) as AsyncIterable<Uint8Array>;
}
