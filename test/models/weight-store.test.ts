/**
 * The weight store (chunked rows in PostgreSQL, content-addressed) and each
 * replica's digest-verified cache (issue #23), on the run's real Postgres.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync, existsSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Database } from '../../src/db/database';
import { createLogger } from '../../src/log/logger';
import { DomainError } from '../../src/errors';
import { PostgresWeightStore, WEIGHT_CHUNK_BYTES, bytesSource } from '../../src/inference/weight-store';
import { WeightCache, sha256File } from '../../src/inference/weight-cache';
import { testEnv } from '../helpers/env';

let db: Database;
let store: PostgresWeightStore;

beforeAll(async () => {
  db = new Database({ database: { mode: 'postgres', url: testEnv.databaseUrl, poolSize: 2 }, databaseConnectRetryMaxMs: 1000, migrateOnStart: false }, createLogger({ level: 'silent', pretty: false }));
  await db.start();
  store = new PostgresWeightStore(db);
});

afterAll(async () => {
  await db?.close();
});

/** The bytes in pieces of `piece` bytes, as a request body streams in. */
async function* pieces(bytes: Buffer, piece: number): AsyncIterable<Uint8Array> {
  for (let i = 0; i < bytes.length; i += piece) yield bytes.subarray(i, i + piece);
}

async function collect(source: AsyncIterable<Uint8Array>): Promise<{ bytes: Buffer; chunks: number }> {
  const parts: Buffer[] = [];
  for await (const chunk of source) parts.push(Buffer.from(chunk));
  return { bytes: Buffer.concat(parts), chunks: parts.length };
}

async function orphanChunks(): Promise<number> {
  const rows = await db.prisma.$queryRawUnsafe<{ n: number }[]>('SELECT count(*)::int AS n FROM "ModelBlobChunk" c WHERE NOT EXISTS (SELECT 1 FROM "ModelBlob" b WHERE b."uploadId" = c."uploadId")');
  return rows[0]!.n;
}

describe('PostgresWeightStore', () => {
  it('stores a stream in 1 MiB chunk rows under its SHA-256 and streams it back chunk by chunk', async () => {
    const bytes = randomBytes(Math.floor(2.5 * WEIGHT_CHUNK_BYTES));
    const stored = await store.put(pieces(bytes, 100_000), bytes.length);
    expect(stored).toEqual({ digest: createHash('sha256').update(bytes).digest('hex'), sizeBytes: bytes.length });
    expect(await store.has(stored.digest)).toBe(true);
    const back = await collect(store.open(stored.digest));
    expect(back.chunks).toBe(3);
    expect(back.bytes.equals(bytes)).toBe(true);

    // The same content again: one blob, and the second upload's chunks are gone.
    expect(await store.put(bytesSource(bytes), bytes.length)).toEqual(stored);
    expect(await db.prisma.modelBlob.count({ where: { digest: stored.digest } })).toBe(1);
    expect(await orphanChunks()).toBe(0);
  });

  it('refuses a stream over the bound with MODEL_TOO_LARGE and leaves no chunks behind', async () => {
    const bytes = randomBytes(WEIGHT_CHUNK_BYTES + 10);
    const refused = await store.put(pieces(bytes, 300_000), WEIGHT_CHUNK_BYTES).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(DomainError);
    expect((refused as DomainError).code).toBe('MODEL_TOO_LARGE');
    expect(await store.has(createHash('sha256').update(bytes).digest('hex'))).toBe(false);
    expect(await orphanChunks()).toBe(0);
  });

  it('an upload cut short (chunks, no blob row) is invisible and swept', async () => {
    const uploadId = '00000000-0000-4000-8000-000000000023';
    await db.prisma.modelBlobChunk.create({ data: { uploadId, index: 0, data: new Uint8Array(randomBytes(10)), createdAt: new Date(Date.now() - 2 * 3600_000) } });
    // No blob names it, so no digest reads it; a fresh one (an upload in progress) is left alone.
    expect(await db.prisma.modelBlob.count({ where: { uploadId } })).toBe(0);
    const fresh = '00000000-0000-4000-8000-000000000024';
    await db.prisma.modelBlobChunk.create({ data: { uploadId: fresh, index: 0, data: new Uint8Array(randomBytes(10)) } });
    await store.sweepUnfinished(3600_000);
    expect(await db.prisma.modelBlobChunk.count({ where: { uploadId } })).toBe(0);
    expect(await db.prisma.modelBlobChunk.count({ where: { uploadId: fresh } })).toBe(1);
    await db.prisma.modelBlobChunk.deleteMany({ where: { uploadId: fresh } });
  });
});

