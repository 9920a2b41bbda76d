/**
 * Shadow runs (issue #23): a share of a model's served requests, from every
 * door (OIP/gRPC infer, GraphQL infer and classify, explanations), also runs
 * on a candidate version, off the request path, and the candidate's answers are
 * compared with the ones the caller got (top-1 agreement of the first
 * output, largest absolute difference of any value). A shadow run is offered
 * only after the serving answer exists, never awaited by the caller, never
 * admitted against limits and never recorded as usage (nobody asked for it).
 * It is shed first under load: skipped when the serving or the candidate
 * version has requests waiting, when SHADOW_MAX_IN_FLIGHT runs are going, or
 * when no worker is idle; it queues behind every real request (lowest
 * priority) with a short deadline.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../log/logger';
import type { Batcher, BatchInput, OutputTensor } from './batcher';
import type { ModelRegistry, ModelVersion, ServedConfig, ShadowTarget } from './registry';
import type { WorkerPool } from './pool';

/** Shadow runs going at once on this process; more are skipped. */
export const SHADOW_MAX_IN_FLIGHT = 4;
/** Below every real request's priority (which is -1000..1000). */
const SHADOW_PRIORITY = -1_000_000;
/** A shadow run still queued this long is dropped (counted as failed). */
const SHADOW_TIMEOUT_MS = 2000;

type SkipReason = 'queue' | 'in_flight' | 'busy' | 'not_ready' | 'incompatible';

/** What the serving run was: its version, config and queue, the inputs it ran and the outputs it answered. */
export interface ServedRun {
  model: string;
  version: ModelVersion;
  config: ServedConfig;
  batcher: Batcher;
  items: number;
  inputs: BatchInput[];
  outputNames: string[] | null;
  outputs: OutputTensor[];
}

class ShadowMetrics {
  readonly runs: Counter<'model' | 'version' | 'outcome'>;
  readonly skipped: Counter<'model' | 'version' | 'reason'>;
  readonly items: Counter<'model' | 'version'>;
  readonly agreements: Counter<'model' | 'version'>;
  readonly agreementRatio: Gauge<'model' | 'version'>;
  readonly maxAbsDifference: Gauge<'model' | 'version'>;

  constructor(registry: Registry) {
    const registers = [registry];
    const labelNames = ['model', 'version'] as const;
    this.runs = new Counter({ name: 'modelgate_shadow_runs_total', help: 'Shadow runs of a candidate version, by outcome (compared, failed)', labelNames: [...labelNames, 'outcome'], registers });
    this.skipped = new Counter({
      name: 'modelgate_shadow_skipped_total',
      help: 'Sampled shadow runs not run, by reason (queue, in_flight, busy: shed under load; not_ready, incompatible)',
      labelNames: [...labelNames, 'reason'],
      registers,
    });
    this.items = new Counter({ name: 'modelgate_shadow_items_total', help: 'Items compared between a shadow version and the serving one', labelNames, registers });
    this.agreements = new Counter({ name: 'modelgate_shadow_top1_agreements_total', help: 'Compared items whose top-1 class (argmax of the first output) agreed with the serving version', labelNames, registers });
    this.agreementRatio = new Gauge({ name: 'modelgate_shadow_top1_agreement_ratio', help: 'Top-1 agreement of a shadow version with the serving one since the shadow was set (0..1)', labelNames, registers });
    this.maxAbsDifference = new Gauge({ name: 'modelgate_shadow_max_abs_difference', help: 'Largest absolute difference of any output value between a shadow version and the serving one since the shadow was set', labelNames, registers });
  }
}

/** The values of an output tensor as numbers (BigInt types as Number: differences of huge integers lose precision). */
function values(tensor: OutputTensor): Float64Array {
  const b = tensor.bytes;
  switch (tensor.datatype) {
    case 'FP32':
      return Float64Array.from({ length: b.length / 4 }, (_, i) => b.readFloatLE(i * 4));
    case 'FP64':
      return Float64Array.from({ length: b.length / 8 }, (_, i) => b.readDoubleLE(i * 8));
    case 'INT64':
      return Float64Array.from({ length: b.length / 8 }, (_, i) => Number(b.readBigInt64LE(i * 8)));
    case 'UINT64':
      return Float64Array.from({ length: b.length / 8 }, (_, i) => Number(b.readBigUInt64LE(i * 8)));
    case 'INT32':
      return Float64Array.from({ length: b.length / 4 }, (_, i) => b.readInt32LE(i * 4));
    case 'UINT32':
      return Float64Array.from({ length: b.length / 4 }, (_, i) => b.readUInt32LE(i * 4));
    case 'INT16':
      return Float64Array.from({ length: b.length / 2 }, (_, i) => b.readInt16LE(i * 2));
    case 'UINT16':
    case 'FP16':
      // FP16 compared as its bit pattern: equal answers give 0, any change gives a difference.
      return Float64Array.from({ length: b.length / 2 }, (_, i) => b.readUInt16LE(i * 2));
    case 'INT8':
      return Float64Array.from({ length: b.length }, (_, i) => b.readInt8(i));
    default:
      return Float64Array.from(b);
  }
}

