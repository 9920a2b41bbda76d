/** Durations for the CLI: "90s", "15m", "1h", "30d", "2w". */
const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

export class DurationError extends Error {}

/** Whole seconds; throws DurationError with a message naming the bad value. */
export function parseDuration(text: string, { allowZero = false } = {}): number {
  const match = /^\s*(\d+)\s*([smhdw])\s*$/.exec(text);
  const amount = match ? Number(match[1]) : NaN;
  const unit = match ? UNITS[match[2] ?? ''] : undefined;
  if (unit === undefined || !Number.isSafeInteger(amount) || (amount === 0 && !allowZero)) {
    throw new DurationError(`Invalid duration "${text}": use a whole number followed by s, m, h, d or w (for example 30d or 1h)`);
  }
  const seconds = amount * unit;
  if (seconds > 100 * 365 * 86_400) throw new DurationError(`Invalid duration "${text}": more than 100 years`);
  return seconds;
}
