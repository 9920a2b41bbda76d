/**
 * The remote target: a running gateway's GraphQL admin API (POST JSON,
 * `Authorization: Bearer <admin key>`). Each call is bounded by --timeout; an
 * unreachable or silent gateway, and one that answers with something other
 * than GraphQL, is UnreachableError (exit 4); GraphQL errors map to exit
 * codes through the one table in exit.ts, with the gateway's message.
 */
import { SCOPES } from '../auth/principal';
import type { CreateApiKeyInput, CreateTenantInput, ListApiKeysFilter, UpdateApiKeyInput, UpdateTenantInput } from '../keys/key.service';
import { VERSION } from '../version';
import { KEY_FIELDS, selection, type AdminClient, type CreatedKeyRecord, type KeyRecord, type RotatedKeyRecord, type TenantRecord } from './admin-client';
import { CliError, UnreachableError, UsageError, exitForErrorCode } from './exit';

const TENANT = selection(['id', 'name', 'status', 'requestsPerMinute', 'computeUnitsPerMinute', 'monthlyComputeUnitQuota', 'monthlyBudget', 'credits', 'createdAt', 'updatedAt']);
const KEY = `${selection(KEY_FIELDS)} tenant { name }`;

interface GraphQLAnswer {
  data?: Record<string, unknown> | null;
  errors?: { message?: string; extensions?: { code?: string; requestId?: string } }[];
}

/** GraphQL's enum names for scopes (INFERENCE, USAGE_READ) from the names the CLI takes (inference, usage:read). */
function scopeEnum(scope: string): string {
  return scope.toUpperCase().replace(':', '_');
}

function scopeValue(name: string): string {
  return SCOPES.find((s) => scopeEnum(s) === name) ?? name.toLowerCase();
}

