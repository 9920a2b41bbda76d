/**
 * Inference metrics per model and version. Names follow the gateway's one
 * prefix policy (modelgate_*, counters ending _total, durations as seconds
 * histograms) rather than copying Triton's nv_inference_* names: Triton's are
 * cumulative microsecond counters without _total, so a Triton dashboard read
 * different things under the same names. README "Metrics" maps each series
 * to its Triton counterpart.
 */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

type ModelLabels = 'model' | 'version';

export class InferenceMetrics {
  readonly requestSuccess: Counter<ModelLabels>;
  readonly requestFailure: Counter<ModelLabels | 'reason'>;
  readonly inferenceCount: Counter<ModelLabels>;
  readonly executions: Counter<ModelLabels>;
  /** Read at scrape time from the queues (readQueuesFrom), never set on the request path. */
  private readonly pending: Gauge<ModelLabels>;
  readonly queueDuration: Histogram<ModelLabels>;
  readonly computeDuration: Histogram<ModelLabels>;
  readonly requestDuration: Histogram<ModelLabels>;
  readonly batchSize: Histogram<ModelLabels>;
  readonly provider: Gauge<ModelLabels | 'provider'>;
  /** The batch queues' lengths, per loaded version (the registry's, once it exists). */
  private queues: () => Iterable<{ model: string; version: string; pending: number }> = () => [];

  constructor(registry: Registry) {
    const registers = [registry];
    const labelNames = ['model', 'version'] as const;
    const seconds = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
    this.requestSuccess = new Counter({ name: 'modelgate_inference_request_success_total', help: 'Inference requests that succeeded', labelNames, registers });
    this.requestFailure = new Counter({
      name: 'modelgate_inference_request_failure_total',
      help: 'Inference requests that failed, by reason (BAD_INPUT, OVERLOADED, TIMEOUT, MODEL_UNAVAILABLE, ERROR, ...)',
      labelNames: [...labelNames, 'reason'],
      registers,
    });
    this.inferenceCount = new Counter({ name: 'modelgate_inference_items_total', help: 'Items inferred (a request with a batch of 8 counts 8)', labelNames, registers });
    this.executions = new Counter({ name: 'modelgate_inference_executions_total', help: 'Model executions (batches run)', labelNames, registers });
    this.pending = new Gauge({
      name: 'modelgate_inference_pending_requests',
      help: 'Requests waiting in the batch queue',
      labelNames,
      registers,
      // Read from the queues at scrape time: set on every enqueue it cost each request two label hashes, each with a sort (prom-client's Gauge.set).
      collect: () => {
        this.pending.reset();
        for (const { model, version, pending } of this.queues()) this.pending.set({ model, version }, pending);
      },
    });
    this.queueDuration = new Histogram({ name: 'modelgate_inference_queue_duration_seconds', help: 'Time requests waited in the queue', labelNames, buckets: seconds, registers });
    this.computeDuration = new Histogram({ name: 'modelgate_inference_compute_duration_seconds', help: 'Model execution time per request (its batch)', labelNames, buckets: seconds, registers });
    this.requestDuration = new Histogram({ name: 'modelgate_inference_request_duration_seconds', help: 'End-to-end inference time in the gateway', labelNames, buckets: seconds, registers });
    this.batchSize = new Histogram({ name: 'modelgate_inference_batch_size', help: 'Items per executed batch', labelNames, buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers });
    this.provider = new Gauge({ name: 'modelgate_model_execution_provider', help: '1 for the execution provider each loaded model runs on', labelNames: [...labelNames, 'provider'], registers });
  }

  /** Where the pending gauge reads the queue lengths at each scrape. */
  readQueuesFrom(queues: () => Iterable<{ model: string; version: string; pending: number }>): void {
    this.queues = queues;
  }
}
