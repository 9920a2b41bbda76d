import type { ModelView } from '../inference/inference.service';

/** One version's counters in Triton's statistics shape: REST's /stats and gRPC's ModelStatistics answer the same fields. */
export function tritonStatistics(v: ModelView) {
  const ns = (ms: number) => Math.round(ms * 1e6);
  return {
    name: v.name,
    version: v.version,
    inference_count: v.stats.inferences,
    execution_count: v.stats.executions,
    inference_stats: {
      // modelgate keeps queue and compute totals, not end-to-end time: success.ns is their sum.
      success: { count: v.stats.requests, ns: ns(v.stats.queueMsTotal + v.stats.computeMsTotal) },
      fail: { count: v.stats.failures, ns: 0 },
      queue: { count: v.stats.requests, ns: ns(v.stats.queueMsTotal) },
      compute_infer: { count: v.stats.requests, ns: ns(v.stats.computeMsTotal) },
    },
  };
}
