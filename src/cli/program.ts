/**
 * The `modelgate` command line: tenants, keys and the first admin key,
 * straight against the gateway's database (the same DATABASE_URL, or the
 * embedded DATA_DIR). Revocations and rotations are broadcast over Redis when
 * REDIS_URL is set, so running gateways drop the key at once.
 */
import os from 'node:os';
import { Command, CommanderError, Option } from 'commander';
import pino from 'pino';
import { ConfigError, loadConfig, type Config } from '../config';
import { Database } from '../db/database';
import { DataDirLock } from '../db/data-dir-lock';
import type { ApiKey, Tenant } from '../db/generated/client';
import { DomainError } from '../errors';
import { createLogger, type Logger } from '../log/logger';
import { RedisConnection } from '../redis/redis';
import { RedisKeyInvalidator } from '../auth/invalidation';
import { KeyService, keyView, parseScopes, type Caller } from '../keys/key.service';
import { DurationError, parseDuration } from './duration';

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

interface Session {
  keys: KeyService;
  caller: Caller;
}

/** Thrown for mistakes in the command line itself (exit code 2). */
class UsageError extends Error {}

const CONNECT_TIMEOUT_MS = 15_000;

async function withSession<T>(config: Config, log: Logger, run: (s: Session) => Promise<T>): Promise<T> {
  // Fails at once (DataDirLockedError names the holder) while a gateway runs on the embedded DATA_DIR.
  const dataDirLock = config.database.mode === 'embedded' ? await DataDirLock.acquire(DataDirLock.dirFor(config.database.dataDir), 'cli') : null;
  const db = new Database(config, log.child({ component: 'database' }));
  const started = db.start();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), CONNECT_TIMEOUT_MS);
  });
  const outcome = await Promise.race([db.whenReady().then(() => 'up' as const), timedOut]);
  clearTimeout(timer);
  let redis: RedisConnection | null = null;
  try {
    if (outcome !== 'up') throw new Error(`cannot reach the database (${db.lastError ?? 'timed out'})`);
    if (config.redis) {
      redis = new RedisConnection(config.redis.url, config.redis.keyPrefix, log.child({ component: 'redis' }));
      await redis.waitUntilReady(2000);
    }
    const keys = new KeyService(db, new RedisKeyInvalidator(redis, log), log, config.keys.environment);
    return await run({ keys, caller: { principal: null, actor: `cli:${safeUser()}` } });
  } finally {
    await redis?.close();
    await db.close();
    await dataDirLock?.release();
    // start() ends on its own after close(); its retry sleep is unref'd and need not be awaited.
    void started;
  }
}

function safeUser(): string {
  try {
    return os.userInfo().username;
  } catch {
    return 'unknown';
  }
}

function intOption(name: string) {
  return (value: string): number => {
    if (!/^\d+$/.test(value)) throw new UsageError(`${name} must be a whole number (got "${value}")`);
    return Number(value);
  };
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function table(rows: Record<string, string>[]): string {
  if (rows.length === 0) return '(none)';
  const columns = Object.keys(rows[0] ?? {});
  const width = (c: string) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length));
  const line = (r: Record<string, string>) => columns.map((c) => (r[c] ?? '').padEnd(width(c))).join('  ').trimEnd();
  return [line(Object.fromEntries(columns.map((c) => [c, c.toUpperCase()]))), ...rows.map(line)].join('\n');
}

function keyStatus(k: ApiKey, now = Date.now()): string {
  if (k.revokedAt) return 'revoked';
  if (k.graceUntil) return k.graceUntil.getTime() > now ? 'grace' : 'rotated';
  if (k.expiresAt && k.expiresAt.getTime() <= now) return 'expired';
  return 'active';
}

function keyJson(k: ApiKey): Record<string, unknown> {
  return { ...keyView(k), lastUsedAt: k.lastUsedAt, createdAt: k.createdAt, status: keyStatus(k) };
}

function tenantJson(t: Tenant): Record<string, unknown> {
  return { ...t };
}

