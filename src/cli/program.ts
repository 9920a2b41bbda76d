/**
 * The `modelgate` command line: tenants, keys and the first admin key,
 * straight against the gateway's database (DATABASE_URL / --database-url, or
 * an embedded DATA_DIR / --data-dir). Revocations and rotations are broadcast
 * over Redis when REDIS_URL is set, so running gateways drop the key at once.
 *
 * Every command says on stderr which database it talks to, and the embedded
 * database is used only when asked for (DATA_DIR, --data-dir) or when it
 * already exists: a shell that forgot DATABASE_URL must not quietly revoke a
 * key in some other, freshly created database. Exit codes: see EXIT.
 */
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import pino from 'pino';
import { ConfigError, loadConfig, type Config } from '../config';
import { Database } from '../db/database';
import { DataDirLock, DataDirLockedError } from '../db/data-dir-lock';
import type { ApiKey, Tenant } from '../db/generated/client';
import { BadInputError } from '../errors';
import { createLogger, type Logger } from '../log/logger';
import { RedisConnection } from '../redis/redis';
import { RedisKeyInvalidator } from '../auth/invalidation';
import { KeyService, keyView, parseScopes, type Caller } from '../keys/key.service';
import { generateKey } from '../keys/key-format';
import { VERSION } from '../version';
import { DurationError, parseDuration } from './duration';

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

interface Session {
  keys: KeyService;
  caller: Caller;
}

/** The CLI's exit codes (README "CLI"): scripts may rely on them. */
export const EXIT = {
  OK: 0,
  /** The operation was refused: unknown tenant or key, a name already taken, not allowed. */
  REFUSED: 1,
  /** The command line or the configuration is wrong (unknown option, bad scope, bad duration, bad variable). */
  USAGE: 2,
  /** Nothing to do: `admin bootstrap` found an admin key. */
  NOTHING_DONE: 3,
  /** The database could not be reached within --timeout, or the embedded DATA_DIR is held by another process. */
  UNREACHABLE: 4,
} as const;

/** Thrown for mistakes in the command line itself (exit code 2). */
class UsageError extends Error {}

/** The database could not be reached or opened (exit code 4). */
class UnreachableError extends Error {}

interface GlobalOptions {
  databaseUrl?: string;
  dataDir?: string;
  timeout: string;
}

/** Where the CLI will connect, in words for stderr (no password). */
export function describeTarget(config: Config): string {
  if (config.database.mode === 'embedded') return `the embedded database in ${config.database.dataDir}`;
  const u = new URL(config.database.url);
  return `PostgreSQL at ${u.hostname}:${u.port || '5432'}${u.pathname}${u.username ? ` as ${decodeURIComponent(u.username)}` : ''}`;
}