interface Connection<T> {
  edges: { node: T }[];
  pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

type RawKey = Record<string, unknown> & { tenant?: { name?: string } | null; scopes?: string[]; status?: string };

function keyRecord(raw: RawKey): KeyRecord {
  const picked: Record<string, unknown> = {};
  for (const field of KEY_FIELDS) picked[field] = raw[field] ?? null;
  picked['scopes'] = (raw.scopes ?? []).map(scopeValue);
  picked['status'] = String(raw.status ?? '').toLowerCase();
  return { ...picked, tenant: raw.tenant?.name ?? String(raw['tenantId']) } as KeyRecord;
}

/** Domain inputs as GraphQL variables: scopes as enum names; the rest is shaped alike. */
function withScopeEnums<T extends { scopes?: string[] }>(input: T): T {
  return input.scopes ? { ...input, scopes: input.scopes.map(scopeEnum) } : input;
}

/** A webhook as the gateway answers it (never its secret). */
export interface WebhookRecord {
  id: string;
  tenantId: string;
  url: string;
  events: string[];
  thresholds: number[];
  enabled: boolean;
  secretPrefix: string;
  createdAt: string;
}
const WEBHOOK = 'id tenantId url events thresholds enabled secretPrefix createdAt';

/** One entry of the delivery log. */
export interface WebhookDeliveryRecord {
  id: string;
  eventId: string;
  eventType: string;
  webhookId: string;
  status: string;
  attempts: number;
  lastStatusCode: number | null;
  lastError: string | null;
  deliveredAt: string | null;
  createdAt: string;
}
const DELIVERY = 'id eventId eventType webhookId status attempts lastStatusCode lastError deliveredAt createdAt';

/** A top-up as the gateway answers it. */
export interface CreditGrantRecord {
  id: string;
  tenantId: string;
  apiKeyId: string | null;
  amount: number;
  balance: number;
}

/** A usageSummary row as the gateway answers it; spend per currency in exact micro-units. */
export interface UsageSummaryRecord {
  hour: string | null;
  day: string | null;
  model: string | null;
  apiKeyId: string | null;
  status: string | null;
  requests: number;
  items: number;
  computeUnits: number;
  errors: number;
  avgLatencyMs: number | null;
  p95LatencyMs: number | null;
  spend: MoneyRecord[];
  unpricedComputeUnits: number;
}
const SUMMARY = 'hour day model apiKeyId status requests items computeUnits errors avgLatencyMs p95LatencyMs spend { currency amountMicros amount } unpricedComputeUnits';

export interface MoneyRecord {
  currency: string;
  amountMicros: string;
  amount: string;
}

/** One usage record (a metered request). */
export interface UsageRecordRecord {
  id: string;
  tenantId: string;
  apiKeyId: string | null;
  model: string;
  modelVersion: string | null;
  items: number;
  computeUnits: number;
  status: string;
  latencyMs: number;
  createdAt: string;
  /** What it cost at the price of its hour; null: not OK, or no price. */
  spend: MoneyRecord | null;
}
const RECORD = 'id tenantId apiKeyId model modelVersion items computeUnits status latencyMs createdAt spend { currency amountMicros amount }';

export interface UsageRecordQuery {
  tenantId: string | null;
  apiKeyId: string | null;
  model: string | null;
  status: string | null;
  from: string;
  to: string;
}

/** The GraphQL invoice, as the gateway answers it. */
export interface InvoiceRecord {
  tenantId: string;
  tenantName: string;
  month: string;
  from: string;
  to: string;
  lines: { model: string; currency: string | null; unitPriceMicros: string | null; units: string; amountMicros: string; from: string; to: string }[];
  totals: MoneyRecord[];
  unpricedUnits: string;
}
const INVOICE = 'tenantId tenantName month from to lines { model currency unitPriceMicros units amountMicros from to } totals { currency amountMicros amount } unpricedUnits';

/** One entry of the price book. */
export interface PriceRecord {
  id: string;
  model: string;
  tenantId: string | null;
  currency: string;
  unitPriceMicros: string;
  effectiveFrom: string;
  createdBy: string;
  createdAt: string;
}
const PRICE = 'id model tenantId currency unitPriceMicros effectiveFrom createdBy createdAt';

/** A model as `models` answers it: its latest READY version and every version's state. */
export interface ModelRecord {
  name: string;
  version: string;
  status: string;
  versions: { version: string; status: string; reason: string | null }[];
}

export class RemoteAdminClient implements AdminClient {
  /**
   * @param endpoint the gateway's /graphql URL
   * @param target the gateway as the target line names it (no credentials), for messages
   */
  constructor(
    private readonly endpoint: string,
    private readonly target: string,
    private readonly adminKey: string,
    private readonly keyLabel: string,
    private readonly timeoutMs: number,
  ) {}

