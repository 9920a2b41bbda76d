/**
 * Counts HTTP requests between arrival and the end of their response, so a
 * shutdown can say what it waits for and a forced exit what it abandons.
 */
import type { ServerResponse } from 'node:http';
import { Gauge } from 'prom-client';
import type { Metrics } from '../metrics/metrics';

export class InFlightRequests {
  private active = 0;

  constructor(metrics: Metrics) {
    const read = () => this.active;
    new Gauge({
      name: 'modelgate_http_requests_in_flight',
      help: 'HTTP requests received and not yet answered',
      registers: [metrics.registry],
      collect() {
        this.set(read());
      },
    });
  }

  get count(): number {
    return this.active;
  }

  /** A response's 'close' fires exactly once: after it was sent, or when its connection went away. */
  started(response: ServerResponse): void {
    this.active += 1;
    response.once('close', () => {
      this.active -= 1;
    });
  }
}