export function buildProgram(io: CliIo, env: NodeJS.ProcessEnv = process.env): Command {
  const lazy = { config: undefined as Config | undefined, log: undefined as Logger | undefined };
  const session = <T>(run: (s: Session) => Promise<T>): Promise<T> => {
    lazy.config ??= loadConfig(env);
    // Logs go to stderr so that stdout carries only results (a key can be captured with $(...)).
    lazy.log ??= createLogger({ level: 'warn', pretty: false, destination: pino.destination({ dest: 2, sync: true }) });
    return withSession(lazy.config, lazy.log, run);
  };
  const printKey = (created: { plaintext: string; apiKey: ApiKey }, json: boolean, tenantName: string) => {
    if (json) {
      io.out(JSON.stringify({ plaintext: created.plaintext, apiKey: keyJson(created.apiKey) }, null, 2));
      return;
    }
    io.out(created.plaintext);
    const k = created.apiKey;
    io.err(
      [
        `key ${k.id} (${k.prefix}) for tenant ${tenantName}`,
        `scopes: ${k.scopes.join(',')}; models: ${k.allowedModels.length ? k.allowedModels.join(',') : 'all'}; expires: ${k.expiresAt?.toISOString() ?? 'never'}`,
        'Store the key now: it is shown only once.',
      ].join('\n'),
    );
  };

  const program = new Command('modelgate')
    .description('Administer modelgate tenants and API keys against the gateway database (DATABASE_URL, or the embedded DATA_DIR)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });

  const tenants = program.command('tenants').description('Manage tenants');
  tenants
    .command('create')
    .argument('<name>', 'unique tenant name')
    .option('--rpm <n>', 'requests per minute (default: the gateway default)', intOption('--rpm'))
    .option('--cu-per-minute <n>', 'compute units per minute', intOption('--cu-per-minute'))
    .option('--monthly-quota <n>', 'monthly compute unit quota', intOption('--monthly-quota'))
    .option('--json', 'print JSON')
    .action(async (name: string, opts: { rpm?: number; cuPerMinute?: number; monthlyQuota?: number; json?: boolean }) => {
      const tenant = await session((s) =>
        s.keys.createTenant(s.caller, { name, requestsPerMinute: opts.rpm, computeUnitsPerMinute: opts.cuPerMinute, monthlyComputeUnitQuota: opts.monthlyQuota }),
      );
      io.out(opts.json ? JSON.stringify(tenantJson(tenant), null, 2) : `tenant ${tenant.name} created (${tenant.id})`);
    });
  tenants
    .command('list')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      const all = await session(async (s) => {
        const rows: Tenant[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await s.keys.listTenants(s.caller, { first: 100, after });
          rows.push(...page.edges.map((e) => e.node));
          if (!page.hasNextPage) return rows;
          after = page.edges[page.edges.length - 1]?.cursor;
        }
      });
      if (opts.json) return io.out(JSON.stringify(all.map(tenantJson), null, 2));
      io.out(
        table(
          all.map((t) => ({
            id: t.id,
            name: t.name,
            status: t.status,
            rpm: String(t.requestsPerMinute ?? 'default'),
            cuPerMin: String(t.computeUnitsPerMinute ?? 'default'),
            monthlyQuota: String(t.monthlyComputeUnitQuota ?? 'default'),
          })),
        ),
      );
    });

  addTenantLifecycleCommands(tenants, session, io);

  const keys = program.command('keys').description('Manage API keys');
  keys
    .command('create')
    .requiredOption('--tenant <name>', 'tenant name or id')
    .requiredOption('--scopes <list>', 'comma-separated: inference, usage:read, keys:manage, admin')
    .option('--models <list>', 'comma-separated model allowlist (default: every model)')
    .option('--expires <duration>', 'lifetime, e.g. 30d, 12h (default: never)')
    .option('--name <name>', 'a label for the key', 'cli key')
    .option('--rpm <n>', 'requests per minute for this key', intOption('--rpm'))
    .option('--cu-per-minute <n>', 'compute units per minute for this key', intOption('--cu-per-minute'))
    .addOption(new Option('--env <env>', 'key environment (default: KEY_ENVIRONMENT)').choices(['live', 'test']))
    .option('--json', 'print JSON')
    .action(
      async (opts: { tenant: string; scopes: string; models?: string; expires?: string; name: string; rpm?: number; cuPerMinute?: number; env?: 'live' | 'test'; json?: boolean }) => {
        const scopes = parseScopes(list(opts.scopes));
        const ttlSeconds = opts.expires === undefined ? null : parseDuration(opts.expires);
        const created = await session((s) =>
          s.keys.createApiKey(s.caller, {
            tenant: opts.tenant,
            name: opts.name,
            scopes,
            allowedModels: opts.models ? list(opts.models) : [],
            ttlSeconds,
            requestsPerMinute: opts.rpm,
            computeUnitsPerMinute: opts.cuPerMinute,
            ...(opts.env ? { environment: opts.env } : {}),
          }),
        );
        printKey(created, Boolean(opts.json), opts.tenant);
      },
    );
  keys
    .command('list')
    .option('--tenant <name>', 'only this tenant (name or id)')
    .option('--revoked', 'only revoked keys')
    .option('--active', 'only keys that are not revoked')
    .option('--json', 'print JSON')
    .action(async (opts: { tenant?: string; revoked?: boolean; active?: boolean; json?: boolean }) => {
      if (opts.revoked && opts.active) throw new UsageError('--revoked and --active exclude each other');
      const { all, names } = await session(async (s) => {
        const rows: ApiKey[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await s.keys.listApiKeys(s.caller, { tenant: opts.tenant, revoked: opts.revoked ? true : opts.active ? false : null }, { first: 100, after });
          rows.push(...page.edges.map((e) => e.node));
          if (!page.hasNextPage) break;
          after = page.edges[page.edges.length - 1]?.cursor;
        }
        const tenantNames = new Map<string, string>();
        for (const id of new Set(rows.map((k) => k.tenantId))) tenantNames.set(id, (await s.keys.tenantById(id))?.name ?? id);
        return { all: rows, names: tenantNames };
      });
      if (opts.json) return io.out(JSON.stringify(all.map(keyJson), null, 2));
      io.out(
        table(
          all.map((k) => ({
            id: k.id,
            prefix: k.prefix,
            name: k.name,
            tenant: names.get(k.tenantId) ?? k.tenantId,
            scopes: k.scopes.join(','),
            models: k.allowedModels.length ? k.allowedModels.join(',') : 'all',
            status: keyStatus(k),
            expires: k.expiresAt?.toISOString() ?? 'never',
            lastUsed: k.lastUsedAt?.toISOString() ?? 'never',
          })),
        ),
      );
    });
  keys
    .command('revoke')
    .argument('<key>', 'key id or display prefix (mg_live_XXXXXXXX)')
    .action(async (ref: string) => {
      const key = await session((s) => s.keys.revokeApiKey(s.caller, ref));
      io.out(`key ${key.id} (${key.prefix}) revoked`);
    });
  keys
    .command('rotate')
    .argument('<key>', 'key id or display prefix')
    .option('--grace <duration>', 'how long the old secret keeps working, e.g. 1h (default: 0s, stops at once)', '0s')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { grace: string; json?: boolean }) => {
      const grace = parseDuration(opts.grace, { allowZero: true });
      const rotated = await session(async (s) => {
        const r = await s.keys.rotateApiKey(s.caller, ref, grace);
        const tenant = await s.keys.tenantById(r.apiKey.tenantId);
        return { ...r, tenantName: tenant?.name ?? r.apiKey.tenantId };
      });
      printKey(rotated, Boolean(opts.json), rotated.tenantName);
      if (!opts.json) io.err(`old key ${rotated.previous.prefix} works until ${rotated.previous.graceUntil?.toISOString() ?? 'now'}`);
    });

  addKeyLifecycleCommands(keys, session, io);

  program
    .command('admin')
    .description('First-run administration')
    .command('bootstrap')
    .description('Create the first admin key if no usable admin key exists, and print it once')
    .option('--tenant <name>', 'tenant for the admin key', 'admin')
    .option('--json', 'print JSON')
    .action(async (opts: { tenant: string; json?: boolean }) => {
      const created = await session((s) => s.keys.bootstrapAdmin(s.caller, opts.tenant));
      if (!created) {
        io.err('An admin key already exists; nothing created. Create further keys with an admin key or `modelgate keys create`.');
        process.exitCode = 3;
        return;
      }
      printKey(created, Boolean(opts.json), opts.tenant);
    });

  return program;
}

