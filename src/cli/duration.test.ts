import { DurationError, parseDuration } from './duration';

describe('parseDuration', () => {
  it('reads seconds, minutes, hours, days and weeks', () => {
    expect(parseDuration('90s')).toBe(90);
    expect(parseDuration('15m')).toBe(900);
    expect(parseDuration('1h')).toBe(3600);
    expect(parseDuration('30d')).toBe(2_592_000);
    expect(parseDuration('2w')).toBe(1_209_600);
    expect(parseDuration('0s', { allowZero: true })).toBe(0);
  });

  it('refuses anything else with a message naming the value', () => {
    for (const bad of ['30', 'd', '1.5h', '-1h', '1y', '0d', '', '1h30m', '999999999999w']) {
      expect(() => parseDuration(bad)).toThrow(DurationError);
    }
    expect(() => parseDuration('soon')).toThrow(/Invalid duration "soon"/);
  });
});
