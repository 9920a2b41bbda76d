/**
 * The Quickstart, proven on the production build: a gateway started on an
 * empty data directory prints its first admin key once, that key serves a
 * first inference, a restart prints nothing new, MODELGATE_BOOTSTRAP_KEY is
 * stored but never printed, and in cluster mode exactly one process creates
 * the key.
 */
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { ProductionGateway, REPO_ROOT, runCli, STARTUP_TEST_TIMEOUT_MS } from '../harness';
import { testEnv } from '../helpers/env';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const PRINTED_KEY = /^ {3}(mg_(?:live|test)_[0-9A-Za-z]{49})$/gm;

function printedKeys(output: string): string[] {
  return [...output.matchAll(PRINTED_KEY)].map((m) => m[1] as string);
}

/** What `npm start` sets on a fresh clone: nothing but a data directory (and a free port). */
function quickstartEnv(): Record<string, string> {
  return {
    NODE_ENV: 'production',
    HOST: '127.0.0.1',
    LOG_PRETTY: 'false',
    MODEL_REPOSITORY: path.join(REPO_ROOT, 'models'),
    DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'mg-first-run-')),
  };
}

const INFER = 'mutation($input: InferInput!) { infer(input: $input) { modelName outputs { name shape } } }';
const zeros = Buffer.alloc(784 * 4).toString('base64');
const inferVars = { input: { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], dataBase64: zeros }] } };

describe('first run', () => {
  it('prints one admin key on an empty data dir; it serves a first infer; a restart prints none', async () => {
    const env = quickstartEnv();
    const gw = await ProductionGateway.start(env);
    let second: ProductionGateway | undefined;
    try {
      const keys = printedKeys(gw.output);
      expect(keys).toHaveLength(1);
      const key = keys[0] as string;
      expect(gw.output).toContain('shown ONLY ONCE');
      // Logs are written asynchronously: wait for the line before reading it. It names the key's prefix only, never the key.
      await gw.waitForLog('first admin key created');
      expect(gw.logLines().filter((l) => JSON.stringify(l).includes(key))).toEqual([]);
      expect(gw.logLines().some((l) => l['msg'] === 'first admin key created (tenant "admin")')).toBe(true);

      const res = await gw.graphql<{ infer: { modelName: string; outputs: { name: string; shape: number[] }[] } }>(INFER, inferVars, { authorization: `Bearer ${key}` });
      expect(res.body?.errors).toBeUndefined();
      expect(res.body?.data?.infer).toEqual({ modelName: 'fashion-cnn', outputs: [{ name: 'probabilities', shape: [1, 10] }] });

      expect((await gw.stop()).code).toBe(0);
      second = await gw.restart();
      expect(printedKeys(second.output)).toEqual([]);
      const me = await second.graphql<{ me: { scopes: string[] } }>('{ me { scopes } }', {}, { authorization: `Bearer ${key}` });
      expect(me.body?.data?.me.scopes).toEqual(['ADMIN']);
    } finally {
      await second?.kill();
      await gw.kill();
    }
  });

  it('stores MODELGATE_BOOTSTRAP_KEY as the first admin key without printing it', async () => {
    const generated = await runCli(['keys', 'generate'], {});
    expect(generated.code).toBe(0);
    const key = generated.stdout.trim();
    const gw = await ProductionGateway.start({ ...quickstartEnv(), MODELGATE_BOOTSTRAP_KEY: key });
    try {
      expect(gw.output).not.toContain(key);
      expect(printedKeys(gw.output)).toEqual([]);
      const me = await gw.graphql<{ me: { scopes: string[]; tenant: { name: string } } }>('{ me { scopes tenant { name } } }', {}, { authorization: `Bearer ${key}` });
      expect(me.body?.data?.me).toEqual({ scopes: ['ADMIN'], tenant: { name: 'admin' } });
    } finally {
      await gw.kill();
    }
  });

  it('refuses a malformed MODELGATE_BOOTSTRAP_KEY at start, without echoing it', async () => {
    const gw = await ProductionGateway.start({ ...quickstartEnv(), MODELGATE_BOOTSTRAP_KEY: 'mg_live_notakey' }, { waitReady: false });
    const exit = await gw.waitExit();
    expect(exit.code).toBe(2);
    expect(gw.output).toContain('MODELGATE_BOOTSTRAP_KEY');
    expect(gw.output).not.toContain('mg_live_notakey');
  });

  describe('in cluster mode (GATEWAY_PROCESSES=2) on an empty PostgreSQL database', () => {
    const dbName = `${testEnv.databaseName}_firstrun`;
    beforeAll(async () => {
      const admin = new pg.Client({ connectionString: testEnv.adminDatabaseUrl });
      await admin.connect();
      await admin.query(`CREATE DATABASE "${dbName}"`);
      await admin.end();
    });
    afterAll(async () => {
      const admin = new pg.Client({ connectionString: testEnv.adminDatabaseUrl });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS "${dbName}" WITH (FORCE)`);
      await admin.end();
    });

    it('creates and prints exactly one key', async () => {
      const url = new URL(testEnv.databaseUrl);
      url.pathname = `/${dbName}`;
      const gw = await ProductionGateway.start({
        ...quickstartEnv(),
        DATABASE_URL: url.toString(),
        DATABASE_POOL_SIZE: '2',
        REDIS_URL: testEnv.redisUrl,
        REDIS_KEY_PREFIX: `${testEnv.redisPrefix}firstrun:`,
        GATEWAY_PROCESSES: '2',
        INFERENCE_WORKERS: '1',
      });
      try {
        // The process that answered /readyz may not be the one that created the key: wait for the frame's last line.
        await gw.waitForLog('BOOTSTRAP_ADMIN=false to skip this.');
        const keys = printedKeys(gw.output);
        expect(keys).toHaveLength(1);
        const client = new pg.Client({ connectionString: url.toString() });
        await client.connect();
        const rows = await client.query(`SELECT count(*)::int AS n FROM "ApiKey" WHERE 'admin' = ANY(scopes)`);
        await client.end();
        expect(rows.rows[0]).toEqual({ n: 1 });
        const me = await gw.graphql<{ me: { scopes: string[] } }>('{ me { scopes } }', {}, { authorization: `Bearer ${keys[0]}` });
        expect(me.body?.data?.me.scopes).toEqual(['ADMIN']);
      } finally {
        await gw.stop();
      }
    });
  });
});
