/**
 * The `modelgate` command line: tenants, keys and the first admin key, against
 * a running gateway (remote: its GraphQL admin API with an admin key) or the
 * gateway's database (direct). target.ts decides which, and every command
 * that touches one first says on stderr which one it is, so a key is never
 * revoked in some other database while the CLI reports success. Commands see
 * only the AdminClient interface; output is human by default and one JSON
 * document on stdout with --json. Exit codes: exit.ts (README "CLI").
 */
import { Argument, Command, CommanderError, Option } from 'commander';
import pino from 'pino';
import { loadNamedSecretKey } from '../config';
import { DataDirLockedError } from '../db/data-dir-lock';
import { createLogger, type Logger } from '../log/logger';
import { SCOPES } from '../auth/principal';
import type { CreateApiKeyInput, CreateTenantInput, UpdateApiKeyInput, UpdateTenantInput } from '../keys/key.service';
import { generateKey } from '../ids/key-format';
import { VERSION } from '../version';
import type { AdminClient, CreatedKeyRecord, CreditsRecord, KeyRecord, MoneyBudgetRecord, TenantRecord } from './admin-client';
import type { DirectAdminClient } from './direct-client';
import { RemoteAdminClient } from './remote-client';
import { parseDuration } from './duration';
import { EXIT, UsageError, exitCodeOf } from './exit';
import { JSON_HELP, money, table } from './format';
import { addFinanceCommands } from './finance-commands';
import { addModelCommands } from './model-commands';
import { bashCompletion, zshCompletion } from './completion';
import { requireAdminKey, resolveTarget, type RemoteTarget, type Target, type TargetOptions } from './target';

export { EXIT } from './exit';

export interface CliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

interface GlobalOptions extends TargetOptions {
  timeout: string;
}

/**
 * A limit-like field that `create` and `update` both take, as `--flag <n|default>`
 * ("default" clears the override). Adding such a field to the CLI is one entry
 * in KEY_FIELD_FLAGS or TENANT_FIELD_FLAGS; both targets pass it on as it is.
 */
interface FieldFlag<I> {
  flag: `--${string}`;
  field: keyof I & string;
  description: string;
  /** What "default" (null) means for this field (default: "the gateway default"). */
  cleared?: string;
  /** Parses the typed value (default: a whole number, or "default" for null). */
  parse?: (value: string, flag: string) => I[keyof I];
  /** How `show` prints a set value (default: as it is); an unset one prints "none" where `cleared` is given, else "default". */
  format?: (value: never) => string;
}

const formatBudget = (b: MoneyBudgetRecord) => `${money(b)} (${b.amountMicros}:${b.currency})`;
const formatCredits = (c: CreditsRecord) =>
  `${c.refillAmount !== null && c.refillInterval ? `${c.refillAmount}/${c.refillInterval.toLowerCase()}` : 'topup'} since ${c.since}`;

/** What a key's (a tenant's) `create` and `update` take: a flag names any field of the service's inputs. */
type KeyFieldInput = CreateApiKeyInput & UpdateApiKeyInput;
type TenantFieldInput = CreateTenantInput & UpdateTenantInput;

const KEY_FIELD_FLAGS: FieldFlag<KeyFieldInput>[] = [
  { flag: '--rpm', field: 'requestsPerMinute', description: 'requests per minute for this key' },
  { flag: '--cu-per-minute', field: 'computeUnitsPerMinute', description: 'compute units per minute for this key' },
  { flag: '--monthly-budget', field: 'monthlyComputeUnitBudget', description: 'compute units per calendar month (UTC) for this key', cleared: 'no budget of its own' },
  { flag: '--monthly-spend', field: 'monthlyBudget', description: 'money per calendar month (UTC) for this key, as <micro-units>:<ISO 4217>, e.g. 5000000:USD', cleared: 'no money budget of its own', parse: moneyBudgetOrDefault, format: formatBudget },
  { flag: '--credits', field: 'credits', description: 'a credit balance in compute units: <n>/daily or <n>/monthly (refilled to n), or topup (grants only)', cleared: 'no credit balance', parse: creditsOrDefault, format: formatCredits },
];

const TENANT_FIELD_FLAGS: FieldFlag<TenantFieldInput>[] = [
  { flag: '--rpm', field: 'requestsPerMinute', description: 'requests per minute for the tenant' },
  { flag: '--cu-per-minute', field: 'computeUnitsPerMinute', description: 'compute units per minute for the tenant' },
  { flag: '--monthly-quota', field: 'monthlyComputeUnitQuota', description: 'compute units per calendar month (UTC) for the tenant' },
  { flag: '--monthly-spend', field: 'monthlyBudget', description: 'money per calendar month (UTC) for the tenant, as <micro-units>:<ISO 4217>, e.g. 5000000:USD', cleared: 'no money budget', parse: moneyBudgetOrDefault, format: formatBudget },
  { flag: '--credits', field: 'credits', description: 'a credit balance in compute units: <n>/daily or <n>/monthly (refilled to n), or topup (grants only)', cleared: 'no credit balance', parse: creditsOrDefault, format: formatCredits },
];

