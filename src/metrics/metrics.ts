/**
 * Prometheus metrics (prom-client). One registry per gateway instance, so
 * tests can run several in one process. Domains add their own metrics to it.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { Registry, collectDefaultMetrics, Gauge, Histogram } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;
  private readonly loop: ReturnType<typeof monitorEventLoopDelay>;

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    // prom-client also exports these three as gauges named *_total, which promtool rejects
    // (only counters end in _total); the same values stay as nodejs_active_{handles,requests,resources}.
    for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) this.registry.removeSingleMetric(name);
    this.httpDuration = new Histogram({
      name: 'modelgate_http_request_duration_seconds',
      help: 'HTTP request duration by method, route and status code',
      labelNames: ['method', 'route', 'status_code'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [this.registry],
    });
    // Event-loop delay since the gateway became ready, never reset by scrapes (prom-client's
    // nodejs_eventloop_lag_* reset at every one): the worst stall any request caused is what the
    // per-request budget is about. Start-up (migrations, model warm-up) blocks by design; not counted.
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    this.loop = loop;
    new Gauge({
      name: 'modelgate_event_loop_delay_max_seconds',
      help: 'Longest event-loop delay since the gateway became ready (perf_hooks monitorEventLoopDelay, 10 ms resolution)',
      registers: [this.registry],
      collect() {
        this.set(loop.max / 1e9);
      },
    });
    new Gauge({
      name: 'modelgate_event_loop_delay_seconds',
      help: 'Event-loop delay percentiles (50, 99, 99.9) since the gateway became ready',
      // Not "quantile": Prometheus reserves that label for summaries, and promtool rejects it on a gauge.
      labelNames: ['percentile'],
      registers: [this.registry],
      collect() {
        for (const p of [50, 99, 99.9]) this.set({ percentile: String(p) }, loop.percentile(p) / 1e9);
      },
    });
  }

  /** Starts the event-loop delay figures afresh (called once, when the gateway is first ready). */
  resetEventLoopDelay(): void {
    this.loop.reset();
  }
}
