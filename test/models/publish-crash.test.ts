/**
 * `kill -9` during a publish (issue #23 item 7), then restart, on the
 * production build: the version is either complete (its digest verified
 * before it serves) or absent, never half. Three cut points: while the
 * weights stream in, after they are stored but while the upload is being
 * inspected (before the catalog commit), and after a complete publish with
 * the replica's cached copy corrupted. Blob GC (MODEL_BLOB_GC_GRACE_MS
 * short here) then deletes what the crashes left: chunks of the cut upload,
 * the stored-but-never-published blob, a partial cache fetch. The gateway
 * uses a database of its own (catalog models are fleet-wide).
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import http from 'node:http';
import path from 'node:path';
import pg from 'pg';
import { ProductionGateway, productionEnv, until } from '../harness';
import { authHeaders } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { buildOnnx } from '../helpers/onnx-builder';
import { applyMigrations } from '../../src/db/migrate';
import { Database } from '../../src/db/database';
import { KeyService } from '../../src/keys/key.service';
import { createLogger } from '../../src/log/logger';

const dbName = `${testEnv.databaseName}_crash`;
const dbUrl = (() => {
  const url = new URL(testEnv.databaseUrl);
  url.pathname = `/${dbName}`;
  return url.toString();
})();
const MODEL = `crash-${randomBytes(4).toString('hex')}`;
/** 16 MiB of weights: 16 chunk rows, long enough to cut in the middle. */
const FLOATS = 4 * 1024 * 1024;

let gw: ProductionGateway;
let admin: Record<string, string>;
let sql: pg.Client;
let dataDir: string;

async function adminQuery(text: string): Promise<void> {
  const client = new pg.Client({ connectionString: testEnv.adminDatabaseUrl });
  await client.connect();
  await client.query(text);
  await client.end();
}

