/** Shared pieces of the resilience tests: keys on any database, an inference call, and polling helpers. */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { Database } from '../../src/db/database';
import { createLogger } from '../../src/log/logger';
import { KeyService, type Caller } from '../../src/keys/key.service';
import type { Scope } from '../../src/auth/principal';
import { imageTensor } from '../inference/fixtures';
import type { ProductionGateway } from '../harness';

const CLI: Caller = { principal: null, actor: 'test' };

export interface MadeKey {
  key: string;
  apiKeyId: string;
  tenantId: string;
}

/** A KeyService on a given database (a private Postgres the gateway already migrated). Invalidations go out by NOTIFY only. */
export class KeyFactory {
  private constructor(
    readonly db: Database,
    readonly keys: KeyService,
  ) {}

  static async open(url: string): Promise<KeyFactory> {
    const log = createLogger({ level: 'silent', pretty: false });
    const db = new Database({ database: { mode: 'postgres', url, poolSize: 2 }, databaseConnectRetryMaxMs: 500, migrateOnStart: false }, log);
    await db.start();
    return new KeyFactory(db, new KeyService(db, { invalidate: async () => undefined }, log, 'test'));
  }

  async tenant(limits: { monthlyComputeUnitQuota?: number } = {}): Promise<string> {
    const t = await this.keys.createTenant(CLI, { name: `tenant-${randomBytes(5).toString('hex')}`, ...limits });
    return t.id;
  }

  async key(tenantId: string, scopes: Scope[] = ['inference']): Promise<MadeKey> {
    const created = await this.keys.createApiKey(CLI, { tenant: tenantId, name: 'resilience', scopes, allowedModels: [] });
    return { key: created.plaintext, apiKeyId: created.apiKey.id, tenantId };
  }

  close(): Promise<void> {
    return this.db.close();
  }
}

export const INFER = 'mutation($in: InferInput!) { infer(input: $in) { modelName } }';
const TENSOR = imageTensor([0]);

/** One fashion-cnn inference (1 item, 1 compute unit). */
export function infer(gw: ProductionGateway, key: string) {
  return gw.graphql<{ infer: { modelName: string } }>(INFER, { in: { model: 'fashion-cnn', inputs: [TENSOR] } }, { authorization: `Bearer ${key}` });
}

export function errorCode(body: { errors?: { extensions?: Record<string, unknown> }[] } | null): unknown {
  return body?.errors?.[0]?.extensions?.['code'];
}

/** The suite's one wait (test/harness/until.ts), re-exported for the resilience tests. */
export { until } from '../harness';

/** /readyz as JSON. */
export async function readyz(gw: ProductionGateway): Promise<{ status: number; body: { ready: boolean; components: Record<string, { ready: boolean; detail: Record<string, unknown> }> } }> {
  const res = await gw.request<{ ready: boolean; components: Record<string, { ready: boolean; detail: Record<string, unknown> }> }>('GET', '/readyz');
  if (!res.body) throw new Error(`/readyz answered no JSON: ${res.text}`);
  return { status: res.status, body: res.body };
}

/** The value of one sample in /metrics (labels as written, e.g. `{channel="pg_notify"}`), or undefined. */
export async function metric(gw: ProductionGateway, name: string, labels = ''): Promise<number | undefined> {
  const text = (await gw.request('GET', '/metrics')).text;
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Usage records of a tenant straight from the database: rows, OK rows, billed units; and the month's rollup units. */
export async function usageOf(url: string, tenantId: string): Promise<{ rows: number; ok: number; units: number; rollupUnits: number }> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const r = await client.query<{ rows: number; ok: number; units: number }>(
      `SELECT count(*)::int AS rows, (count(*) FILTER (WHERE status = 'OK'))::int AS ok, coalesce(sum("computeUnits"), 0)::float8 AS units FROM "UsageRecord" WHERE "tenantId" = $1`,
      [tenantId],
    );
    const d = await client.query<{ units: number }>(`SELECT coalesce(sum("computeUnits"), 0)::float8 AS units FROM "UsageDaily" WHERE "tenantId" = $1`, [tenantId]);
    const row = r.rows[0]!;
    return { rows: row.rows, ok: row.ok, units: row.units, rollupUnits: d.rows[0]!.units };
  } finally {
    await client.end();
  }
}
