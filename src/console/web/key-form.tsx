/**
 * Every setting a key has, in one form for create and edit: scopes, models,
 * expiry, per-minute limits, compute and money budgets, credits with refill,
 * metadata. An edit sends only what changed (absent fields stay as they are
 * on the gateway; an emptied field is sent as null, which clears it).
 */
import type { Scope } from './api';

export interface MoneyBudget { currency: string; amountMicros: string }
export interface Credits { refillAmount: number | null; refillInterval: 'DAILY' | 'MONTHLY' | null; since: string }
export interface Effective { value: number | null; source: string }

export interface ApiKey {
  id: string; name: string; prefix: string; tenantId: string; scopes: Scope[]; status: string;
  createdAt: string; createdBy: string | null; expiresAt: string | null; lastUsedAt: string | null; revokedAt: string | null; graceUntil: string | null; allowedModels: string[];
  requestsPerMinute: number | null; computeUnitsPerMinute: number | null; monthlyComputeUnitBudget: number | null;
  monthlyBudget: MoneyBudget | null; credits: Credits | null; metadata: Record<string, string> | null;
  effectiveLimits: { requestsPerMinute: Effective; computeUnitsPerMinute: Effective };
  /** Asked for on the key page only (a limiter read per key); null: no credits, or not readable by this session. */
  creditBalance?: number | null;
}

export const KEY_FIELDS = `id name prefix tenantId scopes status createdAt createdBy expiresAt lastUsedAt revokedAt graceUntil allowedModels
  requestsPerMinute computeUnitsPerMinute monthlyComputeUnitBudget monthlyBudget { currency amountMicros } credits { refillAmount refillInterval since } metadata
  effectiveLimits { requestsPerMinute { value source } computeUnitsPerMinute { value source } }`;

export const SCOPES: { value: Scope; label: string }[] = [
  { value: 'INFERENCE', label: 'inference' },
  { value: 'USAGE_READ', label: 'usage:read' },
  { value: 'KEYS_MANAGE', label: 'keys:manage' },
  { value: 'MODELS_MANAGE', label: 'models:manage' },
  { value: 'ADMIN', label: 'admin' },
];

export const scopeLabel = (s: Scope) => SCOPES.find((x) => x.value === s)?.label ?? s.toLowerCase();

const MILLION = BigInt(1_000_000);

/** "5.25" → "5250000", exactly (no float); null when it is not a decimal with at most 6 places. */
export function toMicros(amount: string): string | null {
  const m = /^(\d+)(?:\.(\d{0,6}))?$/.exec(amount.trim());
  if (!m) return null;
  return (BigInt(m[1] ?? '0') * MILLION + BigInt((m[2] ?? '').padEnd(6, '0'))).toString();
}

/** "5250000" → "5.25" (the shortest exact decimal). */
export function fromMicros(micros: string): string {
  const v = BigInt(micros);
  const frac = (v % MILLION).toString().padStart(6, '0').replace(/0+$/, '');
  return frac ? `${v / MILLION}.${frac}` : `${v / MILLION}`;
}

export const moneyText = (b: MoneyBudget | null) => (b ? `${fromMicros(b.amountMicros)} ${b.currency}` : null);
export const creditsText = (c: Credits | null) => (!c ? null : c.refillAmount ? `${c.refillAmount.toLocaleString('en-US')} units ${c.refillInterval === 'DAILY' ? 'daily' : 'monthly'}` : 'top-ups only');

/** "owner=ana, team=ml" ⇄ { owner: 'ana', team: 'ml' } */
export function metadataText(m: Record<string, string> | null): string {
  return m ? Object.entries(m).map(([k, v]) => `${k}=${v}`).join(', ') : '';
}

function parseMetadata(text: string): Record<string, string> | null | Error {
  const pairs = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (!pairs.length) return null;
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf('=');
    if (eq < 1) return new Error(`Metadata “${p}” is not name=value.`);
    out[p.slice(0, eq).trim()] = p.slice(eq + 1).trim();
  }
  return out;
}

