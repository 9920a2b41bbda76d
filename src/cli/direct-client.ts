/**
 * The direct target: the gateway's database itself, through KeyService (the
 * same code the admin API runs), as the operator at the database (principal
 * null). Revocations and changes are broadcast over Redis when REDIS_URL is
 * set and over Postgres NOTIFY, so running gateways apply them at once.
 */
import os from 'node:os';
import type { Config } from '../config';
import { Database } from '../db/database';
import { DataDirLock, DataDirLockedError } from '../db/data-dir-lock';
import type { ApiKey, Tenant } from '../db/generated/client';
import { createLogger, type Logger } from '../log/logger';
import { RedisConnection } from '../redis/redis';
import { RedisKeyInvalidator } from '../auth/invalidation';
import { webhookKeyEvents } from '../webhooks/key-events';
import { redisCreditReset } from '../ratelimit/ratelimit.service';
import { projectApiKey, projectTenant, type BudgetProjection } from '../keys/projection';
import { KeyService, type Caller, type CreateApiKeyInput, type CreateTenantInput, type ListApiKeysFilter, type UpdateApiKeyInput, type UpdateTenantInput } from '../keys/key.service';
import { SecretBox } from '../webhooks/secret-box';
import { reencryptWebhookSecrets, type ReencryptProgress, type ReencryptSummary } from '../webhooks/reencrypt-secrets';
import { KEY_FIELDS, isoOrNull, type AdminClient, type CreatedKeyRecord, type KeyRecord, type RotatedKeyRecord, type TenantRecord } from './admin-client';
import { UnreachableError } from './exit';

/** The projection the GraphQL Tenant type reads (keys/projection.ts), dates as ISO strings. */
export function tenantRecord(t: Tenant): TenantRecord {
  const tenant = projectTenant(t);
  return { ...tenant, credits: creditsRecord(tenant.credits), createdAt: tenant.createdAt.toISOString(), updatedAt: tenant.updatedAt.toISOString() };
}

function creditsRecord(credits: BudgetProjection['credits']): TenantRecord['credits'] {
  return credits && { ...credits, since: credits.since.toISOString() };
}

/** The projection the GraphQL ApiKey type reads, its status lower case, as the remote client prints it. */
function keyRecord(row: ApiKey, tenantName: string): KeyRecord {
  const key = projectApiKey(row);
  const view: Record<string, unknown> = { ...key, credits: creditsRecord(key.credits), status: key.status.toLowerCase() };
  const picked: Record<string, unknown> = {};
  for (const field of KEY_FIELDS) picked[field] = view[field] instanceof Date ? isoOrNull(view[field]) : (view[field] ?? null);
  return { ...picked, tenant: tenantName } as KeyRecord;
}

export class DirectAdminClient implements AdminClient {
  private readonly names = new Map<string, string>();

  private constructor(
    readonly keys: KeyService,
    readonly caller: Caller,
    private readonly db: Database,
    private readonly closeAll: () => Promise<void>,
  ) {}