type SessionRunner = <T>(run: (s: Session) => Promise<T>) => Promise<T>;

/** A limit option: a whole number, or "default" to clear the override (kept as a string: commander drops a parsed null). */
function limitOption(name: string) {
  return (value: string): number | 'default' => (value === 'default' ? 'default' : intOption(name)(value));
}

function limitValue(value: number | 'default'): number | null {
  return value === 'default' ? null : value;
}

function tenantSummary(t: Tenant): string {
  const show = (v: number | null) => String(v ?? 'default');
  return `tenant ${t.name} (${t.id}) ${t.status}; rpm ${show(t.requestsPerMinute)}, cu/min ${show(t.computeUnitsPerMinute)}, monthly quota ${show(t.monthlyComputeUnitQuota)}`;
}

/** `tenants update|suspend|resume`: kept apart from buildProgram's own commands. */
function addTenantLifecycleCommands(tenants: Command, session: SessionRunner, io: CliIo): void {
  tenants
    .command('update')
    .argument('<tenant>', 'tenant name or id')
    .option('--rpm <n|default>', 'requests per minute ("default": the gateway default)', limitOption('--rpm'))
    .option('--cu-per-minute <n|default>', 'compute units per minute', limitOption('--cu-per-minute'))
    .option('--monthly-quota <n|default>', 'monthly compute unit quota', limitOption('--monthly-quota'))
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { rpm?: number | 'default'; cuPerMinute?: number | 'default'; monthlyQuota?: number | 'default'; json?: boolean }) => {
      const input = {
        ...(opts.rpm !== undefined ? { requestsPerMinute: limitValue(opts.rpm) } : {}),
        ...(opts.cuPerMinute !== undefined ? { computeUnitsPerMinute: limitValue(opts.cuPerMinute) } : {}),
        ...(opts.monthlyQuota !== undefined ? { monthlyComputeUnitQuota: limitValue(opts.monthlyQuota) } : {}),
      };
      if (Object.keys(input).length === 0) throw new UsageError('Nothing to change: give --rpm, --cu-per-minute or --monthly-quota');
      const tenant = await session((s) => s.keys.updateTenant(s.caller, ref, input));
      io.out(opts.json ? JSON.stringify(tenantJson(tenant), null, 2) : tenantSummary(tenant));
    });
  for (const [command, status] of [
    ['suspend', 'SUSPENDED'],
    ['resume', 'ACTIVE'],
  ] as const) {
    tenants
      .command(command)
      .argument('<tenant>', 'tenant name or id')
      .description(status === 'SUSPENDED' ? "refuse every key of the tenant with FORBIDDEN, on every gateway at once" : 'let its keys work again')
      .action(async (ref: string) => {
        const tenant = await session((s) => s.keys.updateTenant(s.caller, ref, { status }));
        io.out(tenantSummary(tenant));
      });
  }
}

