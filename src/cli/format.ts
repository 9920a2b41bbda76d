/** Output helpers shared by the command modules: tables, CSV, money and limit values as people read them. */

export const JSON_HELP = 'print one JSON document on stdout instead of human output';

export function table(rows: Record<string, string>[]): string {
  if (rows.length === 0) return '(none)';
  const columns = Object.keys(rows[0] ?? {});
  const width = (c: string) => Math.max(c.length, ...rows.map((r) => (r[c] ?? '').length));
  const line = (r: Record<string, string>) => columns.map((c) => (r[c] ?? '').padEnd(width(c))).join('  ').trimEnd();
  return [line(Object.fromEntries(columns.map((c) => [c, c.toUpperCase()]))), ...rows.map(line)].join('\n');
}

/** RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled. */
function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** Rows as CSV with a header line (the keys of the first row); nothing but the header when there are none. */
export function csv(rows: Record<string, string>[], header: string[] = Object.keys(rows[0] ?? {})): string {
  return [header.map(csvField).join(','), ...rows.map((r) => header.map((c) => csvField(r[c] ?? '')).join(','))].join('\n');
}

/** Integer micro-units (a decimal string) as a decimal amount with 6 places: "1234567" → "1.234567". */
export function microsAsAmount(micros: string): string {
  const negative = micros.startsWith('-');
  const digits = (negative ? micros.slice(1) : micros).padStart(7, '0');
  return `${negative ? '-' : ''}${digits.slice(0, -6)}.${digits.slice(-6)}`;
}

/** A decimal amount with at most 6 places ("0.0025") as integer micro-units ("2500"), exactly; null when it is not one. */
export function amountAsMicros(amount: string): string | null {
  const m = /^(\d{1,10})(?:\.(\d{1,6}))?$/.exec(amount.trim());
  if (!m?.[1]) return null;
  return BigInt(`${m[1]}${(m[2] ?? '').padEnd(6, '0')}`).toString();
}

/** Money as people read it: "5.000000 USD". */
export function money(m: { amountMicros: string; currency: string }): string {
  return `${microsAsAmount(m.amountMicros)} ${m.currency}`;
}