  /** Connects within timeoutMs (UnreachableError naming `target` otherwise). */
  static async open(config: Config, target: string, log: Logger, timeoutMs: number): Promise<DirectAdminClient> {
    // Fails at once (DataDirLockedError names the holder) while a gateway runs on the embedded DATA_DIR.
    const dataDirLock = config.database.mode === 'embedded' ? await lockDataDir(config.database.dataDir, target) : null;
    // The database's retry log lines are noise here: the one outcome is reported once.
    const db = new Database(config, createLogger({ level: 'silent', pretty: false }));
    // start() ends on its own after close(); its retry sleep is unref'd and need not be awaited.
    void db.start();
    let redis: RedisConnection | null = null;
    const closeAll = async () => {
      await redis?.close();
      await db.close();
      await dataDirLock?.release();
    };
    try {
      const ready = db.whenReady().then(() => 'up' as const);
      for (;;) {
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => {
          timer = setTimeout(() => resolve('timeout'), timeoutMs);
        });
        const outcome = await Promise.race([ready, timedOut]);
        clearTimeout(timer);
        if (outcome === 'up') break;
        // An embedded database still starting (PGlite and migrations: local work, slow on a busy machine) is
        // not unreachable; --timeout cuts it off only once an attempt has failed.
        if (config.database.mode === 'embedded' && db.lastError === undefined) continue;
        const verb = config.database.mode === 'embedded' ? 'open' : 'reach';
        throw new UnreachableError(`cannot ${verb} ${target} within ${timeoutMs / 1000} s (${db.lastError ?? 'no answer'}); raise --timeout or check the server`);
      }
      if (config.redis) {
        redis = new RedisConnection(config.redis.url, config.redis.keyPrefix, log.child({ component: 'redis' }));
        await redis.waitUntilReady(2000);
      }
    } catch (error) {
      await closeAll();
      throw error;
    }
    // A changed credit configuration drops the balance held in the gateways' Redis (they rebuild it from
    // Postgres); key.revoked goes to the outbox in the revoking transaction, delivered by a running gateway.
    const keys = new KeyService(db, new RedisKeyInvalidator(redis, log), log, config.keys.environment, redis ? redisCreditReset(redis) : null, webhookKeyEvents());
    return new DirectAdminClient(keys, { principal: null, actor: `cli:${safeUser()}` }, db, closeAll);
  }

  private async tenantName(id: string): Promise<string> {
    let name = this.names.get(id);
    if (name === undefined) this.names.set(id, (name = (await this.keys.tenantById(id))?.name ?? id));
    return name;
  }

  private async key(row: ApiKey): Promise<KeyRecord> {
    return keyRecord(row, await this.tenantName(row.tenantId));
  }

  async createTenant(input: CreateTenantInput): Promise<TenantRecord> {
    return tenantRecord(await this.keys.createTenant(this.caller, input));
  }

  async listTenants(): Promise<TenantRecord[]> {
    const rows: TenantRecord[] = [];
    for (let after: string | undefined; ; ) {
      const page = await this.keys.listTenants(this.caller, { first: 100, after });
      rows.push(...page.edges.map((e) => tenantRecord(e.node)));
      if (!page.hasNextPage) return rows;
      after = page.edges[page.edges.length - 1]?.cursor;
    }
  }

  async updateTenant(ref: string, input: UpdateTenantInput): Promise<TenantRecord> {
    return tenantRecord(await this.keys.updateTenant(this.caller, ref, input));
  }

  async createApiKey(input: CreateApiKeyInput): Promise<CreatedKeyRecord> {
    const created = await this.keys.createApiKey(this.caller, input);
    return { plaintext: created.plaintext, apiKey: await this.key(created.apiKey) };
  }

  async listApiKeys(filter: ListApiKeysFilter): Promise<KeyRecord[]> {
    const rows: KeyRecord[] = [];
    for (let after: string | undefined; ; ) {
      const page = await this.keys.listApiKeys(this.caller, filter, { first: 100, after });
      for (const e of page.edges) rows.push(await this.key(e.node));
      if (!page.hasNextPage) return rows;
      after = page.edges[page.edges.length - 1]?.cursor;
    }
  }

  async getApiKey(ref: string): Promise<KeyRecord> {
    return this.key(await this.keys.getApiKey(this.caller, ref));
  }

  async updateApiKey(ref: string, input: UpdateApiKeyInput): Promise<KeyRecord> {
    return this.key(await this.keys.updateApiKey(this.caller, ref, input));
  }

  async revokeApiKey(ref: string): Promise<KeyRecord> {
    return this.key(await this.keys.revokeApiKey(this.caller, ref));
  }

  async rotateApiKey(ref: string, graceSeconds: number): Promise<RotatedKeyRecord> {
    const r = await this.keys.rotateApiKey(this.caller, ref, graceSeconds);
    return { plaintext: r.plaintext, apiKey: await this.key(r.apiKey), previous: await this.key(r.previous) };
  }

  /** Direct only: the first admin key (null when a usable one exists). */
  async bootstrapAdmin(tenantName: string): Promise<CreatedKeyRecord | null> {
    const created = await this.keys.bootstrapAdmin(this.caller, tenantName);
    return created ? { plaintext: created.plaintext, apiKey: await this.key(created.apiKey) } : null;
  }

  /** Direct only: every stored webhook secret from one encryption key to another, in one transaction. */
  reencryptWebhookSecrets(fromKey: Buffer, toKey: Buffer, onProgress: (p: ReencryptProgress) => void): Promise<ReencryptSummary> {
    return reencryptWebhookSecrets(this.db.prisma, new SecretBox(fromKey), new SecretBox(toKey), { actor: this.caller.actor ?? 'cli', onProgress });
  }

  close(): Promise<void> {
    return this.closeAll();
  }
}

/** The embedded directory's lock; a directory that cannot be used at all (a file, no permission) is UnreachableError. */
async function lockDataDir(dataDir: string, target: string): Promise<DataDirLock> {
  try {
    return await DataDirLock.acquire(DataDirLock.dirFor(dataDir), 'cli');
  } catch (error) {
    if (error instanceof DataDirLockedError) throw error;
    throw new UnreachableError(`cannot open ${target}: ${error instanceof Error ? error.message : String(error)}`);
  }
}

function safeUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return 'unknown';
  }
}