/** `keys show|update`: kept apart from buildProgram's own commands. */
function addKeyLifecycleCommands(keys: Command, session: SessionRunner, io: CliIo): void {
  keys
    .command('show')
    .argument('<key>', 'key id or display prefix')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { json?: boolean }) => {
      const { key, tenantName } = await session(async (s) => {
        const k = await s.keys.getApiKey(s.caller, ref);
        return { key: k, tenantName: (await s.keys.tenantById(k.tenantId))?.name ?? k.tenantId };
      });
      if (opts.json) return io.out(JSON.stringify({ ...keyJson(key), tenant: tenantName }, null, 2));
      const show = (v: number | null) => String(v ?? 'default');
      io.out(
        [
          `id:        ${key.id}`,
          `prefix:    ${key.prefix}`,
          `name:      ${key.name}`,
          `tenant:    ${tenantName}`,
          `status:    ${keyStatus(key)}`,
          `scopes:    ${key.scopes.join(',')}`,
          `models:    ${key.allowedModels.length ? key.allowedModels.join(',') : 'all'}`,
          `rpm:       ${show(key.requestsPerMinute)}`,
          `cu/min:    ${show(key.computeUnitsPerMinute)}`,
          `expires:   ${key.expiresAt?.toISOString() ?? 'never'}`,
          `last used: ${key.lastUsedAt?.toISOString() ?? 'never'}`,
          `metadata:  ${key.metadata ? JSON.stringify(key.metadata) : 'none'}`,
        ].join('\n'),
      );
    });
  keys
    .command('update')
    .argument('<key>', 'key id or display prefix')
    .option('--name <name>', 'new label')
    .option('--scopes <list>', 'replace the scopes (comma-separated)')
    .option('--models <list|all>', 'replace the model allowlist ("all": every model)')
    .option('--rpm <n|default>', 'requests per minute ("default": the gateway default)', limitOption('--rpm'))
    .option('--cu-per-minute <n|default>', 'compute units per minute', limitOption('--cu-per-minute'))
    .option('--monthly-budget <n|default>', 'compute units per calendar month for this key ("default": none)', limitOption('--monthly-budget'))
    .option('--expires <duration|never>', 'new lifetime from now, e.g. 30d, or "never"')
    .option('--meta <k=v...>', 'replace metadata labels, e.g. --meta owner=ana team=ml ("none" clears)')
    .option('--json', 'print JSON')
    .action(
      async (
        ref: string,
        opts: { name?: string; scopes?: string; models?: string; rpm?: number | 'default'; cuPerMinute?: number | 'default'; monthlyBudget?: number | 'default'; expires?: string; meta?: string[]; json?: boolean },
      ) => {
        const input: Parameters<KeyService['updateApiKey']>[2] = {};
        if (opts.name !== undefined) input.name = opts.name;
        if (opts.scopes !== undefined) input.scopes = parseScopes(list(opts.scopes));
        if (opts.models !== undefined) input.allowedModels = opts.models === 'all' ? [] : list(opts.models);
        if (opts.rpm !== undefined) input.requestsPerMinute = limitValue(opts.rpm);
        if (opts.cuPerMinute !== undefined) input.computeUnitsPerMinute = limitValue(opts.cuPerMinute);
        if (opts.monthlyBudget !== undefined) input.monthlyComputeUnitBudget = limitValue(opts.monthlyBudget);
        if (opts.expires !== undefined) input.expiresAt = opts.expires === 'never' ? null : new Date(Date.now() + parseDuration(opts.expires) * 1000);
        if (opts.meta !== undefined) input.metadata = metaOption(opts.meta);
        if (Object.keys(input).length === 0) throw new UsageError('Nothing to change: give at least one option (see --help)');
        const key = await session((s) => s.keys.updateApiKey(s.caller, ref, input));
        io.out(opts.json ? JSON.stringify(keyJson(key), null, 2) : `key ${key.id} (${key.prefix}) updated`);
      },
    );
}

function metaOption(values: string[]): Record<string, string> | null {
  const flat = values.flatMap((v) => v.split(',')).filter(Boolean);
  if (flat.length === 1 && flat[0] === 'none') return null;
  const out: Record<string, string> = {};
  for (const pair of flat) {
    const eq = pair.indexOf('=');
    if (eq < 1) throw new UsageError(`--meta wants key=value pairs (got "${pair}")`);
    out[pair.slice(0, eq)] = pair.slice(eq + 1);
  }
  return out;
}

/** Runs the CLI; resolves with the exit code. */
export async function runCli(argv: string[], io: CliIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const program = buildProgram(io, env);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    if (error instanceof UsageError || error instanceof DurationError || error instanceof ConfigError) {
      io.err(`modelgate: ${error.message}`);
      return 2;
    }
    if (error instanceof DomainError) {
      io.err(`modelgate: ${error.message}`);
      return 1;
    }
    io.err(`modelgate: ${error instanceof Error ? error.message : String(error)}`);
    return 1;
  }
}