function moneyBudgetOrDefault(value: string, flag: string): { amountMicros: string; currency: string } | null {
  if (value === 'default') return null;
  const m = /^(\d{1,16}):([A-Za-z]{3})$/.exec(value);
  if (!m?.[1] || !m[2]) throw new UsageError(`${flag} must be <micro-units>:<currency> such as 5000000:USD, or "default" (got "${value}")`);
  return { amountMicros: m[1], currency: m[2].toUpperCase() };
}

function creditsOrDefault(value: string, flag: string): { refillAmount: number | null; refillInterval: 'DAILY' | 'MONTHLY' | null } | null {
  if (value === 'default') return null;
  if (value === 'topup') return { refillAmount: null, refillInterval: null };
  const m = /^(\d+)\/(daily|monthly)$/i.exec(value);
  if (!m?.[1] || !m[2]) throw new UsageError(`${flag} must be <n>/daily, <n>/monthly, topup or "default" (got "${value}")`);
  return { refillAmount: Number(m[1]), refillInterval: m[2].toUpperCase() as 'DAILY' | 'MONTHLY' };
}

function wholeNumberOrDefault(value: string, flag: string): number | null {
  if (value === 'default') return null;
  if (!/^\d+$/.test(value)) throw new UsageError(`${flag} must be a whole number or "default" (got "${value}")`);
  return Number(value);
}

function addFieldFlags<I>(command: Command, flags: FieldFlag<I>[]): Command {
  // Values stay strings here (commander drops a parsed null); fieldInput parses them.
  for (const f of flags) command.option(`${f.flag} <n|default>`, `${f.description} ("default": ${f.cleared ?? 'the gateway default'})`);
  return command;
}

function fieldInput<I>(flags: FieldFlag<I>[], opts: Record<string, unknown>): Partial<I> {
  const input: Record<string, unknown> = {};
  for (const f of flags) {
    const value = opts[new Option(`${f.flag} <v>`).attributeName()];
    if (typeof value === 'string') input[f.field] = (f.parse ?? wholeNumberOrDefault)(value, f.flag);
  }
  return input as Partial<I>;
}

