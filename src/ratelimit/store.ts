/** What a limiter store (Redis script or in-process) answers for one check. */
export interface StoreResult {
  /** Index into the checked limits of the first one that refused; -1 when the request was admitted. */
  refusedIndex: number;
  /** When refused: ms until the refused limit could admit this request. */
  retryAfterMs: number;
  /** Per limit, the amount counted after this check (unchanged when refused); for credits, the balance. */
  used: number[];
  /** Per limit, ms until capacity comes back (oldest entry leaves the window / month ends). */
  resetMs: number[];
}

/** One limit as a store sees it. */
export interface StoreLimit {
  /**
   * rolling: a 60-second sliding log; month: a counter for the calendar month (UTC);
   * credits: a balance that only goes down (by cost) and is reset to `limit` when `period` moves on.
   */
  kind: 'rolling' | 'month' | 'credits';
  /**
   * Credits only: the refill period holding now ("d:2026-12-01", "m:2026-12"),
   * or "n" for a balance without refill (top-ups only).
   */
  period?: string;
  /** Rolling limits whose requests weigh more than 1 (compute units); request limits count entries. */
  weighted: boolean;
  /** Store key (without the global prefix), hash-tagged by tenant. */
  key: string;
  limit: number;
  /**
   * Month counters only: the counter must exist before it admits anything;
   * when absent it is rebuilt from the billed usage in Postgres (a tenant
   * with a quota). Without a quota it simply starts at 0.
   */
  seeded?: boolean;
  /** Window in ms (rolling) or ms until the month ends (month). */
  spanMs: number;
  cost: number;
}
