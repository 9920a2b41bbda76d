/**
 * `modelgate usage`, `invoice` and `prices`: the billing API of a running
 * gateway (usageSummary, usageRecords, invoice, prices, setPrice), with keys
 * named by id or display prefix and tenants by id or name, as everywhere in
 * the CLI. Money is printed with its currency, from the exact micro-units the
 * gateway answers; --json prints the gateway's records, --csv a CSV table.
 */
import { Option, type Command } from 'commander';
import type { RemoteAdminClient, UsageSummaryRecord } from './remote-client';
import { parseDuration } from './duration';
import { CliError, EXIT, UsageError } from './exit';
import { JSON_HELP, amountAsMicros, csv, microsAsAmount, table } from './format';
import type { KeyRecord } from './admin-client';

/** What these commands need of the CLI's context (program.ts). */
export interface FinanceContext {
  remote<T>(command: string, why: string, work: (client: RemoteAdminClient) => Promise<T>): Promise<T>;
  emit(json: boolean | undefined, value: unknown, human: string): void;
  readonly io: { out: (text: string) => void; err: (text: string) => void };
}

const BILLING_NEEDS_GATEWAY = 'usage, prices and invoices are read through the gateway\'s billing API, which prices each hour of usage with the price book';
const PRICES_SET_NEEDS_GATEWAY = "a price that starts in the current hour makes the gateway rebuild the money-budget counters it holds in Redis";
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const CSV_HELP = 'print CSV (a header line, then one line per row) on stdout';
const GROUPS = ['hour', 'day', 'model', 'key', 'status'] as const;
const STATUSES = ['OK', 'BAD_INPUT', 'RATE_LIMITED', 'QUOTA_EXCEEDED', 'OVERLOADED', 'TIMEOUT', 'ERROR'];

interface RangeOptions {
  month?: string;
  last?: string;
  from?: string;
  to?: string;
}

/** A UTC month as YYYY-MM: as given, or "current" / "previous" relative to now. */
export function monthOption(value: string, now = new Date()): string {
  if (value === 'current' || value === 'previous') {
    const d = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() - (value === 'previous' ? 1 : 0), 1));
    return d.toISOString().slice(0, 7);
  }
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(value)) throw new UsageError(`a month is YYYY-MM, current or previous (got "${value}")`);
  return value;
}