describe('blob GC', () => {
  // The run's database is shared with gateways publishing right now: only blobs made old here are old enough to go.
  const DAY = 24 * 3600_000;
  const LOCK = 23_0023;

  it('deletes weights no catalog version names once past the grace period, with their chunks; keeps referenced and recent ones', async () => {
    const orphan = await store.put(bytesSource(randomBytes(WEIGHT_CHUNK_BYTES + 1)), 4 * WEIGHT_CHUNK_BYTES);
    const referenced = await store.put(bytesSource(randomBytes(100)), WEIGHT_CHUNK_BYTES);
    const recent = await store.put(bytesSource(randomBytes(100)), WEIGHT_CHUNK_BYTES);
    // A warm-up file a version was published with: named only in its config (warmup_files).
    const warmupFile = await store.put(bytesSource(randomBytes(64)), WEIGHT_CHUNK_BYTES);
    const model = `gc-${randomBytes(4).toString('hex')}`;
    await db.prisma.modelCatalogVersion.create({ data: { model, version: 1, desiredState: 'UNLOADED', digest: referenced.digest, generation: 0n } });
    await db.prisma.modelCatalogVersion.create({ data: { model, version: 2, desiredState: 'UNLOADED', digest: null, config: { warmup_files: { 'image.raw': warmupFile.digest } }, generation: 0n } });
    // A config whose warmup_files is not an object (never written by the gateway) names nothing and breaks nothing.
    await db.prisma.modelCatalogVersion.create({ data: { model, version: 3, desiredState: 'UNLOADED', digest: null, config: { warmup_files: 'image.raw' }, generation: 0n } });
    try {
      // The rule the fleet's cache sweep keeps by: weights and published warm-up files, nothing else.
      const named = await store.referencedDigests();
      expect(named).toEqual(expect.arrayContaining([referenced.digest, warmupFile.digest]));
      expect(named).not.toContain(orphan.digest);
      expect(named).not.toContain(recent.digest);

      const old = new Date(Date.now() - 2 * DAY);
      await db.prisma.modelBlob.updateMany({ where: { digest: { in: [orphan.digest, referenced.digest, warmupFile.digest] } }, data: { storedAt: old } });
      const orphanUpload = (await db.prisma.modelBlob.findUniqueOrThrow({ where: { digest: orphan.digest } })).uploadId;
      expect(await db.prisma.modelBlobChunk.count({ where: { uploadId: orphanUpload } })).toBe(2);

      const gone = await store.collectUnreferenced(DAY, LOCK);
      expect(gone).toContain(orphan.digest);
      expect(gone).not.toContain(referenced.digest);
      expect(gone).not.toContain(recent.digest);
      expect(gone).not.toContain(warmupFile.digest);
      expect(await store.has(warmupFile.digest)).toBe(true);
      expect(await store.has(orphan.digest)).toBe(false);
      expect(await db.prisma.modelBlobChunk.count({ where: { uploadId: orphanUpload } })).toBe(0);
      expect(await store.has(referenced.digest)).toBe(true);
      expect(await store.has(recent.digest)).toBe(true);

      // Uploading the same bytes again restarts the grace period: an old unreferenced blob just re-stored stays.
      await db.prisma.modelBlob.updateMany({ where: { digest: recent.digest }, data: { storedAt: old } });
      const again = await db.prisma.modelBlob.findUniqueOrThrow({ where: { digest: recent.digest } });
      await store.put(store.open(recent.digest), WEIGHT_CHUNK_BYTES);
      expect((await db.prisma.modelBlob.findUniqueOrThrow({ where: { digest: recent.digest } })).storedAt.getTime()).toBeGreaterThan(again.storedAt.getTime());
      expect(await store.collectUnreferenced(DAY, LOCK)).not.toContain(recent.digest);
    } finally {
      await db.prisma.modelCatalogVersion.deleteMany({ where: { model } });
    }
  });

  it('the replica cache drops files of digests nothing keeps and stale partial fetches, past the grace period', async () => {
    const kept = await store.put(bytesSource(randomBytes(300)), WEIGHT_CHUNK_BYTES);
    const dropped = await store.put(bytesSource(randomBytes(300)), WEIGHT_CHUNK_BYTES);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-cache-'));
    const cache = new WeightCache(dir, store);
    await cache.ensure(kept.digest);
    await cache.ensure(dropped.digest);
    const part = `${dropped.digest}.onnx.1234.part`;
    writeFileSync(path.join(dir, part), 'half');
    writeFileSync(path.join(dir, 'notes.txt'), 'not ours');
    // Nothing is old enough yet.
    expect(await cache.collect(new Set([kept.digest]), 3600_000)).toEqual([]);
    expect((await cache.collect(new Set([kept.digest]), 0)).sort()).toEqual([`${dropped.digest}.onnx`, part].sort());
    expect(readdirSync(dir).sort()).toEqual([`${kept.digest}.onnx`, 'notes.txt'].sort());
  });
});

describe('WeightCache', () => {
  it('fetches by digest, verifies, and fetches again when the local copy is corrupt', async () => {
    const bytes = randomBytes(WEIGHT_CHUNK_BYTES + 12345);
    const { digest } = await store.put(bytesSource(bytes), bytes.length);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-cache-'));
    const cache = new WeightCache(dir, store);
    const file = await cache.ensure(digest);
    expect(file).toBe(path.join(dir, `${digest}.onnx`));
    expect(readFileSync(file).equals(bytes)).toBe(true);

    writeFileSync(file, Buffer.from('not the weights'));
    expect(await cache.ensure(digest)).toBe(file);
    expect(await sha256File(file)).toBe(digest);
    expect(readdirSync(dir)).toEqual([`${digest}.onnx`]);
  });

  it('refuses a digest the store lacks and leaves no partial file', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-cache-'));
    const cache = new WeightCache(dir, store);
    const missing = 'f'.repeat(64);
    await expect(cache.ensure(missing)).rejects.toThrow(/no weights/);
    await expect(cache.ensure('../etc/passwd')).rejects.toThrow(/not a SHA-256/);
    expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
  });
});