  private async call<T>(query: string, variables: Record<string, unknown> = {}): Promise<T> {
    let response: Response;
    try {
      response = await fetch(this.endpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${this.adminKey}`, 'user-agent': `modelgate-cli/${VERSION}` },
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (error) {
      throw this.unreachable(error);
    }
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw this.unreachable(error);
    }
    let body: GraphQLAnswer;
    try {
      body = JSON.parse(text) as GraphQLAnswer;
    } catch {
      body = {};
    }
    const first = Array.isArray(body.errors) ? body.errors[0] : undefined;
    // A GraphQL answer whose data is null carries its code's status (404 for NOT_FOUND, errors/contract.ts):
    // only a 404/405 without a coded GraphQL error means the URL is not a GraphQL endpoint.
    if ((response.status === 404 || response.status === 405) && first?.extensions?.code === undefined) {
      throw new UnreachableError(`${this.target} has no GraphQL endpoint at ${this.endpoint} (HTTP ${response.status}); --url / MODELGATE_URL is the gateway's base URL, e.g. http://host:4000`);
    }
    if (first) {
      const code = first.extensions?.code ?? 'UNKNOWN';
      const message = first.message ?? 'no message';
      const request = first.extensions?.requestId ? `, request ${first.extensions.requestId}` : '';
      const detail = `${message} (${code}${request})`;
      if (code === 'UNAUTHENTICATED') throw new CliError(exitForErrorCode(code), `the gateway refused the admin key ${this.keyLabel}: ${detail}; check MODELGATE_ADMIN_KEY`);
      if (code === 'FORBIDDEN') throw new CliError(exitForErrorCode(code), `the gateway refused this for the admin key ${this.keyLabel}: ${detail}`);
      if (code === 'GRAPHQL_VALIDATION_FAILED') throw new CliError(exitForErrorCode(code), `the gateway at ${this.target} does not offer this operation (an older version?): ${detail}`);
      throw new CliError(exitForErrorCode(code), code === 'INTERNAL' ? `the gateway failed: ${detail}` : detail);
    }
    if (!response.ok || !body.data || typeof body.data !== 'object') {
      throw new UnreachableError(
        `${this.target} answered HTTP ${response.status} without a GraphQL result: is it a modelgate gateway? (--url / MODELGATE_URL is the base URL, e.g. http://host:4000)`,
      );
    }
    return body.data as T;
  }

  /** The gateway's base URL (the /graphql endpoint without it), for the OIP REST routes. */
  private get baseUrl(): string {
    return this.endpoint.replace(/\/graphql\/?$/, '');
  }

  /**
   * One OIP REST call (the model repository routes): JSON answers; an OIP
   * error body (`{error, code}`) becomes the CLI error of its code, as a
   * GraphQL error does.
   */
  private async rest<T>(method: 'POST' | 'PUT', route: string, body: string | Uint8Array, contentType: string): Promise<T> {
    let response: Response;
    let text: string;
    try {
      response = await fetch(`${this.baseUrl}${route}`, {
        method,
        headers: { 'content-type': contentType, authorization: `Bearer ${this.adminKey}`, 'user-agent': `modelgate-cli/${VERSION}` },
        body,
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      throw this.unreachable(error);
    }
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = null;
    }
    const failure = parsed as { error?: string; code?: string; requestId?: string } | null;
    if (!response.ok) {
      if (typeof failure?.code !== 'string') throw new UnreachableError(`${this.target} answered HTTP ${response.status} to ${method} ${route} without an OIP error: is it a modelgate gateway?`);
      const detail = `${failure.error ?? 'no message'} (${failure.code}${failure.requestId ? `, request ${failure.requestId}` : ''})`;
      if (failure.code === 'UNAUTHENTICATED') throw new CliError(exitForErrorCode(failure.code), `the gateway refused the key ${this.keyLabel}: ${detail}; check MODELGATE_ADMIN_KEY`);
      throw new CliError(exitForErrorCode(failure.code), detail);
    }
    return parsed as T;
  }

  /** Every model the key may see, each with its versions' states. */
  async listModels(): Promise<ModelRecord[]> {
    const data = await this.call<{ models: ModelRecord[] }>('{ models { name version status versions { version status reason } } }');
    return data.models;
  }

  /** Triton's load with override: config (modelgate's config.json or Triton's JSON form) and every version's weights, base64, in one call. */
  async publishModel(name: string, config: string, files: Map<number, Uint8Array>): Promise<void> {
    const parameters: Record<string, string> = { config };
    for (const [version, bytes] of files) parameters[`file:${version}/model.onnx`] = Buffer.from(bytes).toString('base64');
    await this.rest('POST', `/v2/repository/models/${encodeURIComponent(name)}/load`, JSON.stringify({ parameters }), 'application/json');
  }

  /** The streamed upload of one version's weights (raw bytes; the config: the model's own, else derived from the graph). */
  async uploadModelVersion(name: string, version: number, bytes: Uint8Array): Promise<{ name: string; version: string; digest: string; size_bytes: number }> {
    return this.rest('PUT', `/v2/repository/models/${encodeURIComponent(name)}/versions/${version}/model.onnx`, bytes, 'application/octet-stream');
  }

  async setModelTraffic(name: string, weights: { version: string; percent: number }[]): Promise<{ version: string; trafficPercent: number | null; desiredState: string }[]> {
    const data = await this.call<{ setModelTraffic: { version: string; trafficPercent: number | null; desiredState: string }[] }>(
      'mutation ($model: String!, $weights: [VersionWeightInput!]!) { setModelTraffic(model: $model, weights: $weights) { version trafficPercent desiredState } }',
      { model: name, weights },
    );
    return data.setModelTraffic;
  }

  async setModelShadow(name: string, version: string, percent: number): Promise<ShadowVersionRecord[]> {
    const data = await this.call<{ setModelShadow: ShadowVersionRecord[] }>(
      `mutation ($model: String!, $version: String!, $percent: Int!) { setModelShadow(model: $model, version: $version, percent: $percent) { ${SHADOW_FIELDS} } }`,
      { model: name, version, percent },
    );
    return data.setModelShadow;
  }

  async rollbackModel(name: string): Promise<ShadowVersionRecord[]> {
    const data = await this.call<{ rollbackModel: ShadowVersionRecord[] }>(`mutation ($model: String!) { rollbackModel(model: $model) { ${SHADOW_FIELDS} } }`, { model: name });
    return data.rollbackModel;
  }

  async unloadModel(name: string, version: string | null): Promise<ModelRecord> {
    const data = await this.call<{ unloadModel: ModelRecord }>('mutation ($name: String!, $version: String) { unloadModel(name: $name, version: $version) { name version status versions { version status reason } } }', { name, version });
    return data.unloadModel;
  }

  private unreachable(error: unknown): UnreachableError {
    const e = error as { name?: string; cause?: { code?: string; message?: string }; message?: string };
    if (e.name === 'TimeoutError' || e.name === 'AbortError') {
      return new UnreachableError(`no answer from ${this.target} within ${this.timeoutMs / 1000} s; raise --timeout or check the gateway`);
    }
    const reason = e.cause?.code ?? e.cause?.message ?? e.message ?? String(error);
    return new UnreachableError(`cannot reach ${this.target} (${reason}); check --url / MODELGATE_URL and that the gateway runs`);
  }

  private async pages<T>(query: string, field: string, variables: Record<string, unknown>): Promise<T[]> {
    const rows: T[] = [];
    for (let after: string | null = null; ; ) {
      const data: Record<string, Connection<T> | undefined> = await this.call<Record<string, Connection<T>>>(query, { ...variables, after });
      const page: Connection<T> | undefined = data[field];
      if (!page) return rows;
      rows.push(...page.edges.map((e) => e.node));
      if (!page.pageInfo.hasNextPage || !page.pageInfo.endCursor) return rows;
      after = page.pageInfo.endCursor;
    }
  }

  async createTenant(input: CreateTenantInput): Promise<TenantRecord> {
    const data = await this.call<{ createTenant: TenantRecord }>(`mutation ($input: CreateTenantInput!) { createTenant(input: $input) { ${TENANT} } }`, { input });
    return data.createTenant;
  }

  listTenants(): Promise<TenantRecord[]> {
    return this.pages<TenantRecord>(`query ($after: String) { tenants(first: 100, after: $after) { edges { node { ${TENANT} } } pageInfo { hasNextPage endCursor } } }`, 'tenants', {});
  }

  async updateTenant(ref: string, input: UpdateTenantInput): Promise<TenantRecord> {
    const data = await this.call<{ updateTenant: TenantRecord }>(`mutation ($id: ID!, $input: UpdateTenantInput!) { updateTenant(id: $id, input: $input) { ${TENANT} } }`, {
      id: ref,
      input,
    });
    return data.updateTenant;
  }

  async createApiKey(input: CreateApiKeyInput): Promise<CreatedKeyRecord> {
    const { environment, ...rest } = input;
    // The admin API issues keys of the gateway's own KEY_ENVIRONMENT.
    if (environment) throw new UsageError('--env works only against a database: over the admin API the gateway issues keys of its own KEY_ENVIRONMENT');
    const data = await this.call<{ createApiKey: { plaintext: string; apiKey: RawKey } }>(
      `mutation ($input: CreateApiKeyInput!) { createApiKey(input: $input) { plaintext apiKey { ${KEY} } } }`,
      { input: withScopeEnums(rest) },
    );
    return { plaintext: data.createApiKey.plaintext, apiKey: keyRecord(data.createApiKey.apiKey) };
  }

  async listApiKeys(filter: ListApiKeysFilter): Promise<KeyRecord[]> {
    const rows = await this.pages<RawKey>(
      `query ($after: String, $tenant: String, $revoked: Boolean) { apiKeys(first: 100, after: $after, tenant: $tenant, revoked: $revoked) { edges { node { ${KEY} } } pageInfo { hasNextPage endCursor } } }`,
      'apiKeys',
      { tenant: filter.tenant ?? null, revoked: filter.revoked ?? null },
    );
    return rows.map(keyRecord);
  }

  async getApiKey(ref: string): Promise<KeyRecord> {
    const data = await this.call<{ apiKey: RawKey }>(`query ($id: ID!) { apiKey(id: $id) { ${KEY} } }`, { id: ref });
    return keyRecord(data.apiKey);
  }

  async updateApiKey(ref: string, input: UpdateApiKeyInput): Promise<KeyRecord> {
    const data = await this.call<{ updateApiKey: RawKey }>(`mutation ($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { ${KEY} } }`, {
      id: ref,
      input: withScopeEnums(input),
    });
    return keyRecord(data.updateApiKey);
  }

  async revokeApiKey(ref: string): Promise<KeyRecord> {
    const data = await this.call<{ revokeApiKey: RawKey }>(`mutation ($id: ID!) { revokeApiKey(id: $id) { ${KEY} } }`, { id: ref });
    return keyRecord(data.revokeApiKey);
  }

  async rotateApiKey(ref: string, graceSeconds: number): Promise<RotatedKeyRecord> {
    const data = await this.call<{ rotateApiKey: { plaintext: string; apiKey: RawKey; previous: RawKey } }>(
      `mutation ($id: ID!, $grace: Int!) { rotateApiKey(id: $id, gracePeriodSeconds: $grace) { plaintext apiKey { ${KEY} } previous { ${KEY} } } }`,
      { id: ref, grace: graceSeconds },
    );
    return { plaintext: data.rotateApiKey.plaintext, apiKey: keyRecord(data.rotateApiKey.apiKey), previous: keyRecord(data.rotateApiKey.previous) };
  }

  /** Gateway only (see `webhooks`): endpoint secrets are encrypted with the gateways' key. */
  async createWebhook(input: { tenant: string; url: string; events: string[] | null; thresholds: number[] | null }): Promise<{ webhook: WebhookRecord; secret: string }> {
    const data = await this.call<{ createWebhook: { webhook: WebhookRecord; secret: string } }>(
      `mutation ($input: CreateWebhookInput!) { createWebhook(input: $input) { secret webhook { ${WEBHOOK} } } }`,
      { input },
    );
    return data.createWebhook;
  }

  async listWebhooks(tenant: string | null): Promise<WebhookRecord[]> {
    const data = await this.call<{ webhooks: WebhookRecord[] }>(`query ($tenant: String) { webhooks(tenant: $tenant) { ${WEBHOOK} } }`, { tenant });
    return data.webhooks;
  }

  async deleteWebhook(id: string): Promise<boolean> {
    const data = await this.call<{ deleteWebhook: boolean }>('mutation ($id: ID!) { deleteWebhook(id: $id) }', { id });
    return data.deleteWebhook;
  }

  async rotateWebhookSecret(id: string): Promise<{ webhook: WebhookRecord; secret: string }> {
    const data = await this.call<{ rotateWebhookSecret: { webhook: WebhookRecord; secret: string } }>(`mutation ($id: ID!) { rotateWebhookSecret(id: $id) { secret webhook { ${WEBHOOK} } } }`, { id });
    return data.rotateWebhookSecret;
  }

  /** The newest `first` deliveries (at most 100), optionally of one webhook or in one state. */
  async webhookDeliveries(filter: { tenant: string | null; webhookId: string | null; status: string | null; first: number }): Promise<WebhookDeliveryRecord[]> {
    const data = await this.call<{ webhookDeliveries: { edges: { node: WebhookDeliveryRecord }[] } }>(
      `query ($tenant: String, $webhookId: ID, $status: WebhookDeliveryStatus, $first: Int) { webhookDeliveries(tenant: $tenant, webhookId: $webhookId, status: $status, first: $first) { edges { node { ${DELIVERY} } } } }`,
      filter,
    );
    return data.webhookDeliveries.edges.map((e) => e.node);
  }

  async redeliverWebhookEvent(deliveryId: string): Promise<WebhookDeliveryRecord> {
    const data = await this.call<{ redeliverWebhookEvent: WebhookDeliveryRecord }>(`mutation ($id: ID!) { redeliverWebhookEvent(deliveryId: $id) { ${DELIVERY} } }`, { id: deliveryId });
    return data.redeliverWebhookEvent;
  }

  /** Gateway only (see `credits grant`): the balance is in the gateways' Redis. */
  async grantCredits(input: { tenant: string; apiKey: string | null; amount: number; reason: string | null }): Promise<CreditGrantRecord> {
    const data = await this.call<{ grantCredits: CreditGrantRecord }>(
      'mutation ($input: GrantCreditsInput!) { grantCredits(input: $input) { id tenantId apiKeyId amount balance } }',
      { input },
    );
    return data.grantCredits;
  }

  /** Gateway only (see `usage`): totals over [from, to), grouped. */
  async usageSummary(args: { from: string; to: string; groupBy: string[]; tenantId: string | null }): Promise<UsageSummaryRecord[]> {
    const data = await this.call<{ usageSummary: UsageSummaryRecord[] }>(
      `query ($from: DateTimeISO!, $to: DateTimeISO!, $groupBy: [UsageGroupBy!]!, $tenantId: ID) { usageSummary(from: $from, to: $to, groupBy: $groupBy, tenantId: $tenantId) { ${SUMMARY} } }`,
      args,
    );
    return data.usageSummary;
  }

  /** Records newest first, page by page, until `limit` (null: all of them). */
  async usageRecords(filter: UsageRecordQuery, limit: number | null): Promise<UsageRecordRecord[]> {
    const rows: UsageRecordRecord[] = [];
    for (let after: string | null = null; limit === null || rows.length < limit; ) {
      const first = limit === null ? 1000 : Math.min(1000, limit - rows.length);
      const data: { usageRecords: Connection<UsageRecordRecord> } = await this.call(
        `query ($filter: UsageRecordFilter, $first: Int!, $after: String) { usageRecords(filter: $filter, first: $first, after: $after) { edges { node { ${RECORD} } } pageInfo { hasNextPage endCursor } } }`,
        { filter, first, after },
      );
      rows.push(...data.usageRecords.edges.map((e) => e.node));
      if (!data.usageRecords.pageInfo.hasNextPage || !data.usageRecords.pageInfo.endCursor) break;
      after = data.usageRecords.pageInfo.endCursor;
    }
    return rows;
  }

  async invoice(tenant: string, month: string): Promise<InvoiceRecord> {
    const data = await this.call<{ invoice: InvoiceRecord }>(`query ($tenant: String!, $month: String!) { invoice(tenant: $tenant, month: $month) { ${INVOICE} } }`, { tenant, month });
    return data.invoice;
  }

  async prices(filter: { model: string | null; tenant: string | null }): Promise<PriceRecord[]> {
    const data = await this.call<{ prices: PriceRecord[] }>(`query ($model: String, $tenant: String) { prices(model: $model, tenant: $tenant) { ${PRICE} } }`, filter);
    return data.prices;
  }

  async setPrice(input: { model: string; tenant: string | null; currency: string; unitPriceMicros: string; effectiveFrom: string }): Promise<PriceRecord> {
    const data = await this.call<{ setPrice: PriceRecord }>(`mutation ($input: SetPriceInput!) { setPrice(input: $input) { ${PRICE} } }`, { input });
    return data.setPrice;
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A model version's serving and shadow state as `models shadow` / `models rollback` print it. */
export interface ShadowVersionRecord {
  version: string;
  desiredState: string;
  replicaStatus: string;
  trafficPercent: number | null;
  shadowPercent: number | null;
  shadowRuns: number;
  shadowTop1Agreement: number | null;
  shadowMaxAbsDifference: number | null;
}

const SHADOW_FIELDS = 'version desiredState replicaStatus trafficPercent shadowPercent shadowRuns shadowTop1Agreement shadowMaxAbsDifference';
