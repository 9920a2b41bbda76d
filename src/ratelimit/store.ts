/** What a limiter store (Redis script or in-process) answers for one check. */
export interface StoreResult {
  /** Index into the checked limits of the first one that refused; -1 when the request was admitted. */
  refusedIndex: number;
  /** When refused: ms until the refused limit could admit this request. */
  retryAfterMs: number;
  /** Per limit, the amount counted after this check (unchanged when refused). */
  used: number[];
  /** Per limit, ms until capacity comes back (oldest entry leaves the window / month ends). */
  resetMs: number[];
}

/** One limit as a store sees it. */
export interface StoreLimit {
  kind: 'rolling' | 'month';
  key: string;
  limit: number;
  spanMs: number;
  cost: number;
}
