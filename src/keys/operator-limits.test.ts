import { NO_LIMITS, operatorLimitsJson, readOperatorLimits, tightenOnly, type KeyLimitValues } from './operator-limits';

const admin: KeyLimitValues = {
  requestsPerMinute: 100,
  computeUnitsPerMinute: 1000,
  monthlyComputeUnitBudget: 5000,
  monthlyBudget: { amountMicros: '5000000', currency: 'USD' },
  credits: { refill: { amount: 100, interval: 'DAILY' } },
};
const defaults = { requestsPerMinute: 600, computeUnitsPerMinute: 6000 };
const forbidden = (field: string) => expect.objectContaining({ code: 'FORBIDDEN', extensions: expect.objectContaining({ field }) });

describe('readOperatorLimits', () => {
  it('reads what the migration and operatorLimitsJson write, top-ups-only credits included', () => {
    expect(readOperatorLimits(operatorLimitsJson(admin), NO_LIMITS)).toEqual(admin);
    const migrated = { credits: { refillAmount: null, refillInterval: null }, monthlyBudget: null, requestsPerMinute: null, computeUnitsPerMinute: null, monthlyComputeUnitBudget: null };
    expect(readOperatorLimits(migrated, NO_LIMITS)).toEqual({ ...NO_LIMITS, credits: { refill: null } });
    expect(readOperatorLimits(null, admin)).toEqual(NO_LIMITS);
  });
  it('reads a value it cannot parse as the key as it is now, so nothing can be loosened', () => {
    expect(readOperatorLimits({ requestsPerMinute: 'lots' }, admin)).toEqual(admin);
    expect(readOperatorLimits([1, 2], admin)).toEqual(admin);
  });
});

describe('tightenOnly', () => {
  it('refuses every looser value with FORBIDDEN naming its field', () => {
    expect(() => tightenOnly({ requestsPerMinute: 101 }, admin, defaults)).toThrow(forbidden('requestsPerMinute'));
    expect(() => tightenOnly({ computeUnitsPerMinute: 1001 }, admin, defaults)).toThrow(forbidden('computeUnitsPerMinute'));
    expect(() => tightenOnly({ monthlyComputeUnitBudget: 5001 }, admin, defaults)).toThrow(forbidden('monthlyComputeUnitBudget'));
    expect(() => tightenOnly({ monthlyBudget: { amountMicros: '5000001', currency: 'USD' } }, admin, defaults)).toThrow(forbidden('monthlyBudget'));
    expect(() => tightenOnly({ monthlyBudget: { amountMicros: '1', currency: 'EUR' } }, admin, defaults)).toThrow(forbidden('monthlyBudget'));
    expect(() => tightenOnly({ credits: { refill: { amount: 101, interval: 'DAILY' } } }, admin, defaults)).toThrow(forbidden('credits'));
    expect(() => tightenOnly({ credits: { refill: { amount: 1, interval: 'MONTHLY' } } }, admin, defaults)).toThrow(forbidden('credits'));
    expect(() => tightenOnly({ credits: { refill: null } }, admin, defaults)).toThrow(forbidden('credits'));
    expect(() => tightenOnly({ credits: { refill: { amount: 1, interval: 'DAILY' } } }, { ...NO_LIMITS, credits: { refill: null } }, defaults)).toThrow(forbidden('credits'));
  });
  it('keeps equal or tighter values, and turns null into the admin value', () => {
    expect(tightenOnly({ requestsPerMinute: 100, monthlyBudget: { amountMicros: '1', currency: 'USD' }, credits: { refill: { amount: 0, interval: 'DAILY' } } }, admin, defaults)).toEqual({
      requestsPerMinute: 100,
      monthlyBudget: { amountMicros: '1', currency: 'USD' },
      credits: { refill: { amount: 0, interval: 'DAILY' } },
    });
    expect(tightenOnly({ requestsPerMinute: null, computeUnitsPerMinute: null, monthlyComputeUnitBudget: null, monthlyBudget: null, credits: null }, admin, defaults)).toEqual(admin);
  });
  it('caps a rate no admin set at the gateway default, and refuses any when the default is unknown', () => {
    expect(tightenOnly({ requestsPerMinute: 600 }, NO_LIMITS, defaults)).toEqual({ requestsPerMinute: 600 });
    expect(() => tightenOnly({ requestsPerMinute: 601 }, NO_LIMITS, defaults)).toThrow(forbidden('requestsPerMinute'));
    expect(() => tightenOnly({ computeUnitsPerMinute: 1 }, NO_LIMITS, null)).toThrow(forbidden('computeUnitsPerMinute'));
    expect(tightenOnly({ requestsPerMinute: null }, NO_LIMITS, null)).toEqual({ requestsPerMinute: null });
  });
  it('lets budgets and credits no admin set be anything (a sub-limit of that key only)', () => {
    const own = { monthlyComputeUnitBudget: 2_000_000_000, monthlyBudget: { amountMicros: '999', currency: 'EUR' }, credits: { refill: { amount: 1_000_000_000, interval: 'MONTHLY' as const } } };
    expect(tightenOnly(own, NO_LIMITS, defaults)).toEqual(own);
  });
});
