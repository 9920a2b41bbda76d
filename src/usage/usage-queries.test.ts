import { segments } from './usage-queries';
import { bucketBounds, bucketOf, percentile, HIST_BUCKETS, HIST_GROWTH } from './latency-histogram';

const H = 3_600_000;
const D = 24 * H;

describe('summary range segments', () => {
  it('covers [from, to) exactly once with whole days, whole hours and partial hours', () => {
    const from = Date.UTC(2026, 9, 3, 5, 17);
    const to = Date.UTC(2026, 9, 9, 22, 40);
    const segs = segments(from, to, true);
    expect(segs.map((s) => s.source).sort()).toEqual(['day', 'hour', 'hour', 'record', 'record']);
    const sorted = [...segs].sort((a, b) => a.from - b.from);
    expect(sorted[0]!.from).toBe(from);
    expect(sorted.at(-1)!.to).toBe(to);
    for (let i = 1; i < sorted.length; i += 1) expect(sorted[i]!.from).toBe(sorted[i - 1]!.to);
    const day = segs.find((s) => s.source === 'day')!;
    expect([day.from % D, day.to % D]).toEqual([0, 0]);
  });

  it('uses only hours when grouping by hour, and only records inside one hour', () => {
    expect(segments(Date.UTC(2026, 9, 1), Date.UTC(2026, 9, 5), false)).toEqual([{ source: 'hour', from: Date.UTC(2026, 9, 1), to: Date.UTC(2026, 9, 5) }]);
    const inside = segments(Date.UTC(2026, 9, 1, 3, 5), Date.UTC(2026, 9, 1, 3, 55), true);
    expect(inside).toEqual([{ source: 'record', from: Date.UTC(2026, 9, 1, 3, 5), to: Date.UTC(2026, 9, 1, 3, 55) }]);
  });
});

describe('latency histogram', () => {
  it('puts each latency in the bucket whose bounds hold it', () => {
    for (const ms of [0, 0.01, 0.05, 0.3, 1, 7.5, 100, 2500, 59_999, 60_000, 1e9]) {
      const [lo, hi] = bucketBounds(bucketOf(ms));
      expect(ms).toBeGreaterThanOrEqual(lo);
      if (bucketOf(ms) < HIST_BUCKETS - 1) expect(ms).toBeLessThan(hi);
    }
  });

  it('estimates percentiles within one bucket (a factor of HIST_GROWTH) of the truth', () => {
    const values = Array.from({ length: 5000 }, (_, i) => Math.exp(Math.sin(i) * 4 + 2));
    const hist = new Array<number>(HIST_BUCKETS).fill(0);
    for (const v of values) hist[bucketOf(v)]! += 1;
    values.sort((a, b) => a - b);
    for (const p of [0.5, 0.9, 0.95, 0.99]) {
      const truth = values[Math.ceil(p * values.length) - 1]!;
      const estimate = percentile(hist, p)!;
      expect(estimate / truth).toBeLessThan(HIST_GROWTH);
      expect(truth / estimate).toBeLessThan(HIST_GROWTH);
    }
    expect(percentile(new Array<number>(HIST_BUCKETS).fill(0), 0.5)).toBeNull();
  });
});
