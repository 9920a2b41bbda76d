/**
 * Dynamic batching for one model version, adaptive: while none of this
 * model's batches is running, whatever is queued goes to the first free worker
 * at once (a lone request never waits for company); requests that arrive while
 * a batch runs queue up and form the next batch, which is sent when that batch
 * finishes, when it reaches max_batch_size or a preferred size, or when its
 * oldest request has waited max_queue_delay (so under load the delay is an
 * upper bound on the wait, never a fixed one). A model whose config sets
 * `delay_when_idle` keeps Triton's delayed batching: its requests wait up to
 * the delay for company even while it is idle. Requests with several
 * items are concatenated along the batch axis and split back afterwards. The
 * queue is bounded (OVERLOADED at once beyond it) and every request has a
 * deadline: one still queued at its deadline is dropped with TIMEOUT and
 * never run. A request already running finishes and answers normally.
 */
import { OverloadedError, TimeoutError } from '../errors';
import type { PoolWorker, WorkerPool } from './pool';
import type { WireTensor } from './worker-protocol';
import type { Datatype } from './model-config';
import { datatypeFromOrt, lengthPrefixedRange } from './tensor';

export interface BatchInput {
  name: string;
  /** onnxruntime type name. */
  type: string;
  /** Shape without the batch axis when batching; the full shape otherwise. */
  itemShape: number[];
  bytes: Buffer;
}

export interface BatchRequest {
  /** Items along the batch axis (1 when batching is off). */
  items: number;
  inputs: BatchInput[];
  outputNames: string[] | null;
  priority: number;
  timeoutMs: number;
}

export interface OutputTensor {
  name: string;
  datatype: Datatype;
  shape: number[];
  bytes: Buffer;
}

export interface BatchResult {
  outputs: OutputTensor[];
  queueMs: number;
  computeMs: number;
  batchSize: number;
  /** performance.now() when the request was queued, when its batch went to a worker, and when the worker's answer came back (trace spans). */
  enqueuedAt: number;
  dispatchedAt: number;
  completedAt: number;
}

export interface BatchPolicy {
  /** 0 turns batching off: each request runs alone with its own full shape. */
  maxBatchSize: number;
  preferredBatchSizes: number[];
  maxQueueDelayMs: number;
  /** Triton's delayed batching: wait out the delay even while no batch of this model runs (config `delay_when_idle`). */
  delayWhenIdle?: boolean;
  maxQueueSize: number;
}

/** Per-batch facts for stats and metrics (request outcomes are counted by the service, which sees every failure). */
export interface BatchObserver {
  executed(batchSize: number): void;
}

interface Pending {
  request: BatchRequest;
  /** Batches only mix requests whose non-batch shapes and output selection agree. */
  signature: string;
  enqueuedAt: number;
  timer: NodeJS.Timeout;
  resolve: (result: BatchResult) => void;
  reject: (error: Error) => void;
}

export class Batcher {
  private queue: Pending[] = [];
  private delayTimer: NodeJS.Timeout | undefined;
  private readonly stopListening: () => void;
  private closed = false;
  private inFlight = 0;
  private drained: (() => void) | undefined;

  constructor(
    private readonly key: string,
    private readonly pool: WorkerPool,
    private readonly policy: BatchPolicy,
    private readonly observer: BatchObserver,
  ) {
    this.stopListening = pool.onIdle(() => this.pump());
    this.largestPreferred = policy.preferredBatchSizes.length > 0 ? Math.max(...policy.preferredBatchSizes) : Infinity;
  }

  private readonly largestPreferred: number;

  get pending(): number {
    return this.queue.length;
  }

  submit(request: BatchRequest): Promise<BatchResult> {
    if (this.closed) return Promise.reject(new OverloadedError('The model is being unloaded; retry shortly'));
    if (this.queue.length >= this.policy.maxQueueSize) {
      return Promise.reject(
        new OverloadedError(`The model's queue is full (${this.policy.maxQueueSize} requests waiting); retry shortly`, {
          maxQueueSize: this.policy.maxQueueSize,
        }),
      );
    }
    return new Promise<BatchResult>((resolve, reject) => {
      const entry: Pending = {
        request,
        signature: signatureOf(request),
        enqueuedAt: performance.now(),
        timer: setTimeout(() => this.expire(entry), request.timeoutMs),
        resolve,
        reject,
      };
      // Higher priority first; arrival order within a priority.
      let at = this.queue.length;
      while (at > 0 && this.queue[at - 1]!.request.priority < request.priority) at -= 1;
      this.queue.splice(at, 0, entry);
      this.pump();
    });
  }