function list(value: string): string[] {
  return value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

const show = (v: unknown) => (v === null || v === undefined ? 'default' : String(v));

/** One field of a key or tenant as `show` prints it. */
function showField<I>(f: FieldFlag<I>, value: unknown): string {
  if (value === null || value === undefined) return f.cleared ? 'none' : 'default';
  return f.format ? f.format(value as never) : String(value);
}

function tenantSummary(t: TenantRecord): string {
  return `tenant ${t.name} (${t.id}) ${t.status}; ${TENANT_FIELD_FLAGS.map((f) => `${f.flag.slice(2)} ${showField(f, t[f.field as keyof TenantRecord])}`).join(', ')}`;
}

function models(k: KeyRecord): string {
  return k.allowedModels.length ? k.allowedModels.join(',') : 'all';
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

/** Scopes as typed; an unknown one is a usage error, caught before any target is touched (the target checks again). */
function scopesOption(value: string): string[] {
  const scopes = [...new Set(list(value))];
  if (scopes.length === 0) throw new UsageError(`Name at least one scope (${SCOPES.join(', ')})`);
  for (const s of scopes) {
    if (!(SCOPES as readonly string[]).includes(s)) throw new UsageError(`Unknown scope "${s}"; valid scopes: ${SCOPES.join(', ')}`);
  }
  return scopes;
}

/** The direct client, loaded only for a database target: Prisma, pg and ioredis cost a remote command ~0.3 s of start-up for nothing. */
function openDirect(...args: Parameters<typeof DirectAdminClient.open>): Promise<DirectAdminClient> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- a lazy load; import() would make this CommonJS build load it as ESM
  const { DirectAdminClient: Direct } = require('./direct-client') as typeof import('./direct-client');
  return Direct.open(...args);
}

/** Everything a command needs: its target (resolved once, announced once) and the output. */
class Context {
  private target: Target | undefined;
  private log: Logger | undefined;

  constructor(
    private readonly program: Command,
    readonly io: CliIo,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  private get options(): GlobalOptions {
    return this.program.opts<GlobalOptions>();
  }

  private timeoutMs(): number {
    return parseDuration(this.options.timeout) * 1000;
  }

  /** Resolves the target and prints its line on stderr. */
  private resolve(): Target {
    if (this.target) return this.target;
    this.target = resolveTarget(this.options, this.env);
    this.io.err(this.target.line);
    return this.target;
  }

  private logger(): Logger {
    // Logs go to stderr so that stdout carries only results (a key can be captured with $(...)).
    this.log ??= createLogger({ level: 'warn', pretty: false, destination: pino.destination({ dest: 2, sync: true }) });
    return this.log;
  }

  /** Runs `work` against the target, whichever kind it is. */
  async run<T>(work: (client: AdminClient) => Promise<T>): Promise<T> {
    const timeoutMs = this.timeoutMs();
    const target = this.resolve();
    return withClient(target.kind === 'remote' ? remoteClient(target, timeoutMs) : await openDirect(target.config, target.name, this.logger(), timeoutMs), work);
  }

  /** Runs `work` against a gateway only; a database target is a usage error saying why. */
  async remote<T>(command: string, why: string, work: (client: RemoteAdminClient) => Promise<T>): Promise<T> {
    const timeoutMs = this.timeoutMs();
    const target = this.resolve();
    if (target.kind !== 'remote') throw new UsageError(`${command} works through a gateway only, not on a database: ${why}. Name the gateway with --url or MODELGATE_URL (and MODELGATE_ADMIN_KEY)`);
    return withClient(remoteClient(target, timeoutMs), work);
  }

  /** Runs `work` against a database only; a gateway target is a usage error saying why. */
  async direct<T>(command: string, why: string, work: (client: DirectAdminClient) => Promise<T>): Promise<T> {
    const timeoutMs = this.timeoutMs();
    const target = this.resolve();
    if (target.kind === 'remote') throw new UsageError(`${command} works on a database only, not through a gateway: ${why}. Drop --url / unset MODELGATE_URL and name the database (DATABASE_URL, --database-url or --data-dir)`);
    return withClient(await openDirect(target.config, target.name, this.logger(), timeoutMs), work);
  }

  /** A webhook encryption key from the variable the operator named (ConfigError naming it otherwise). */
  secretKeyFrom(name: string, strict: boolean): Buffer {
    return loadNamedSecretKey(this.env, name, strict);
  }

  /** One JSON document on stdout, or the human text. */
  emit(json: boolean | undefined, value: unknown, human: string): void {
    this.io.out(json ? JSON.stringify(value, null, 2) : human);
  }

  /** A new secret: alone on stdout (or in the JSON), its details on stderr. */
  printKey(created: CreatedKeyRecord, json: boolean | undefined): void {
    if (json) return this.emit(true, created, '');
    this.io.out(created.plaintext);
    const k = created.apiKey;
    this.io.err(
      [
        `key ${k.id} (${k.prefix}) for tenant ${k.tenant}`,
        `scopes: ${k.scopes.join(',')}; models: ${models(k)}; expires: ${k.expiresAt ?? 'never'}`,
        'Store the key now: it is shown only once.',
      ].join('\n'),
    );
  }
}

/** The gateway's admin API, with the admin key the target names (exit 5 without one). */
function remoteClient(target: RemoteTarget, timeoutMs: number): RemoteAdminClient {
  requireAdminKey(target);
  return new RemoteAdminClient(target.endpoint, target.name, target.adminKey, target.keyLabel, timeoutMs);
}

/** Runs `work`, then closes the client whatever happened. */
async function withClient<C extends AdminClient, T>(client: C, work: (client: C) => Promise<T>): Promise<T> {
  try {
    return await work(client);
  } finally {
    await client.close();
  }
}

export function buildProgram(io: CliIo, env: NodeJS.ProcessEnv = process.env): Command {
  const program = new Command('modelgate');
  const ctx = new Context(program, io, env);
  program
    .description(
      'Administer modelgate tenants and API keys, through a running gateway (remote: --url or MODELGATE_URL, ' +
        'with the admin key in MODELGATE_ADMIN_KEY or --admin-key-file) or directly on its database (direct: ' +
        '--database-url or DATABASE_URL, --data-dir or DATA_DIR). Every command says on stderr which target it uses; ' +
        '--json on any command prints one JSON document on stdout.',
    )
    .addHelpText(
      'after',
      [
        '',
        'Exit codes:',
        '  0  done',
        '  1  refused by the target: unknown tenant or key, a name already taken, a value it does not accept',
        '  2  usage or configuration error; no target or two targets named; a database-only command against a gateway',
        '  3  nothing done: admin bootstrap found an admin key',
        '  4  target unreachable within --timeout or unable to serve now (retry); DATA_DIR held by a running gateway',
        '  5  admin key missing, malformed or refused by the gateway (unknown, revoked, expired, lacking the scope)',
      ].join('\n'),
    )
    .version(VERSION, '-V, --version', 'print the modelgate version')
    .option('--url <url>', 'a running gateway to administer through its admin API, e.g. http://127.0.0.1:4000 (default: MODELGATE_URL); the admin key comes from MODELGATE_ADMIN_KEY')
    .option('--admin-key-file <file>', 'read the admin key for --url from this file instead of MODELGATE_ADMIN_KEY')
    .option('--database-url <url>', 'work directly on this PostgreSQL database (default: DATABASE_URL)')
    .option('--data-dir <dir>', 'work directly on this embedded database directory, created if missing (default: DATA_DIR; ./.data only if it exists)')
    .option('--timeout <duration>', 'how long to wait for the gateway or the database, per call, e.g. 5s', '15s')
    .showHelpAfterError('(modelgate --help lists the commands and options)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });

  addTenantCommands(program.command('tenants').description('Create, list, change, suspend and resume tenants'), ctx);
  addKeyCommands(program.command('keys').description('Create, list, show, change, revoke and rotate API keys'), ctx);

  addWebhookCommands(program.command('webhooks').description("A tenant's webhooks and their delivery log (gateway only); re-encrypting their secrets for a new key (database only)"), ctx);

  addCreditCommands(program.command('credits').description('Credit balances (gateway only)'), ctx);
  addFinanceCommands(program, ctx);
  addModelCommands(program, ctx);
  addCompletionCommand(program, io);
  addAdminCommands(program.command('admin').description('First-run administration (database only)'), ctx, io);
  return program;
}

function addCreditCommands(credits: Command, ctx: Context): void {
  credits
    .command('grant')
    .description("Add compute units to a tenant's or a key's credit balance (which must be configured with --credits), recorded in the ledger and the audit trail; prints the new balance")
    .requiredOption('--tenant <id|name>', 'the tenant')
    .option('--key <key>', "a key of that tenant, by id or display prefix (mg_live_XXXXXXXX): its balance (default: the tenant's)")
    .requiredOption('--amount <n>', 'compute units to add, 1 to 1000000000')
    .option('--reason <text>', 'why, kept in the ledger and the audit trail')
    .option('--json', JSON_HELP)
    .action(async (opts: { tenant: string; key?: string; amount: string; reason?: string; json?: boolean }) => {
      if (!/^\d+$/.test(opts.amount)) throw new UsageError(`--amount must be a whole number (got "${opts.amount}")`);
      const grant = await ctx.remote('credits grant', "a balance lives in the gateways' Redis, which the gateway updates atomically with the ledger row", (c) =>
        c.grantCredits({ tenant: opts.tenant, apiKey: opts.key ?? null, amount: Number(opts.amount), reason: opts.reason ?? null }),
      );
      ctx.emit(opts.json, grant, `granted ${grant.amount} compute units to ${grant.apiKeyId ? `key ${grant.apiKeyId}` : `tenant ${grant.tenantId}`}; balance now ${grant.balance}`);
    });
}

function addCompletionCommand(program: Command, io: CliIo): void {
  program
    .command('completion')
    .description('Print a shell completion script: source <(modelgate completion bash), or zsh (after compinit)')
    .addArgument(new Argument('<shell>', 'bash or zsh').choices(['bash', 'zsh']))
    .action((shell: 'bash' | 'zsh') => {
      io.out(shell === 'bash' ? bashCompletion(program) : zshCompletion(program));
    });
}

function addAdminCommands(admin: Command, ctx: Context, io: CliIo): void {
  admin
    .command('bootstrap')
    .description('Create the first admin key if no usable admin key exists, and print it once (database only: it is the key a gateway would ask for)')
    .option('--tenant <name>', 'tenant for the admin key', 'admin')
    .option('--json', JSON_HELP)
    .action(async (opts: { tenant: string; json?: boolean }) => {
      const created = await ctx.direct('admin bootstrap', 'it creates the admin key that a gateway would ask for', (c) => c.bootstrapAdmin(opts.tenant));
      if (!created) {
        if (opts.json) io.out(JSON.stringify({ created: false }, null, 2));
        io.err('An admin key already exists; nothing created. Create further keys with an admin key or `modelgate keys create`.');
        process.exitCode = EXIT.NOTHING_DONE;
        return;
      }
      ctx.printKey(created, opts.json);
    });
}

function addTenantCommands(tenants: Command, ctx: Context): void {
  addFieldFlags(tenants.command('create').description('Create a tenant, optionally with its own limits').argument('<name>', 'unique tenant name'), TENANT_FIELD_FLAGS)
    .option('--json', JSON_HELP)
    .action(async (name: string, opts: Record<string, unknown> & { json?: boolean }) => {
      const input: CreateTenantInput = { name, ...fieldInput(TENANT_FIELD_FLAGS, opts) };
      const tenant = await ctx.run((c) => c.createTenant(input));
      ctx.emit(opts.json, tenant, `tenant ${tenant.name} created (${tenant.id})`);
    });
  tenants
    .command('list')
    .description('List every tenant with its status and limits')
    .option('--json', JSON_HELP)
    .action(async (opts: { json?: boolean }) => {
      const all = await ctx.run((c) => c.listTenants());
      ctx.emit(
        opts.json,
        all,
        table(
          all.map((t) => ({
            id: t.id,
            name: t.name,
            status: t.status,
            rpm: show(t.requestsPerMinute),
            cuPerMin: show(t.computeUnitsPerMinute),
            monthlyQuota: show(t.monthlyComputeUnitQuota),
            monthlySpend: t.monthlyBudget ? money(t.monthlyBudget) : 'none',
            credits: t.credits ? formatCredits(t.credits) : 'none',
          })),
        ),
      );
    });
  addFieldFlags(tenants.command('update').description("Change a tenant's limits (every gateway applies them at once)").argument('<tenant>', 'tenant name or id'), TENANT_FIELD_FLAGS)
    .option('--json', JSON_HELP)
    .action(async (ref: string, opts: Record<string, unknown> & { json?: boolean }) => {
      const input: UpdateTenantInput = fieldInput(TENANT_FIELD_FLAGS, opts);
      if (Object.keys(input).length === 0) throw new UsageError(`Nothing to change: give ${TENANT_FIELD_FLAGS.map((f) => f.flag).join(', ')}`);
      const tenant = await ctx.run((c) => c.updateTenant(ref, input));
      ctx.emit(opts.json, tenant, tenantSummary(tenant));
    });
  for (const [command, status, description] of [
    ['suspend', 'SUSPENDED', 'Refuse every key of the tenant with FORBIDDEN, on every gateway at once'],
    ['resume', 'ACTIVE', "Let a suspended tenant's keys work again"],
  ] as const) {
    tenants
      .command(command)
      .description(description)
      .argument('<tenant>', 'tenant name or id')
      .option('--json', JSON_HELP)
      .action(async (ref: string, opts: { json?: boolean }) => {
        const tenant = await ctx.run((c) => c.updateTenant(ref, { status }));
        ctx.emit(opts.json, tenant, tenantSummary(tenant));
      });
  }
}

/** Why over 80 lines: one commander chain per `keys` subcommand, each a few declarative lines; the list is the CLI's help text in code order. */
function addKeyCommands(keys: Command, ctx: Context): void {
  addFieldFlags(
    keys
      .command('create')
      .description('Create an API key for a tenant and print it once (stdout: the key only; details on stderr)')
      .requiredOption('--tenant <name>', 'tenant name or id')
      .requiredOption('--scopes <list>', 'comma-separated: inference, usage:read, keys:manage, models:manage, admin')
      .option('--models <list>', 'comma-separated model allowlist (default: every model)')
      .option('--expires <duration>', 'lifetime, e.g. 30d, 12h (default: never)')
      .option('--name <name>', 'a label for the key', 'cli key'),
    KEY_FIELD_FLAGS,
  )
    .addOption(new Option('--env <env>', 'key environment (default: KEY_ENVIRONMENT; database only)').choices(['live', 'test']))
    .option('--json', JSON_HELP)
    .action(async (opts: Record<string, unknown> & { tenant: string; scopes: string; models?: string; expires?: string; name: string; env?: 'live' | 'test'; json?: boolean }) => {
      const input: CreateApiKeyInput = {
        tenant: opts.tenant,
        name: opts.name,
        scopes: scopesOption(opts.scopes),
        allowedModels: opts.models ? list(opts.models) : [],
        ttlSeconds: opts.expires === undefined ? null : parseDuration(opts.expires),
        ...fieldInput(KEY_FIELD_FLAGS, opts),
        ...(opts.env ? { environment: opts.env } : {}),
      };
      const created = await ctx.run((c) => c.createApiKey(input));
      ctx.printKey(created, opts.json);
    });
  keys
    .command('list')
    .description('List API keys (never their secrets)')
    .option('--tenant <name>', 'only this tenant (name or id)')
    .option('--revoked', 'only revoked keys')
    .option('--active', 'only keys that are not revoked')
    .option('--json', JSON_HELP)
    .action(async (opts: { tenant?: string; revoked?: boolean; active?: boolean; json?: boolean }) => {
      if (opts.revoked && opts.active) throw new UsageError('--revoked and --active exclude each other');
      const all = await ctx.run((c) => c.listApiKeys({ tenant: opts.tenant, revoked: opts.revoked ? true : opts.active ? false : null }));
      ctx.emit(
        opts.json,
        all,
        table(
          all.map((k) => ({
            id: k.id,
            prefix: k.prefix,
            name: k.name,
            tenant: k.tenant,
            scopes: k.scopes.join(','),
            models: models(k),
            status: k.status,
            expires: k.expiresAt ?? 'never',
            lastUsed: k.lastUsedAt ?? 'never',
          })),
        ),
      );
    });
  keys
    .command('show')
    .description('Show one key (never its secret)')
    .argument('<key>', 'key id or display prefix (mg_live_XXXXXXXX)')
    .option('--json', JSON_HELP)
    .action(async (ref: string, opts: { json?: boolean }) => {
      const key = await ctx.run((c) => c.getApiKey(ref));
      ctx.emit(
        opts.json,
        key,
        [
          `id:        ${key.id}`,
          `prefix:    ${key.prefix}`,
          `name:      ${key.name}`,
          `tenant:    ${key.tenant}`,
          `status:    ${key.status}`,
          `scopes:    ${key.scopes.join(',')}`,
          `models:    ${models(key)}`,
          ...KEY_FIELD_FLAGS.map((f) => `${`${f.flag.slice(2)}:`.padEnd(10)} ${showField(f, key[f.field as keyof KeyRecord])}`),
          `expires:   ${key.expiresAt ?? 'never'}`,
          `last used: ${key.lastUsedAt ?? 'never'}`,
          `metadata:  ${key.metadata ? JSON.stringify(key.metadata) : 'none'}`,
        ].join('\n'),
      );
    });
  addFieldFlags(
    keys
      .command('update')
      .description('Change a key in place: name, scopes, models, limits, budget, expiry, metadata (every gateway applies it at once)')
      .argument('<key>', 'key id or display prefix')
      .option('--name <name>', 'new label')
      .option('--scopes <list>', 'replace the scopes (comma-separated)')
      .option('--models <list|all>', 'replace the model allowlist ("all": every model)'),
    KEY_FIELD_FLAGS,
  )
    .option('--expires <duration|never>', 'new lifetime from now, e.g. 30d, or "never"')
    .option('--meta <k=v...>', 'replace metadata labels, e.g. --meta owner=ana team=ml ("none" clears)')
    .option('--json', JSON_HELP)
    .action(async (ref: string, opts: Record<string, unknown> & { name?: string; scopes?: string; models?: string; expires?: string; meta?: string[]; json?: boolean }) => {
      const input: UpdateApiKeyInput = { ...fieldInput(KEY_FIELD_FLAGS, opts) };
      if (opts.name !== undefined) input.name = opts.name;
      if (opts.scopes !== undefined) input.scopes = scopesOption(opts.scopes);
      if (opts.models !== undefined) input.allowedModels = opts.models === 'all' ? [] : list(opts.models);
      if (opts.expires !== undefined) input.expiresAt = opts.expires === 'never' ? null : new Date(Date.now() + parseDuration(opts.expires) * 1000);
      if (opts.meta !== undefined) input.metadata = metaOption(opts.meta);
      if (Object.keys(input).length === 0) throw new UsageError('Nothing to change: give at least one option (see --help)');
      const key = await ctx.run((c) => c.updateApiKey(ref, input));
      ctx.emit(opts.json, key, `key ${key.id} (${key.prefix}) updated`);
    });
  keys
    .command('revoke')
    .description('Revoke an API key at once (running gateways are told over Redis and Postgres)')
    .argument('<key>', 'key id or display prefix (mg_live_XXXXXXXX)')
    .option('--json', JSON_HELP)
    .action(async (ref: string, opts: { json?: boolean }) => {
      const key = await ctx.run((c) => c.revokeApiKey(ref));
      ctx.emit(opts.json, key, `key ${key.id} (${key.prefix}) revoked`);
    });
  keys
    .command('rotate')
    .description('Replace an API key with a new secret, the old one working for --grace')
    .argument('<key>', 'key id or display prefix')
    .option('--grace <duration>', 'how long the old secret keeps working, e.g. 1h (default: 0s, stops at once)', '0s')
    .option('--json', JSON_HELP)
    .action(async (ref: string, opts: { grace: string; json?: boolean }) => {
      const grace = parseDuration(opts.grace, { allowZero: true });
      const rotated = await ctx.run((c) => c.rotateApiKey(ref, grace));
      ctx.printKey(rotated, opts.json);
      if (!opts.json) ctx.io.err(`old key ${rotated.previous.prefix} works until ${String(rotated.previous.graceUntil ?? 'now')}`);
    });
  keys
    .command('generate')
    .description('Print a new, well-formed key without storing it (for MODELGATE_BOOTSTRAP_KEY); touches no gateway or database')
    .addOption(new Option('--env <env>', 'key environment').choices(['live', 'test']).default('live'))
    .option('--json', JSON_HELP)
    .action((opts: { env: 'live' | 'test'; json?: boolean }) => {
      const key = generateKey(opts.env);
      ctx.io.err('modelgate: no target (keys generate stores nothing)');
      ctx.emit(opts.json, { plaintext: key.plaintext, prefix: key.prefix }, key.plaintext);
    });
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
    // A gateway holding the embedded database can still be administered: through it.
    const hint = error instanceof DataDirLockedError ? ' Or administer it through that gateway: --url http://<host>:<port> with MODELGATE_ADMIN_KEY.' : '';
    io.err(`modelgate: ${message}${hint}`);
    return exitCodeOf(error);
  }
}

/** Why webhook commands need a gateway: the signing secrets are encrypted with the gateways' key. */
const WEBHOOKS_NEED_GATEWAY = "signing secrets are encrypted with the gateways' WEBHOOK_SECRET_ENCRYPTION_KEY, and deliveries are made by the gateways";

function csvList(value: string | undefined): string[] | null {
  return value === undefined ? null : value.split(',').map((v) => v.trim()).filter((v) => v.length > 0);
}

function addWebhookCommands(webhooks: Command, ctx: Context): void {
  addWebhookEditCommands(webhooks, ctx);
  addWebhookDeliveryCommands(webhooks, ctx);
  addWebhookReencryptCommand(webhooks, ctx);
}

/** create, list, delete, rotate-secret: the webhooks themselves. */
function addWebhookEditCommands(webhooks: Command, ctx: Context): void {
  webhooks
    .command('create')
    .description('Add a webhook for a tenant; prints its signing secret once (stdout), the details on stderr')
    .argument('<url>', 'http:// or https:// URL the events are POSTed to (an argument: --url names the gateway)')
    .requiredOption('--tenant <id|name>', 'the tenant whose events it receives')
    .option('--events <list>', 'event types, comma-separated (quota.threshold, budget.threshold, credits.exhausted, key.expiring, key.revoked, ratelimit.breached); default: all')
    .option('--thresholds <list>', 'percentages of a quota or budget that fire, comma-separated; default 80,90,100')
    .option('--json', JSON_HELP)
    .action(async (url: string, opts: { tenant: string; events?: string; thresholds?: string; json?: boolean }) => {
      const thresholds = csvList(opts.thresholds);
      if (thresholds?.some((t) => !/^\d+$/.test(t))) throw new UsageError(`--thresholds must be whole percentages, comma-separated (got "${opts.thresholds}")`);
      const created = await ctx.remote('webhooks create', WEBHOOKS_NEED_GATEWAY, (c) =>
        c.createWebhook({ tenant: opts.tenant, url, events: csvList(opts.events), thresholds: thresholds?.map(Number) ?? null }),
      );
      if (opts.json) return ctx.emit(true, created, '');
      ctx.io.out(created.secret);
      ctx.io.err(`webhook ${created.webhook.id} → ${created.webhook.url}; events: ${created.webhook.events.join(',') || 'all'}; thresholds: ${created.webhook.thresholds.join(',')}\nStore the secret now: it is shown only once (rotate-secret makes a new one).`);
    });
  webhooks
    .command('list')
    .description("List a tenant's webhooks (admin: every tenant's when none is named)")
    .option('--tenant <id|name>', 'the tenant')
    .option('--json', JSON_HELP)
    .action(async (opts: { tenant?: string; json?: boolean }) => {
      const all = await ctx.remote('webhooks list', WEBHOOKS_NEED_GATEWAY, (c) => c.listWebhooks(opts.tenant ?? null));
      ctx.emit(opts.json, all, all.map((w) => `${w.id}  ${w.enabled ? 'enabled ' : 'disabled'}  ${w.url}  events: ${w.events.join(',') || 'all'}  thresholds: ${w.thresholds.join(',')}`).join('\n') || 'no webhooks');
    });
  webhooks
    .command('delete')
    .description('Delete a webhook and its delivery log')
    .argument('<id>', 'webhook id')
    .option('--json', JSON_HELP)
    .action(async (id: string, opts: { json?: boolean }) => {
      const deleted = await ctx.remote('webhooks delete', WEBHOOKS_NEED_GATEWAY, (c) => c.deleteWebhook(id));
      ctx.emit(opts.json, { id, deleted }, `webhook ${id} deleted`);
    });
  webhooks
    .command('rotate-secret')
    .description('Replace the signing secret at once; prints the new one once')
    .argument('<id>', 'webhook id')
    .option('--json', JSON_HELP)
    .action(async (id: string, opts: { json?: boolean }) => {
      const rotated = await ctx.remote('webhooks rotate-secret', WEBHOOKS_NEED_GATEWAY, (c) => c.rotateWebhookSecret(id));
      if (opts.json) return ctx.emit(true, rotated, '');
      ctx.io.out(rotated.secret);
      ctx.io.err(`webhook ${id}: new secret (${rotated.webhook.secretPrefix}…); the old one no longer signs`);
    });
}

/** deliveries, redeliver: the delivery log. */
function addWebhookDeliveryCommands(webhooks: Command, ctx: Context): void {
  webhooks
    .command('deliveries')
    .description('The delivery log, newest first: status, attempts and the last answer per event and webhook')
    .option('--tenant <id|name>', 'the tenant')
    .option('--webhook <id>', 'only this webhook')
    .option('--status <status>', 'only PENDING, DELIVERED or FAILED')
    .option('--first <n>', 'how many, 1-100', '20')
    .option('--json', JSON_HELP)
    .action(async (opts: { tenant?: string; webhook?: string; status?: string; first: string; json?: boolean }) => {
      const status = opts.status?.toUpperCase() ?? null;
      if (status !== null && !['PENDING', 'DELIVERED', 'FAILED'].includes(status)) throw new UsageError(`--status must be PENDING, DELIVERED or FAILED (got "${opts.status}")`);
      if (!/^\d+$/.test(opts.first) || Number(opts.first) < 1 || Number(opts.first) > 100) throw new UsageError(`--first must be a whole number from 1 to 100 (got "${opts.first}")`);
      const rows = await ctx.remote('webhooks deliveries', WEBHOOKS_NEED_GATEWAY, (c) =>
        c.webhookDeliveries({ tenant: opts.tenant ?? null, webhookId: opts.webhook ?? null, status, first: Number(opts.first) }),
      );
      ctx.emit(
        opts.json,
        rows,
        rows.map((d) => `${d.id}  ${d.status.padEnd(9)}  ${d.eventType}  attempts ${d.attempts}  ${d.lastStatusCode ?? d.lastError ?? ''}  ${d.createdAt}`).join('\n') || 'no deliveries',
      );
    });
  webhooks
    .command('redeliver')
    .description('Send a delivery again now (same event id), e.g. after it FAILED')
    .argument('<delivery-id>', 'delivery id from webhooks deliveries')
    .option('--json', JSON_HELP)
    .action(async (id: string, opts: { json?: boolean }) => {
      const d = await ctx.remote('webhooks redeliver', WEBHOOKS_NEED_GATEWAY, (c) => c.redeliverWebhookEvent(id));
      ctx.emit(opts.json, d, `delivery ${d.id} (${d.eventType}) scheduled again`);
    });
}

/** reencrypt-secrets: rotating WEBHOOK_SECRET_ENCRYPTION_KEY (database only). */
function addWebhookReencryptCommand(webhooks: Command, ctx: Context): void {
  webhooks
    .command('reencrypt-secrets')
    .description(
      'Rotate WEBHOOK_SECRET_ENCRYPTION_KEY (database only): re-encrypt every stored webhook secret from the old key to the new one in one transaction. ' +
        'The keys are read from the environment variables you name, never from the command line. Safe to run again: secrets already under the new key are left as they are. ' +
        'Then give every gateway the new key.',
    )
    .requiredOption('--from-key-env <VAR>', 'the variable holding the current (old) key, e.g. OLD_WEBHOOK_KEY')
    .requiredOption('--to-key-env <VAR>', 'the variable holding the new key (64 hex digits or base64 of 32 random bytes: `openssl rand -hex 32`)')
    .option('--json', JSON_HELP)
    .action(async (opts: { fromKeyEnv: string; toKeyEnv: string; json?: boolean }) => {
      if (opts.fromKeyEnv === opts.toKeyEnv) throw new UsageError('--from-key-env and --to-key-env name the same variable; name the old key and the new one');
      const fromKey = ctx.secretKeyFrom(opts.fromKeyEnv, false);
      const toKey = ctx.secretKeyFrom(opts.toKeyEnv, true);
      if (fromKey.equals(toKey)) throw new UsageError(`${opts.fromKeyEnv} and ${opts.toKeyEnv} hold the same key; nothing to rotate`);
      const summary = await ctx.direct('webhooks reencrypt-secrets', 'the gateways hold only one key, and the secrets are rewritten in the database', (c) =>
        c.reencryptWebhookSecrets(fromKey, toKey, (p) => ctx.io.err(`re-encrypting webhook secrets: ${p.done}/${p.total}`)),
      );
      ctx.emit(
        opts.json,
        summary,
        `webhook secrets: ${summary.reencrypted} re-encrypted, ${summary.alreadyNewKey} already under the new key, ${summary.total} in all. Now set WEBHOOK_SECRET_ENCRYPTION_KEY to the new key on every gateway.`,
      );
    });
}
