/**
 * Prometheus metrics (prom-client). One registry per gateway instance, so
 * tests can run several in one process. Domains add their own metrics to it.
 */
import { Registry, collectDefaultMetrics, Histogram } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly httpDuration: Histogram<'method' | 'route' | 'status_code'>;

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
  }
}