  private expire(entry: Pending): void {
    const index = this.queue.indexOf(entry);
    if (index < 0) return;
    this.queue.splice(index, 1);
    this.checkDrained();
    entry.reject(
      new TimeoutError(`The request waited ${entry.request.timeoutMs} ms in the queue without running (deadline reached)`, {
        timeoutMs: entry.request.timeoutMs,
      }),
    );
  }

  /**
   * Sends every batch that is due while workers are free. Each group of
   * compatible requests (same shapes and outputs) is judged on its own, by its
   * size and its oldest member's wait, so a group that is not due yet never
   * holds back one that is, and a newly queued high-priority request does not
   * restart the delay of the older ones it joins.
   */
  private pump(): void {
    if (this.delayTimer) {
      clearTimeout(this.delayTimer);
      this.delayTimer = undefined;
    }
    const { maxBatchSize, preferredBatchSizes, maxQueueDelayMs } = this.policy;
    // No worker to take a batch: nothing can be sent, and the pool's idle wake-up pumps again (under
    // load every submit lands here; judging the whole queue each time was work per request per queued one).
    while (this.queue.length > 0 && this.pool.canAcquire()) {
      const now = performance.now();
      let soonestDueInMs = Infinity;
      let sent = false;
      const judged = new Set<string>();
      for (let start = 0; start < this.queue.length; start += 1) {
        const signature = this.queue[start]!.signature;
        if (judged.has(signature)) continue;
        judged.add(signature);
        const { batch, items } = this.formBatch(start);
        let oldest = Infinity;
        for (const entry of batch) oldest = Math.min(oldest, entry.enqueuedAt);
        const waitedMs = now - oldest;
        // Nothing of this model running: waiting could only add latency, so it goes now
        // (unless the model asks for Triton's delayed batching).
        const due =
          (this.inFlight === 0 && !this.policy.delayWhenIdle) ||
          maxBatchSize === 0 ||
          items >= maxBatchSize ||
          preferredBatchSizes.includes(items) ||
          items >= this.largestPreferred ||
          waitedMs >= maxQueueDelayMs;
        if (!due) {
          soonestDueInMs = Math.min(soonestDueInMs, maxQueueDelayMs - waitedMs);
          continue;
        }
        const worker = this.pool.acquire();
        if (!worker) return; // woken again by the pool when a worker frees up
        if (batch.length === 1) this.queue.splice(start, 1);
        else this.queue = this.queue.filter((entry) => !batch.includes(entry));
        void this.execute(worker, batch, items);
        sent = true;
        break; // the queue changed: judge it again
      }
      if (!sent) {
        if (soonestDueInMs < Infinity) this.delayTimer = setTimeout(() => this.pump(), Math.max(0, soonestDueInMs));
        return;
      }
    }
  }

  /** The request at `start` plus the following requests of its group that fit. */
  private formBatch(start: number): { batch: Pending[]; items: number } {
    const head = this.queue[start]!;
    if (this.policy.maxBatchSize === 0) return { batch: [head], items: head.request.items };
    const batch = [head];
    let items = head.request.items;
    for (let i = start + 1; i < this.queue.length && items < this.policy.maxBatchSize; i += 1) {
      const entry = this.queue[i]!;
      if (entry.signature !== head.signature || items + entry.request.items > this.policy.maxBatchSize) continue;
      batch.push(entry);
      items += entry.request.items;
    }
    return { batch, items };
  }

  private async execute(worker: PoolWorker, batch: Pending[], items: number): Promise<void> {
    this.inFlight += 1;
    try {
      await this.run(worker, batch, items);
    } finally {
      this.inFlight -= 1;
      this.checkDrained();
      // The requests that queued while this batch ran form the next one now
      // (the pool's idle wake-up came before inFlight dropped).
      if (this.queue.length > 0 && !this.closed) this.pump();
    }
  }

