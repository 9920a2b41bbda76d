/**
 * Who may loosen a key's limits. An admin sets a key's limits (per-minute
 * rates, monthly unit and money budgets, credits); the values it set are kept
 * beside the key's effective limits (ApiKey.operatorLimits). A keys:manage
 * key may then only tighten: each value it writes must be no looser than the
 * admin's, and null ("back to the default") restores the admin's value. Where
 * no admin set a budget or credits, a keys:manage key may set its own (a
 * sub-limit: it only ever refuses more of that key's requests); where no admin
 * set a per-minute rate, the gateway default is the ceiling. Checked on write,
 * so the request path reads one set of columns as before.
 */
import { z } from 'zod';
import type { Prisma } from '../db/generated/client';
import { ForbiddenError } from '../errors';

export type RefillInterval = 'DAILY' | 'MONTHLY';

/** The limit fields a key's create and update take; each normalised as it is stored. */
export interface KeyLimitValues {
  requestsPerMinute: number | null;
  computeUnitsPerMinute: number | null;
  monthlyComputeUnitBudget: number | null;
  monthlyBudget: { amountMicros: string; currency: string } | null;
  /** null: no credit balance; refill null: top-ups only. */
  credits: { refill: { amount: number; interval: RefillInterval } | null } | null;
}

export type LimitField = keyof KeyLimitValues;

/** The per-minute ceilings where no admin set a key's rate: the gateway defaults (null: unknown, then only an admin sets a rate). */
export interface PerMinuteDefaults {
  requestsPerMinute: number;
  computeUnitsPerMinute: number;
}

/** No admin values: gateway defaults for rates, no budgets, no credits. */
export const NO_LIMITS: KeyLimitValues = { requestsPerMinute: null, computeUnitsPerMinute: null, monthlyComputeUnitBudget: null, monthlyBudget: null, credits: null };

const count = z.number().int().nullable().optional();
const stored = z.object({
  requestsPerMinute: count,
  computeUnitsPerMinute: count,
  monthlyComputeUnitBudget: count,
  monthlyBudget: z.object({ amountMicros: z.string(), currency: z.string() }).nullable().optional(),
  credits: z.object({ refillAmount: z.number().int().nullable(), refillInterval: z.enum(['DAILY', 'MONTHLY']).nullable() }).nullable().optional(),
});

/**
 * The admin's values as stored. One that does not parse (edited by hand) is
 * read as the migration reads an old key: the key's `current` limits count as
 * the admin's, so nothing can be loosened.
 */
export function readOperatorLimits(value: unknown, current: KeyLimitValues): KeyLimitValues {
  if (value === null || value === undefined) return NO_LIMITS;
  const parsed = stored.safeParse(value);
  if (!parsed.success) return current;
  const s = parsed.data;
  return {
    requestsPerMinute: s.requestsPerMinute ?? null,
    computeUnitsPerMinute: s.computeUnitsPerMinute ?? null,
    monthlyComputeUnitBudget: s.monthlyComputeUnitBudget ?? null,
    monthlyBudget: s.monthlyBudget ?? null,
    credits: s.credits ? { refill: s.credits.refillAmount !== null && s.credits.refillInterval !== null ? { amount: s.credits.refillAmount, interval: s.credits.refillInterval } : null } : null,
  };
}

/** The JSON an admin's values are stored as (the same shape the migration wrote). */
export function operatorLimitsJson(values: KeyLimitValues): Prisma.InputJsonObject {
  return {
    requestsPerMinute: values.requestsPerMinute,
    computeUnitsPerMinute: values.computeUnitsPerMinute,
    monthlyComputeUnitBudget: values.monthlyComputeUnitBudget,
    monthlyBudget: values.monthlyBudget,
    credits: values.credits ? { refillAmount: values.credits.refill?.amount ?? null, refillInterval: values.credits.refill?.interval ?? null } : null,
  };
}

/**
 * What a keys:manage key's write becomes: each field it gives checked
 * against the admin's value (FORBIDDEN naming the field when looser), null
 * replaced by the admin's value. Fields it does not give are left out.
 */
export function tightenOnly(wanted: Partial<KeyLimitValues>, operator: KeyLimitValues, defaults: PerMinuteDefaults | null): Partial<KeyLimitValues> {
  const out: Partial<KeyLimitValues> = {};
  for (const field of ['requestsPerMinute', 'computeUnitsPerMinute'] as const) {
    const value = wanted[field];
    if (value === undefined) continue;
    if (value === null) {
      out[field] = operator[field];
      continue;
    }
    const set = operator[field];
    const ceiling = set ?? defaults?.[field] ?? null;
    if (ceiling === null) throw refused(field, `Only an admin may set ${field} on this key`, null);
    if (value > ceiling) {
      const what = set !== null ? 'the limit an admin set for this key' : 'the gateway default; an admin may set a higher one';
      throw refused(field, `Only an admin may set ${field} above ${ceiling} (${what})`, ceiling);
    }
    out[field] = value;
  }
  if (wanted.monthlyComputeUnitBudget !== undefined) {
    const value = wanted.monthlyComputeUnitBudget;
    const ceiling = operator.monthlyComputeUnitBudget;
    if (value !== null && ceiling !== null && value > ceiling) {
      throw refused('monthlyComputeUnitBudget', `Only an admin may raise monthlyComputeUnitBudget above ${ceiling} (the budget an admin set for this key)`, ceiling);
    }
    out.monthlyComputeUnitBudget = value ?? ceiling;
  }
  if (wanted.monthlyBudget !== undefined) {
    const value = wanted.monthlyBudget;
    const ceiling = operator.monthlyBudget;
    if (value !== null && ceiling !== null && (value.currency !== ceiling.currency || BigInt(value.amountMicros) > BigInt(ceiling.amountMicros))) {
      throw refused('monthlyBudget', `Only an admin may raise monthlyBudget above ${ceiling.amountMicros} ${ceiling.currency} micro-units or change its currency (the budget an admin set for this key)`, ceiling);
    }
    out.monthlyBudget = value ?? ceiling;
  }
  if (wanted.credits !== undefined) {
    const value = wanted.credits;
    const ceiling = operator.credits;
    // Only a lower refill at the same interval is surely tighter: top-ups only, or another interval,
    // counts grants over another span, which can leave more to spend than the admin's refill.
    const admin = ceiling?.refill;
    const mine = value?.refill;
    if (value !== null && ceiling !== null && (!admin || !mine || mine.interval !== admin.interval || mine.amount > admin.amount)) {
      const set = admin ? `a refill of ${admin.amount} compute units ${admin.interval}` : 'credits without refill (top-ups only)';
      throw refused('credits', `Only an admin may raise or change credits: an admin set ${set} for this key; a lower refill amount at the same interval is allowed`, ceiling);
    }
    out.credits = value ?? ceiling;
  }
  return out;
}

function refused(field: LimitField, message: string, operatorLimit: unknown): ForbiddenError {
  return new ForbiddenError(`${message}. A keys:manage key may only tighten a key's limits.`, { field, ...(operatorLimit === null ? {} : { operatorLimit }) });
}