/** The local datetime-local value for an ISO instant (inputs of that type have no zone). */
function localInput(iso: string | null): string {
  if (!iso) return '';
  const d = new Date(iso);
  return new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

const intOrNull = (v: FormDataEntryValue | null): number | null => (v === null || String(v).trim() === '' ? null : Number(v));

/**
 * Reads the form into an input object. With `before` (an edit): only fields
 * that differ from it. Throws an Error whose message a person can act on.
 */
export function readKeyForm(form: HTMLFormElement, before: ApiKey | null): Record<string, unknown> {
  const f = new FormData(form);
  const next: Record<string, unknown> = {
    name: String(f.get('name') ?? '').trim(),
    scopes: f.getAll('scope') as Scope[],
    allowedModels: String(f.get('models') ?? '').split(',').map((s) => s.trim()).filter(Boolean),
    requestsPerMinute: intOrNull(f.get('rpm')),
    computeUnitsPerMinute: intOrNull(f.get('cpm')),
    monthlyComputeUnitBudget: intOrNull(f.get('monthlyUnits')),
  };
  const expires = String(f.get('expiresAt') ?? '');
  next['expiresAt'] = expires ? new Date(expires).toISOString() : null;
  const amount = String(f.get('budgetAmount') ?? '').trim();
  if (amount) {
    const micros = toMicros(amount);
    if (micros === null) throw new Error('The money budget must be a decimal amount with at most 6 places, e.g. 25 or 4.50.');
    next['monthlyBudget'] = { currency: String(f.get('budgetCurrency') ?? 'USD').trim().toUpperCase(), amountMicros: micros };
  } else next['monthlyBudget'] = null;
  const creditMode = String(f.get('creditMode') ?? 'none');
  if (creditMode === 'none') next['credits'] = null;
  else if (creditMode === 'topup') next['credits'] = {};
  else {
    const refill = intOrNull(f.get('refillAmount'));
    if (refill === null) throw new Error('Give the refill amount (compute units) for the credit balance.');
    next['credits'] = { refillAmount: refill, refillInterval: creditMode };
  }
  const meta = parseMetadata(String(f.get('metadata') ?? ''));
  if (meta instanceof Error) throw meta;
  next['metadata'] = meta;
  if (!before) {
    // Create: absent means the default; metadata is set by a follow-up edit (CreateApiKeyInput has none).
    for (const [k, v] of Object.entries(next)) if (v === null) delete next[k];
    return next;
  }
  const was: Record<string, unknown> = {
    name: before.name, scopes: [...before.scopes].sort(), allowedModels: before.allowedModels, requestsPerMinute: before.requestsPerMinute,
    computeUnitsPerMinute: before.computeUnitsPerMinute, monthlyComputeUnitBudget: before.monthlyComputeUnitBudget,
    expiresAt: before.expiresAt ? localInput(before.expiresAt) : null,
    monthlyBudget: before.monthlyBudget ? { currency: before.monthlyBudget.currency, amountMicros: before.monthlyBudget.amountMicros } : null,
    credits: before.credits ? (before.credits.refillAmount ? { refillAmount: before.credits.refillAmount, refillInterval: before.credits.refillInterval } : {}) : null,
    metadata: before.metadata && Object.keys(before.metadata).length ? before.metadata : null,
  };
  const now: Record<string, unknown> = { ...next, scopes: [...(next['scopes'] as Scope[])].sort(), expiresAt: expires || null };
  const changed: Record<string, unknown> = {};
  // A credits change restarts the current period's balance, so unchanged settings are never re-sent.
  for (const k of Object.keys(next)) if (JSON.stringify(now[k]) !== JSON.stringify(was[k])) changed[k] = next[k];
  return changed;
}

/** Why over 80 lines: one form, every field the API has, each labelled; splitting it would only scatter the labels. */
export function KeyFields(props: { key0: ApiKey | null; isAdmin: boolean; idPrefix: string }) {
  const k = props.key0;
  const p = props.idPrefix;
  const creditMode = !k?.credits ? 'none' : k.credits.refillAmount ? (k.credits.refillInterval ?? 'MONTHLY') : 'topup';
  return (
    <>
      <label>Name <input name="name" required maxLength={100} defaultValue={k?.name ?? ''} data-testid={`${p}-name`} /></label>
      <fieldset>
        <legend>Scopes</legend>
        {SCOPES.filter((s) => props.isAdmin || s.value !== 'ADMIN').map((s) => (
          <label class="inline"><input type="checkbox" name="scope" value={s.value} defaultChecked={k?.scopes.includes(s.value) ?? false} /> {s.label}</label>
        ))}
      </fieldset>
      <label>Allowed models (comma-separated, empty: all) <input name="models" defaultValue={k?.allowedModels.join(', ') ?? ''} /></label>
      <label>Expires at (your local time, empty: never) <input name="expiresAt" type="datetime-local" defaultValue={localInput(k?.expiresAt ?? null)} /></label>
      <fieldset>
        <legend>Rate limits and budgets (empty: the tenant's or gateway default)</legend>
        <label>Requests per minute <input name="rpm" type="number" min="1" step="1" defaultValue={k?.requestsPerMinute?.toString() ?? ''} data-testid={`${p}-rpm`} /></label>
        <label>Compute units per minute <input name="cpm" type="number" min="1" step="1" defaultValue={k?.computeUnitsPerMinute?.toString() ?? ''} /></label>
        <label>Compute units per month <input name="monthlyUnits" type="number" min="0" step="1" defaultValue={k?.monthlyComputeUnitBudget?.toString() ?? ''} /></label>
        <label>Money budget per month <input name="budgetAmount" inputMode="decimal" pattern="\d+(\.\d{1,6})?" defaultValue={k?.monthlyBudget ? fromMicros(k.monthlyBudget.amountMicros) : ''} /></label>
        <label>Currency (ISO 4217) <input name="budgetCurrency" maxLength={3} size={4} defaultValue={k?.monthlyBudget?.currency ?? 'USD'} /></label>
      </fieldset>
      <fieldset>
        <legend>Credits (a balance in compute units that every request draws on)</legend>
        <label>Credit balance
          {/* `selected` on the option: a select has no defaultValue property, so that showed "none" for a key with credits, and saving any other change cleared its balance. */}
          <select name="creditMode">
            <option value="none" selected={creditMode === 'none'}>none</option>
            <option value="topup" selected={creditMode === 'topup'}>top-ups only (grant credits)</option>
            <option value="MONTHLY" selected={creditMode === 'MONTHLY'}>refilled monthly</option>
            <option value="DAILY" selected={creditMode === 'DAILY'}>refilled daily</option>
          </select>
        </label>
        <label>Refill amount (units) <input name="refillAmount" type="number" min="0" step="1" defaultValue={k?.credits?.refillAmount?.toString() ?? ''} /></label>
      </fieldset>
      <label>Metadata (name=value, comma-separated) <input name="metadata" defaultValue={metadataText(k?.metadata ?? null)} placeholder="owner=ana, team=ml" /></label>
    </>
  );
}