  private async run(worker: PoolWorker, batch: Pending[], items: number): Promise<void> {
    const dispatchedAt = performance.now();
    for (const entry of batch) clearTimeout(entry.timer);
    const first = batch[0]!.request;
    const batching = this.policy.maxBatchSize > 0;
    try {
      const inputs: WireTensor[] = first.inputs.map((input, index) => {
        // A fresh ArrayBuffer (never Buffer's shared pool) so it can be transferred.
        const total = batch.reduce((sum, entry) => sum + entry.request.inputs[index]!.bytes.length, 0);
        const buffer = new ArrayBuffer(total);
        const view = new Uint8Array(buffer);
        let offset = 0;
        for (const entry of batch) {
          const bytes = entry.request.inputs[index]!.bytes;
          view.set(bytes, offset);
          offset += bytes.length;
        }
        return { name: input.name, type: input.type, dims: batching ? [items, ...input.itemShape] : input.itemShape, buffer };
      });
      const reply = await this.pool.run(worker, this.key, inputs, first.outputNames);
      const completedAt = performance.now();
      this.observer.executed(items);
      let offsetItems = 0;
      for (const entry of batch) {
        const outputs = reply.outputs.map((output) => splitOutput(output, batching ? offsetItems : 0, batching ? entry.request.items : 0, items));
        offsetItems += entry.request.items;
        entry.resolve({
          outputs,
          queueMs: dispatchedAt - entry.enqueuedAt,
          computeMs: reply.computeMs,
          batchSize: items,
          enqueuedAt: entry.enqueuedAt,
          dispatchedAt,
          completedAt,
        });
      }
    } catch (error) {
      for (const entry of batch) entry.reject(error instanceof Error ? error : new Error(String(error)));
    }
  }

  /**
   * Lets everything already queued or running finish, then resolves; used
   * before the session goes away (reload swap, unload), so no request is
   * refused or fails because of an admin action. Gives up after `maxWaitMs`
   * and refuses what is still queued.
   */
  async drain(maxWaitMs: number): Promise<void> {
    if (this.queue.length > 0 || this.inFlight > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => {
          this.drained = resolve;
        }),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, maxWaitMs);
        }),
      ]);
      clearTimeout(timer);
    }
    this.close();
  }

  private checkDrained(): void {
    if (this.drained && this.queue.length === 0 && this.inFlight === 0) {
      const resolve = this.drained;
      this.drained = undefined;
      resolve();
    }
  }

  /** Stops taking requests; those still queued are refused as OVERLOADED. */
  close(): void {
    this.closed = true;
    this.stopListening();
    if (this.delayTimer) clearTimeout(this.delayTimer);
    for (const entry of this.queue) {
      clearTimeout(entry.timer);
      entry.reject(new OverloadedError('The model was unloaded before this request ran'));
    }
    this.queue = [];
  }
}

function signatureOf(request: BatchRequest): string {
  return `${request.inputs.map((i) => `${i.name}:${i.itemShape.join('x')}`).join('|')}>${request.outputNames?.join(',') ?? '*'}`;
}

/** The slice of a batched output that belongs to one request (count 0: the whole tensor). */
function splitOutput(output: WireTensor, firstItem: number, count: number, batchItems: number): OutputTensor {
  const datatype = datatypeFromOrt(output.type);
  if (!datatype) throw new Error(`model produced an unsupported output type ${output.type}`);
  if (count === 0) return { name: output.name, datatype, shape: output.dims, bytes: Buffer.from(output.buffer) };
  const shape = [count, ...output.dims.slice(1)];
  if (datatype === 'BYTES') {
    // Elements are length-prefixed (variable size): walk to the request's first one.
    const perItem = output.dims.slice(1).reduce((a, b) => a * b, 1);
    return { name: output.name, datatype, shape, bytes: lengthPrefixedRange(Buffer.from(output.buffer), firstItem * perItem, count * perItem) };
  }
  const perItem = output.buffer.byteLength / batchItems;
  return { name: output.name, datatype, shape, bytes: Buffer.from(output.buffer, firstItem * perItem, count * perItem) };
}