function argmax(v: Float64Array, from: number, to: number): number {
  let best = from;
  for (let i = from + 1; i < to; i += 1) if (v[i]! > v[best]!) best = i;
  return best - from;
}

/** The candidate takes exactly the serving version's inputs (names, types, dims, batching). */
function compatible(serving: ServedConfig, candidate: ServedConfig): boolean {
  if ((serving.maxBatchSize > 0) !== (candidate.maxBatchSize > 0) || serving.inputs.length !== candidate.inputs.length) return false;
  return serving.inputs.every((spec) => {
    const other = candidate.inputs.find((c) => c.name === spec.name);
    return other !== undefined && other.datatype === spec.datatype && other.dims.join(',') === spec.dims.join(',');
  });
}

export class ShadowRunner {
  private inFlight = 0;
  private readonly metrics: ShadowMetrics;

  constructor(
    private readonly registry: ModelRegistry,
    private readonly pool: WorkerPool,
    metricsRegistry: Registry,
    private readonly log: Logger,
  ) {
    this.metrics = new ShadowMetrics(metricsRegistry);
  }

  /** Shadow runs going now. */
  get running(): number {
    return this.inFlight;
  }

  /**
   * Whether a request to `servingVersion` is drawn for the shadow (the
   * target's percent), once per request when it is planned, whichever door
   * it came through; a request to the shadow version itself never is.
   */
  draws(target: ShadowTarget, servingVersion: number): boolean {
    return target.version !== servingVersion && Math.random() * 100 < target.percent;
  }

  /**
   * Called with each run of a drawn request once its serving answer exists:
   * unless shed, runs the candidate on the same inputs after the current
   * turn of the event loop. Never throws, never awaited by the caller.
   */
  offer(target: ShadowTarget, served: ServedRun): void {
    if (target.version === served.version.version) return;
    const candidate = this.registry.versionOf(served.model, target.version);
    const labels = { model: served.model, version: String(target.version) };
    const skip = (reason: SkipReason): void => {
      if (candidate) candidate.shadowStats.skipped += 1;
      this.metrics.skipped.inc({ ...labels, reason });
    };
    if (!candidate || candidate.status !== 'READY' || !candidate.batcher || !candidate.config) return skip('not_ready');
    if (this.inFlight >= SHADOW_MAX_IN_FLIGHT) return skip('in_flight');
    if (served.batcher.pending > 0 || candidate.batcher.pending > 0) return skip('queue');
    if (this.pool.busyCount >= this.pool.size) return skip('busy');
    if (!compatible(served.config, candidate.config)) return skip('incompatible');
    const batcher = candidate.batcher;
    this.inFlight += 1;
    setImmediate(() => {
      void this.run(candidate, batcher, served, labels).finally(() => {
        this.inFlight -= 1;
      });
    });
  }

  private async run(candidate: ModelVersion, batcher: Batcher, served: ServedRun, labels: { model: string; version: string }): Promise<void> {
    const stats = candidate.shadowStats;
    try {
      const result = await batcher.submit({ items: served.items, inputs: served.inputs, outputNames: served.outputNames, priority: SHADOW_PRIORITY, timeoutMs: SHADOW_TIMEOUT_MS });
      let maxDiff = 0;
      for (const primary of served.outputs) {
        const other = result.outputs.find((o) => o.name === primary.name);
        if (!other || other.bytes.length !== primary.bytes.length) throw new Error(`output "${primary.name}" differs in shape or is missing`);
        const a = values(primary);
        const b = values(other);
        for (let i = 0; i < a.length; i += 1) {
          const d = Math.abs(a[i]! - b[i]!);
          // NaN on one side only counts as the largest difference.
          if (d > maxDiff || (Number.isNaN(d) && !(Number.isNaN(a[i]!) && Number.isNaN(b[i]!)))) maxDiff = Number.isNaN(d) ? Infinity : d;
        }
      }
      const firstName = served.config.outputs.find((o) => served.outputs.some((p) => p.name === o.name))?.name;
      const first = served.outputs.find((o) => o.name === firstName);
      const other = first && result.outputs.find((o) => o.name === first.name);
      const items = Math.max(served.items, 1);
      let agreed = 0;
      if (first && other) {
        const a = values(first);
        const b = values(other);
        const per = a.length / items;
        for (let item = 0; item < items; item += 1) if (argmax(a, item * per, (item + 1) * per) === argmax(b, item * per, (item + 1) * per)) agreed += 1;
      }
      stats.runs += 1;
      stats.items += items;
      stats.top1Agreements += agreed;
      stats.maxAbsDifference = Math.max(stats.maxAbsDifference, maxDiff);
      this.metrics.runs.inc({ ...labels, outcome: 'compared' });
      this.metrics.items.inc(labels, items);
      this.metrics.agreements.inc(labels, agreed);
      this.metrics.agreementRatio.set(labels, stats.top1Agreements / stats.items);
      this.metrics.maxAbsDifference.set(labels, stats.maxAbsDifference);
    } catch (error) {
      stats.failures += 1;
      this.metrics.runs.inc({ ...labels, outcome: 'failed' });
      this.log.debug({ ...labels, err: error instanceof Error ? error.message : String(error) }, 'shadow run failed (the served answer is unaffected)');
    }
  }
}