async function withSession<T>(config: Config, log: Logger, timeoutMs: number, run: (s: Session) => Promise<T>): Promise<T> {
  // Fails at once (DataDirLockedError names the holder) while a gateway runs on the embedded DATA_DIR.
  const dataDirLock = config.database.mode === 'embedded' ? await DataDirLock.acquire(DataDirLock.dirFor(config.database.dataDir), 'cli') : null;
  // The database's retry log lines are noise here: the one outcome is reported once, below.
  const db = new Database(config, createLogger({ level: 'silent', pretty: false }));
  const started = db.start();
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  const outcome = await Promise.race([db.whenReady().then(() => 'up' as const), timedOut]);
  clearTimeout(timer);
  let redis: RedisConnection | null = null;
  try {
    if (outcome !== 'up') throw new UnreachableError(`cannot reach ${describeTarget(config)} within ${timeoutMs / 1000} s (${db.lastError ?? 'no answer'}); raise --timeout or check the server`);
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
  const program = new Command('modelgate');
  const session = <T>(run: (s: Session) => Promise<T>): Promise<T> => {
    const opts = program.opts<GlobalOptions>();
    const timeoutMs = parseDuration(opts.timeout) * 1000;
    const explicitDataDir = opts.dataDir ?? (env['DATA_DIR']?.trim() ? env['DATA_DIR'] : undefined);
    lazy.config ??= loadConfig({
      ...env,
      ...(opts.databaseUrl ? { DATABASE_URL: opts.databaseUrl } : {}),
      ...(opts.dataDir ? { DATA_DIR: opts.dataDir } : {}),
    });
    const config = lazy.config;
    if (config.database.mode === 'embedded' && explicitDataDir === undefined && !existsSync(config.database.dataDir)) {
      throw new UsageError(
        `no database named: DATABASE_URL is not set and there is no embedded database in ${path.dirname(config.database.dataDir)}. ` +
          'Set DATABASE_URL (or --database-url) for a PostgreSQL server, or pass --data-dir to use (and create) an embedded one.',
      );
    }
    io.err(`modelgate: using ${describeTarget(config)}`);
    // Logs go to stderr so that stdout carries only results (a key can be captured with $(...)).
    lazy.log ??= createLogger({ level: 'warn', pretty: false, destination: pino.destination({ dest: 2, sync: true }) });
    return withSession(config, lazy.log, timeoutMs, run);
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
  program
    .description(
      'Administer modelgate tenants and API keys against the gateway database (DATABASE_URL, or the embedded DATA_DIR).\n' +
        'Exit codes: 0 done, 1 refused (unknown or duplicate name, not allowed), 2 usage or configuration error,\n' +
        '3 nothing done (admin bootstrap: an admin key exists), 4 database unreachable or DATA_DIR held by a gateway.',
    )
    .version(VERSION, '-V, --version', 'print the modelgate version')
    .option('--database-url <url>', 'PostgreSQL URL (default: DATABASE_URL)')
    .option('--data-dir <dir>', 'embedded database directory, created if missing (default: DATA_DIR, used only if it exists)')
    .option('--timeout <duration>', 'how long to wait for the database, e.g. 5s', '15s')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });

  const tenants = program.command('tenants').description('Manage tenants');
  tenants
    .command('create')
    .description('Create a tenant, optionally with its own limits')
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
    .description('List every tenant with its status and limits')
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
    .description('Create an API key for a tenant and print it once (stdout: the key only)')
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
        const scopes = asUsage(() => parseScopes(list(opts.scopes)));
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
    .description('List API keys (never their secrets)')
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
    .description('Revoke an API key at once (running gateways are told over Redis and Postgres)')
    .argument('<key>', 'key id or display prefix (mg_live_XXXXXXXX)')
    .option('--json', 'print JSON')
    .action(async (ref: string, opts: { json?: boolean }) => {
      const key = await session((s) => s.keys.revokeApiKey(s.caller, ref));
      io.out(opts.json ? JSON.stringify(keyJson(key), null, 2) : `key ${key.id} (${key.prefix}) revoked`);
    });
  keys
    .command('rotate')
    .description('Replace an API key with a new secret, the old one working for --grace')
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

  keys
    .command('generate')
    .description('Print a new, well-formed key without storing it (for MODELGATE_BOOTSTRAP_KEY); touches no database')
    .addOption(new Option('--env <env>', 'key environment').choices(['live', 'test']).default('live'))
    .option('--json', 'print JSON')
    .action((opts: { env: 'live' | 'test'; json?: boolean }) => {
      const key = generateKey(opts.env);
      io.out(opts.json ? JSON.stringify({ plaintext: key.plaintext, prefix: key.prefix }, null, 2) : key.plaintext);
    });

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
        if (opts.json) io.out(JSON.stringify({ created: false }, null, 2));
        io.err('An admin key already exists; nothing created. Create further keys with an admin key or `modelgate keys create`.');
        process.exitCode = EXIT.NOTHING_DONE;
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
    .description("change a tenant's limits (broadcast to every gateway)")
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
    .description('show one key (never its secret)')
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
    .description('change a key in place: scopes, models, limits, budget, expiry, metadata (every gateway applies it at once)')
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

/** A domain refusal caused by what was typed (an unknown scope) is a usage error. */
function asUsage<T>(run: () => T): T {
  try {
    return run();
  } catch (error) {
    if (error instanceof BadInputError) throw new UsageError(error.message);
    throw error;
  }
}

/** Runs the CLI; resolves with the exit code (EXIT). */
export async function runCli(argv: string[], io: CliIo, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const program = buildProgram(io, env);
  try {
    process.exitCode = undefined;
    await program.parseAsync(argv, { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT.OK;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
    const message = error instanceof Error ? error.message : String(error);
    io.err(`modelgate: ${message}`);
    if (error instanceof UsageError || error instanceof DurationError || error instanceof ConfigError) return EXIT.USAGE;
    if (error instanceof UnreachableError || error instanceof DataDirLockedError) return EXIT.UNREACHABLE;
    return EXIT.REFUSED;
  }
}