function dateOption(value: string, flag: string): Date {
  const date = new Date(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
  if (Number.isNaN(date.getTime())) throw new UsageError(`${flag} must be a date (2026-12-01) or an ISO 8601 date-time (got "${value}")`);
  return date;
}

/** [from, to) from --month, --last or --from/--to; default: the current calendar month (UTC). */
export function rangeOf(opts: RangeOptions, now = new Date()): { from: Date; to: Date } {
  const given = [opts.month !== undefined, opts.last !== undefined, opts.from !== undefined || opts.to !== undefined].filter(Boolean).length;
  if (given > 1) throw new UsageError('give one range: --month, --last, or --from/--to');
  if (opts.last !== undefined) return { from: new Date(now.getTime() - parseDuration(opts.last) * 1000), to: now };
  if (opts.from !== undefined || opts.to !== undefined) {
    if (opts.from === undefined) throw new UsageError('--to needs --from');
    const from = dateOption(opts.from, '--from');
    const to = opts.to === undefined ? now : dateOption(opts.to, '--to');
    if (to <= from) throw new UsageError('--to must be after --from');
    return { from, to };
  }
  const [y, m] = monthOption(opts.month ?? 'current', now).split('-').map(Number);
  return { from: new Date(Date.UTC(y ?? 0, (m ?? 1) - 1, 1)), to: new Date(Date.UTC(y ?? 0, m ?? 1, 1)) };
}

function addRangeOptions(command: Command): Command {
  return command
    .option('--month <YYYY-MM|current|previous>', 'a calendar month (UTC); the default range is the current month')
    .option('--last <duration>', 'the last 24h, 7d, 30d, …, up to now')
    .option('--from <date>', 'start (2026-12-01 or an ISO date-time), inclusive')
    .option('--to <date>', 'end, exclusive (default: now)');
}

/** Names for ids, where the admin key may read them (a usage:read key sees ids only). */
class Names {
  private tenants = new Map<string, string>();
  private keys = new Map<string, string>();

  /** Tenant names, and the prefixes of the keys of `keysOf` (a tenant id; null: every key, undefined: none). */
  static async load(client: RemoteAdminClient, keysOf: string | null | undefined): Promise<Names> {
    const names = new Names();
    const [tenants, keys] = await Promise.all([
      refusedAsEmpty(client.listTenants()),
      keysOf === undefined ? Promise.resolve([]) : refusedAsEmpty(client.listApiKeys({ tenant: keysOf ?? undefined })),
    ]);
    for (const t of tenants) names.tenants.set(t.id, t.name);
    for (const k of keys) names.keys.set(k.id, k.prefix);
    return names;
  }

  tenant(id: string | null): string {
    return id === null ? '' : (this.tenants.get(id) ?? '');
  }

  key(id: string | null): string {
    return id === null ? '' : (this.keys.get(id) ?? '');
  }
}

/** Names are a courtesy: a key that may not list tenants or keys still reads its usage. */
async function refusedAsEmpty<T>(work: Promise<T[]>): Promise<T[]> {
  try {
    return await work;
  } catch (error) {
    if (error instanceof CliError && (error.exitCode === EXIT.KEY_REFUSED || error.exitCode === EXIT.REFUSED)) return [];
    throw error;
  }
}

/** A tenant named by id or name, as the id usageSummary/usageRecords take. */
async function tenantId(client: RemoteAdminClient, ref: string | undefined): Promise<string | null> {
  if (ref === undefined) return null;
  if (UUID.test(ref)) return ref;
  const tenant = (await client.listTenants()).find((t) => t.name === ref);
  if (!tenant) throw new CliError(EXIT.REFUSED, `Unknown tenant "${ref}"`);
  return tenant.id;
}

async function keyOf(client: RemoteAdminClient, ref: string | undefined): Promise<KeyRecord | null> {
  return ref === undefined ? null : client.getApiKey(ref);
}

function spendText(spend: { amount: string; currency: string }[]): string {
  return spend.length ? spend.map((m) => `${m.amount} ${m.currency}`).join('; ') : '-';
}

function groupColumns(row: UsageSummaryRecord, groups: string[], names: Names): Record<string, string> {
  const out: Record<string, string> = {};
  for (const g of groups) {
    if (g === 'hour') out['hour'] = row.hour ?? '';
    if (g === 'day') out['day'] = row.day?.slice(0, 10) ?? '';
    if (g === 'model') out['model'] = row.model ?? '';
    if (g === 'status') out['status'] = row.status ?? '';
    if (g === 'key') {
      out['key'] = names.key(row.apiKeyId) || (row.apiKeyId ?? '(no key)');
      out['apiKeyId'] = row.apiKeyId ?? '';
    }
  }
  return out;
}

export function addFinanceCommands(program: Command, ctx: FinanceContext): void {
  const usage = program.command('usage').description('Usage and spend through a gateway: totals (summary) and the metered requests (records)');
  addUsageSummaryCommand(usage, ctx);
  addUsageRecordsCommand(usage, ctx);
  addInvoiceCommand(program, ctx);
  const prices = program.command('prices').description('The price book: what one compute unit of a model costs, from a whole UTC hour on');
  addPricesListCommand(prices, ctx);
  addPricesSetCommand(prices, ctx);
}

function addUsageSummaryCommand(usage: Command, ctx: FinanceContext): void {
  addRangeOptions(
    usage
      .command('summary')
      .description('Totals over a range: requests, items, compute units, errors and spend (money per currency, at the price in effect each hour)')
      .option('--tenant <id|name>', "one tenant (admin; default: the admin key's view: every tenant)")
      .option('--key <key>', 'one key, by id or display prefix (mg_live_XXXXXXXX)')
      .option('--group-by <list>', `comma-separated: ${GROUPS.join(', ')} (default: one total row)`),
  )
    .option('--csv', CSV_HELP)
    .option('--json', JSON_HELP)
    .action(async (opts: RangeOptions & { tenant?: string; key?: string; groupBy?: string; csv?: boolean; json?: boolean }) => {
      if (opts.csv && opts.json) throw new UsageError('--csv and --json exclude each other');
      const range = rangeOf(opts);
      const groups = [...new Set((opts.groupBy ?? '').split(',').map((g) => g.trim().toLowerCase()).filter(Boolean))];
      for (const g of groups) if (!(GROUPS as readonly string[]).includes(g)) throw new UsageError(`--group-by takes ${GROUPS.join(', ')} (got "${g}")`);
      const { rows, names, shownGroups } = await ctx.remote('usage summary', BILLING_NEEDS_GATEWAY, async (c) => {
        const key = await keyOf(c, opts.key);
        const tenant = (await tenantId(c, opts.tenant)) ?? key?.tenantId ?? null;
        // usageSummary has no key filter: one key is its API_KEY group.
        const asked = key && !groups.includes('key') ? [...groups, 'key'] : groups;
        const all = await c.usageSummary({ from: range.from.toISOString(), to: range.to.toISOString(), groupBy: asked.map((g) => (g === 'key' ? 'API_KEY' : g.toUpperCase())), tenantId: tenant });
        const rows = key ? all.filter((r) => r.apiKeyId === key.id) : all;
        return { rows, names: await Names.load(c, groups.includes('key') ? tenant : undefined), shownGroups: groups };
      });
      const flat = rows.map((r) => ({
        ...groupColumns(r, shownGroups, names),
        requests: String(r.requests),
        items: String(r.items),
        computeUnits: String(r.computeUnits),
        errors: String(r.errors),
        spend: spendText(r.spend),
        unpricedUnits: String(r.unpricedComputeUnits),
      }));
      if (opts.csv) {
        const header = [...Object.keys(groupColumns(rows[0] ?? ({} as UsageSummaryRecord), shownGroups, names)), 'requests', 'items', 'computeUnits', 'errors', 'currency', 'amountMicros', 'amount', 'unpricedUnits'];
        const csvRows = rows.map((r, i) => ({
          ...flat[i],
          currency: r.spend.map((m) => m.currency).join(';'),
          amountMicros: r.spend.map((m) => m.amountMicros).join(';'),
          amount: r.spend.map((m) => m.amount).join(';'),
        })) as Record<string, string>[];
        return ctx.io.out(csv(csvRows, header));
      }
      ctx.emit(opts.json, { from: range.from.toISOString(), to: range.to.toISOString(), rows }, `usage ${range.from.toISOString()} – ${range.to.toISOString()}\n${table(flat)}`);
    });
}

function addUsageRecordsCommand(usage: Command, ctx: FinanceContext): void {
  addRangeOptions(
    usage
      .command('records')
      .description('The metered requests, newest first: key, model, status, units, what each cost (at the price of its hour), latency')
      .option('--tenant <id|name>', 'one tenant (admin)')
      .option('--key <key>', 'one key, by id or display prefix (mg_live_XXXXXXXX)')
      .option('--model <name>', 'one model')
      .addOption(new Option('--status <status>', 'one outcome').choices(STATUSES))
      .option('--limit <n|all>', 'how many records at most ("all": every one in the range)', '100'),
  )
    .option('--csv', CSV_HELP)
    .option('--json', JSON_HELP)
    .action(async (opts: RangeOptions & { tenant?: string; key?: string; model?: string; status?: string; limit: string; csv?: boolean; json?: boolean }) => {
      if (opts.csv && opts.json) throw new UsageError('--csv and --json exclude each other');
      if (opts.limit !== 'all' && !/^[1-9]\d*$/.test(opts.limit)) throw new UsageError(`--limit must be a positive whole number or "all" (got "${opts.limit}")`);
      const range = rangeOf(opts);
      const { records, names } = await ctx.remote('usage records', BILLING_NEEDS_GATEWAY, async (c) => {
        const key = await keyOf(c, opts.key);
        const tenant = (await tenantId(c, opts.tenant)) ?? key?.tenantId ?? null;
        const records = await c.usageRecords(
          { tenantId: tenant, apiKeyId: key?.id ?? null, model: opts.model ?? null, status: opts.status ?? null, from: range.from.toISOString(), to: range.to.toISOString() },
          opts.limit === 'all' ? null : Number(opts.limit),
        );
        return { records, names: await Names.load(c, tenant) };
      });
      const rows = records.map((r) => ({
        createdAt: r.createdAt,
        tenant: names.tenant(r.tenantId) || r.tenantId,
        key: names.key(r.apiKeyId) || (r.apiKeyId ?? '(no key)'),
        model: r.model,
        version: r.modelVersion ?? '',
        status: r.status,
        items: String(r.items),
        computeUnits: String(r.computeUnits),
        spend: r.spend ? `${r.spend.amount} ${r.spend.currency}` : '-',
        latencyMs: String(r.latencyMs),
        id: r.id,
      }));
      if (opts.csv) {
        const header = ['createdAt', 'tenant', 'key', 'model', 'version', 'status', 'items', 'computeUnits', 'currency', 'amountMicros', 'amount', 'latencyMs', 'id', 'tenantId', 'apiKeyId'];
        const csvRows = records.map((r, i) => ({ ...rows[i], currency: r.spend?.currency ?? '', amountMicros: r.spend?.amountMicros ?? '', amount: r.spend?.amount ?? '', tenantId: r.tenantId, apiKeyId: r.apiKeyId ?? '' }) as Record<string, string>);
        return ctx.io.out(csv(csvRows, header));
      }
      ctx.emit(opts.json, records, table(rows));
    });
}

function addInvoiceCommand(program: Command, ctx: FinanceContext): void {
  program
    .command('invoice')
    .description("A tenant's statement for a calendar month (UTC): one line per model and price, totals per currency (the GraphQL invoice query)")
    .argument('<tenant>', 'tenant id or name')
    .argument('<month>', 'YYYY-MM, current or previous')
    .option('--csv', CSV_HELP)
    .option('--json', JSON_HELP)
    .action(async (tenant: string, month: string, opts: { csv?: boolean; json?: boolean }) => {
      if (opts.csv && opts.json) throw new UsageError('--csv and --json exclude each other');
      const invoice = await ctx.remote('invoice', BILLING_NEEDS_GATEWAY, (c) => c.invoice(tenant, monthOption(month)));
      const lines = invoice.lines.map((l) => ({
        model: l.model,
        unitPrice: l.unitPriceMicros === null ? 'no price' : microsAsAmount(l.unitPriceMicros),
        units: l.units,
        amount: microsAsAmount(l.amountMicros),
        currency: l.currency ?? '',
        from: l.from,
        to: l.to,
      }));
      if (opts.csv) {
        return ctx.io.out(csv(invoice.lines.map((l, i) => ({ ...lines[i], unitPriceMicros: l.unitPriceMicros ?? '', amountMicros: l.amountMicros }) as Record<string, string>), ['model', 'currency', 'unitPrice', 'unitPriceMicros', 'units', 'amount', 'amountMicros', 'from', 'to']));
      }
      ctx.emit(
        opts.json,
        invoice,
        [
          `invoice ${invoice.tenantName} (${invoice.tenantId}) ${invoice.month}: ${invoice.from} – ${invoice.to}`,
          table(lines),
          ...(invoice.totals.length ? invoice.totals.map((t) => `total: ${t.amount} ${t.currency}`) : ['total: nothing priced']),
          ...(invoice.unpricedUnits !== '0' ? [`unpriced: ${invoice.unpricedUnits} compute units had no price in effect (amount 0)`] : []),
        ].join('\n'),
      );
    });
}

function addPricesListCommand(prices: Command, ctx: FinanceContext): void {
  prices
    .command('list')
    .description('Prices, oldest first per model: list prices and tenants\' own (tenant "list" = the list price)')
    .option('--model <name>', 'one model')
    .option('--tenant <id|name>', "list prices and this tenant's own")
    .option('--json', JSON_HELP)
    .action(async (opts: { model?: string; tenant?: string; json?: boolean }) => {
      const { rows, names } = await ctx.remote('prices list', BILLING_NEEDS_GATEWAY, async (c) => ({
        rows: await c.prices({ model: opts.model ?? null, tenant: opts.tenant ?? null }),
        names: await Names.load(c, undefined),
      }));
      const now = Date.now();
      ctx.emit(
        opts.json,
        rows,
        table(
          rows.map((p) => ({
            model: p.model,
            tenant: p.tenantId === null ? 'list' : names.tenant(p.tenantId) || p.tenantId,
            unitPrice: `${microsAsAmount(p.unitPriceMicros)} ${p.currency}`,
            effectiveFrom: p.effectiveFrom,
            state: Date.parse(p.effectiveFrom) > now ? 'scheduled' : 'started',
            createdBy: p.createdBy,
          })),
        ),
      );
    });
}

function addPricesSetCommand(prices: Command, ctx: FinanceContext): void {
  prices
    .command('set')
    .description(
      'Add a price: from the current hour (the default; usage already recorded in this hour is billed at it too) or a later whole UTC hour. ' +
        'Usage of earlier hours keeps the price it had.',
    )
    .argument('<model>', 'model name')
    .argument('<price>', 'the price of one compute unit in currency units, at most 6 decimals, e.g. 0.0025')
    .requiredOption('--currency <code>', 'ISO 4217 code, e.g. USD')
    .option('--tenant <id|name>', "this tenant's own price (default: the list price)")
    .option('--from <now|next-hour|date-time>', 'a whole UTC hour: now (the current hour), next-hour, or e.g. 2027-01-01T00:00:00Z', 'now')
    .option('--json', JSON_HELP)
    .action(async (model: string, price: string, opts: { currency: string; tenant?: string; from: string; json?: boolean }) => {
      const micros = amountAsMicros(price);
      if (micros === null) throw new UsageError(`<price> must be a decimal amount with at most 6 decimals, e.g. 0.0025 (got "${price}")`);
      const hour = 3_600_000;
      const now = Date.now();
      const from =
        opts.from === 'now' ? new Date(Math.floor(now / hour) * hour) : opts.from === 'next-hour' ? new Date(Math.floor(now / hour) * hour + hour) : dateOption(opts.from, '--from');
      const set = await ctx.remote('prices set', PRICES_SET_NEEDS_GATEWAY, (c) =>
        c.setPrice({ model, tenant: opts.tenant ?? null, currency: opts.currency, unitPriceMicros: micros, effectiveFrom: from.toISOString() }),
      );
      ctx.emit(opts.json, set, `price ${set.id}: ${set.model} ${microsAsAmount(set.unitPriceMicros)} ${set.currency} per compute unit for ${set.tenantId ?? 'every tenant (list price)'} from ${set.effectiveFrom}`);
    });
}
