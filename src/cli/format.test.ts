/** Money and ranges as the CLI reads and prints them. */
import { amountAsMicros, csv, microsAsAmount } from './format';
import { monthOption, rangeOf } from './finance-commands';
import { UsageError } from './exit';

describe('money on the command line', () => {
  it('turns decimal amounts into exact micro-units and back', () => {
    expect(amountAsMicros('0.0025')).toBe('2500');
    expect(amountAsMicros('12')).toBe('12000000');
    expect(amountAsMicros('0.000001')).toBe('1');
    expect(amountAsMicros('1.2345678')).toBeNull();
    expect(amountAsMicros('-1')).toBeNull();
    expect(microsAsAmount('1')).toBe('0.000001');
    expect(microsAsAmount('1500000')).toBe('1.500000');
    expect(microsAsAmount('-2500')).toBe('-0.002500');
  });

  it('quotes CSV fields that need it', () => {
    expect(csv([{ a: 'x,y', b: 'say "hi"' }])).toBe('a,b\n"x,y","say ""hi"""');
  });
});

describe('usage ranges', () => {
  const now = new Date('2026-12-06T02:45:00Z');

  it('defaults to the current calendar month, and takes months, last-durations and from/to', () => {
    expect(rangeOf({}, now)).toEqual({ from: new Date('2026-12-01T00:00:00Z'), to: new Date('2027-01-01T00:00:00Z') });
    expect(rangeOf({ month: 'previous' }, now)).toEqual({ from: new Date('2026-11-01T00:00:00Z'), to: new Date('2026-12-01T00:00:00Z') });
    expect(rangeOf({ month: '2026-02' }, now)).toEqual({ from: new Date('2026-02-01T00:00:00Z'), to: new Date('2026-03-01T00:00:00Z') });
    expect(rangeOf({ last: '24h' }, now)).toEqual({ from: new Date('2026-12-05T02:45:00Z'), to: now });
    expect(rangeOf({ from: '2026-11-15' }, now)).toEqual({ from: new Date('2026-11-15T00:00:00Z'), to: now });
    expect(monthOption('current', new Date('2027-01-01T00:00:00Z'))).toBe('2027-01');
  });

  it('refuses two ranges, a month that is none, and an empty range', () => {
    expect(() => rangeOf({ month: 'current', last: '7d' }, now)).toThrow(UsageError);
    expect(() => rangeOf({ month: '2026-13' }, now)).toThrow(/YYYY-MM/);
    expect(() => rangeOf({ from: '2026-12-02', to: '2026-12-01' }, now)).toThrow(/after --from/);
    expect(() => rangeOf({ to: '2026-12-01' }, now)).toThrow(/--to needs --from/);
  });
});