async function count(text: string, values: unknown[] = []): Promise<number> {
  return Number((await sql.query<{ n: string }>(text, values)).rows[0]!.n);
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function route(version: number): string {
  return `/v2/repository/models/${MODEL}/versions/${version}/model.onnx`;
}

/** Streams the first `sent` bytes of a PUT whose Content-Length promises all of `body`; never finishes it. */
function partialPut(body: Buffer, sent: number): http.ClientRequest {
  const request = http.request({ host: '127.0.0.1', port: Number(new URL(gw.url).port), method: 'PUT', path: route(1), headers: { ...admin, 'content-type': 'application/octet-stream', 'content-length': String(body.length) } });
  request.on('error', () => undefined);
  request.write(body.subarray(0, sent));
  return request;
}

/** Pids of inspection children the gateway forked (their parent is the gateway). */
function inspectChildren(parent: number): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const status = readFileSync(`/proc/${entry}/status`, 'utf8');
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (new RegExp(`^PPid:\\s+${parent}$`, 'm').test(status) && cmdline.includes('inspect-child')) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function alive(pid: number): boolean {
  return existsSync(`/proc/${pid}`) && !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
}

beforeAll(async () => {
  await adminQuery(`CREATE DATABASE "${dbName}"`);
  await applyMigrations({ kind: 'postgres', url: dbUrl });
  const log = createLogger({ level: 'silent', pretty: false });
  const keyDb = new Database({ database: { mode: 'postgres', url: dbUrl, poolSize: 2 }, databaseConnectRetryMaxMs: 1000, migrateOnStart: false }, log);
  await keyDb.start();
  const keys = new KeyService(keyDb, { invalidate: async () => undefined }, log, 'test');
  const caller = { principal: null, actor: 'test' };
  const tenant = await keys.createTenant(caller, { name: `crash-${randomBytes(4).toString('hex')}` });
  admin = authHeaders((await keys.createApiKey(caller, { tenant: tenant.id, name: 'crash test', scopes: ['admin'], allowedModels: [], expiresAt: null })).plaintext);
  await keyDb.close();
  sql = new pg.Client({ connectionString: dbUrl });
  await sql.connect();
  const env: Record<string, string> = {
    ...productionEnv({ databaseUrl: dbUrl }),
    MIGRATE_ON_START: 'false',
    MODEL_REPOSITORY: mkdtempSync(path.join(os.tmpdir(), 'mg-seed-')),
    INFERENCE_WORKERS: '1',
    MODEL_UPLOAD_MAX_BYTES: String(64 * 1024 * 1024),
    MODEL_REPLICA_HEARTBEAT_MS: '300',
    // GC's grace must exceed the inspection bound (the config refuses otherwise).
    MODEL_VALIDATE_TIMEOUT_MS: '15000',
    MODEL_BLOB_GC_GRACE_MS: '20000',
  };
  dataDir = env['DATA_DIR']!;
  gw = await ProductionGateway.start(env, { name: 'G' });
}, 240_000);

afterAll(async () => {
  await gw?.stop();
  await sql?.end();
  await adminQuery(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
});

describe('kill -9 during a publish leaves the version complete or absent', () => {
  it('cut while the weights stream in: after the restart the version is absent, and the chunks written so far are swept', async () => {
    const body = buildOnnx({ initializerBytes: FLOATS * 4, fill: 2 });
    const request = partialPut(body, Math.floor(body.length / 2));
    await until('chunks of the upload in the store', () => count('SELECT count(*) AS n FROM "ModelBlobChunk"'), { accept: (n) => n >= 2 });
    await gw.kill();
    request.destroy();
    gw = await gw.restart();
    expect(await count('SELECT count(*) AS n FROM "ModelCatalogVersion" WHERE model = $1', [MODEL])).toBe(0);
    expect(await count('SELECT count(*) AS n FROM "ModelBlob" WHERE digest = $1', [sha(body)])).toBe(0);
    expect((await gw.request('GET', `/v2/models/${MODEL}/ready`, { headers: admin })).status).toBe(404);
    // Blob GC removes the cut upload's chunks once they are older than the grace period.
    await until('the cut upload\'s chunks to be swept', () => count('SELECT count(*) AS n FROM "ModelBlobChunk"'), { accept: (n) => n === 0 });
  }, 240_000);

  it('cut after the weights are stored, while the upload is inspected: absent after the restart, the inspection child died with its parent, the unpublished blob is collected', async () => {
    const body = buildOnnx({ initializerBytes: FLOATS * 4, fill: 3 });
    const digest = sha(body);
    const answer = gw.request('PUT', route(1), { headers: { ...admin, 'content-type': 'application/octet-stream' }, body }).catch(() => null);
    await until('the blob to be stored', () => count('SELECT count(*) AS n FROM "ModelBlob" WHERE digest = $1', [digest]), { accept: (n) => n === 1, everyMs: 5 });
    const children = await until('the inspection child', async () => inspectChildren(gw.pid), { accept: (p) => p.length > 0, everyMs: 5 });
    await gw.kill();
    await answer;
    const committed = await count('SELECT count(*) AS n FROM "ModelCatalogVersion" WHERE model = $1', [MODEL]);
    // The inspection takes a second or more: the kill lands before the commit.
    expect(committed).toBe(0);
    // The child notices its parent is gone (IPC disconnect) and exits.
    await until('the orphaned inspection child to exit', async () => children!.filter(alive), { accept: (left) => left.length === 0 });
    gw = await gw.restart();
    expect((await gw.request('GET', `/v2/models/${MODEL}/ready`, { headers: admin })).status).toBe(404);
    // Nothing names the stored blob: GC deletes it (and its chunks) after the grace period.
    await until('the unpublished blob to be collected', () => count('SELECT count(*) AS n FROM "ModelBlob" WHERE digest = $1', [digest]), { accept: (n) => n === 0 });
    expect(await count('SELECT count(*) AS n FROM "ModelBlobChunk"')).toBe(0);
  }, 240_000);

  it('cut after a complete publish, with the cached copy corrupted and a partial fetch left: the restart re-fetches by digest and serves the whole weights', async () => {
    const body = buildOnnx({ initializerBytes: FLOATS * 4, fill: 1 });
    const digest = sha(body);
    const published = await gw.request<Record<string, unknown>>('PUT', route(1), { headers: { ...admin, 'content-type': 'application/octet-stream' }, body });
    expect(published.status).toBe(200);
    expect(published.body).toMatchObject({ digest });
    await gw.kill();
    const cached = path.join(dataDir, 'model-cache', `${digest}.onnx`);
    expect(sha(readFileSync(cached))).toBe(digest);
    writeFileSync(cached, body.subarray(0, body.length >> 1));
    const partial = path.join(dataDir, 'model-cache', `${'e'.repeat(64)}.onnx.${randomBytes(4).toString('hex')}.part`);
    writeFileSync(partial, randomBytes(1000));
    utimesSync(partial, new Date(Date.now() - 120_000), new Date(Date.now() - 120_000));

    gw = await gw.restart();
    expect((await gw.request('GET', `/v2/models/${MODEL}/versions/1/ready`, { headers: admin })).status).toBe(200);
    expect(sha(readFileSync(cached))).toBe(digest);
    // Y = X + sum(W): every one of the 4 Mi weights (1.0 each) is there.
    const inferred = await gw.request<{ outputs: { data: number[] }[] }>('POST', `/v2/models/${MODEL}/infer`, {
      headers: { ...admin, 'content-type': 'application/json' },
      body: JSON.stringify({ inputs: [{ name: 'X', datatype: 'FP32', shape: [1, 4], data: [0, 1, 2, 3] }] }),
    });
    expect(inferred.status).toBe(200);
    expect(inferred.body!.outputs[0]!.data).toEqual([FLOATS, FLOATS + 1, FLOATS + 2, FLOATS + 3]);
    await until('the partial fetch to be collected', async () => existsSync(partial), { accept: (present) => !present });
    // The published blob is referenced: GC keeps it.
    expect(await count('SELECT count(*) AS n FROM "ModelBlob" WHERE digest = $1', [digest])).toBe(1);
  }, 240_000);
});
