/**
 * Fixed latency buckets shared by the hourly rollups (stored as an int array)
 * and the summary's percentile estimate. Buckets are log-spaced so the
 * relative error is the same at 1 ms and at 10 s:
 *   bucket 0          [0, 0.05 ms)
 *   bucket i (1..62)  [0.05·g^(i-1), 0.05·g^i) ms, g = 1.2e6^(1/62) ≈ 1.2533
 *   bucket 63         [60 s, ∞)
 * An estimate and the true percentile fall in the same bucket, so the
 * estimate is within a factor g of the truth (≤ 25 % relative error, worst
 * case); interpolating inside the bucket usually does much better.
 */
export const HIST_BUCKETS = 64;
export const HIST_MIN_MS = 0.05;
export const HIST_MAX_MS = 60_000;
export const HIST_GROWTH = Math.pow(HIST_MAX_MS / HIST_MIN_MS, 1 / (HIST_BUCKETS - 2));
const LN_GROWTH = Math.log(HIST_GROWTH);

export function bucketOf(latencyMs: number): number {
  if (!(latencyMs >= HIST_MIN_MS)) return 0; // also NaN and negatives
  return Math.min(HIST_BUCKETS - 1, 1 + Math.floor(Math.log(latencyMs / HIST_MIN_MS) / LN_GROWTH));
}

/** The same function in SQL, for summaries computed from raw records (keep in step with bucketOf). */
export function bucketSql(column: string): string {
  return `(CASE WHEN ${column} < ${HIST_MIN_MS} THEN 0 ELSE LEAST(${HIST_BUCKETS - 1}, 1 + floor(ln(${column} / ${HIST_MIN_MS}) / ${LN_GROWTH})::int) END)`;
}

/** [lower, upper) bounds of a bucket in ms. */
export function bucketBounds(bucket: number): [number, number] {
  if (bucket <= 0) return [0, HIST_MIN_MS];
  if (bucket >= HIST_BUCKETS - 1) return [HIST_MAX_MS, HIST_MAX_MS];
  return [HIST_MIN_MS * Math.pow(HIST_GROWTH, bucket - 1), HIST_MIN_MS * Math.pow(HIST_GROWTH, bucket)];
}

export function emptyHistogram(): number[] {
  return new Array<number>(HIST_BUCKETS).fill(0);
}

/**
 * Estimates the p-quantile (0 < p ≤ 1, nearest rank) from bucket counts,
 * interpolating geometrically inside the bucket that holds the rank.
 * Returns null for an empty histogram.
 */
export function percentile(hist: readonly number[], p: number): number | null {
  const total = hist.reduce((a, b) => a + b, 0);
  if (total === 0) return null;
  const rank = Math.max(1, Math.ceil(p * total));
  let seen = 0;
  for (let i = 0; i < hist.length; i += 1) {
    const count = hist[i] ?? 0;
    if (count === 0) continue;
    if (seen + count >= rank) {
      const [lo, hi] = bucketBounds(i);
      const frac = (rank - seen - 0.5) / count;
      if (i === 0) return lo + (hi - lo) * frac;
      if (lo === hi) return lo;
      return lo * Math.pow(hi / lo, frac);
    }
    seen += count;
  }
  return bucketBounds(hist.length - 1)[0];
}
