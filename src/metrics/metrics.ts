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
    this.httpDuration = new Histogram({
      name: 'http_request_duration_seconds',
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
      help: 'Event-loop delay percentiles since the gateway became ready',
      labelNames: ['quantile'],
      registers: [this.registry],
      collect() {
        for (const q of [0.5, 0.99, 0.999]) this.set({ quantile: String(q) }, loop.percentile(q * 100) / 1e9);
      },
    });
  }

  /** Starts the event-loop delay figures afresh (called once, when the gateway is first ready). */
  resetEventLoopDelay(): void {
    this.loop.reset();
  }
}
