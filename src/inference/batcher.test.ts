/**
 * Batcher dispatch rules against a stand-in worker pool (fake timers), for the
 * cases the end-to-end tests cannot pin down: groups of different shapes are
 * judged separately, and a high-priority arrival does not restart the delay of
 * older requests it joins.
 */
import { Batcher, type BatchRequest } from './batcher';
import type { WorkerPool } from './pool';
import type { WireTensor } from './worker-protocol';

class FakePool {
  readonly runs: { items: number; dims: number[] }[] = [];
  private listeners = new Set<() => void>();
  private gate: Promise<void> | null = null;
  constructor(private free = 1) {}
  onIdle(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  canAcquire(): boolean {
    return this.free > 0;
  }
  acquire(): object | null {
    if (this.free === 0) return null;
    this.free -= 1;
    return {};
  }
  /** Runs started from now on (until stopHolding) finish only when the returned function is called. */
  hold(): () => void {
    let release = () => undefined as void;
    this.gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    return () => {
      this.gate = null;
      release();
    };
  }
  stopHolding(): void {
    this.gate = null;
  }
  async run(_worker: object, _key: string, inputs: WireTensor[]) {
    const items = inputs[0]!.dims[0]!;
    this.runs.push({ items, dims: inputs[0]!.dims });
    if (this.gate) await this.gate;
    this.free += 1;
    for (const listener of this.listeners) listener();
    // Output row i holds the first input value of item i, so the split can be checked.
    const input = new Float32Array(inputs[0]!.buffer);
    const perItem = input.length / items;
    const out = Float32Array.from({ length: items }, (_, i) => input[i * perItem]!);
    return { id: 0, ok: true as const, op: 'run' as const, computeMs: 1, outputs: [{ name: 'y', type: 'float32', dims: [items, 1], buffer: out.buffer }] };
  }
}

const observer = { executed: () => undefined };

function request(itemShape: number[], priority = 0, value = 0, items = 1): BatchRequest {
  const count = itemShape.reduce((a, b) => a * b, 1) * items;
  const values = Float32Array.from({ length: count }, (_, i) => value + Math.floor(i / (count / items)));
  return { items, inputs: [{ name: 'x', type: 'float32', itemShape, bytes: Buffer.from(values.buffer) }], outputNames: null, priority, timeoutMs: 10_000 };
}

describe('Batcher dispatch', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('sends a full group at once even while an older group of another shape is still waiting', async () => {
    const pool = new FakePool(2);
    const batcher = new Batcher('m', pool as unknown as WorkerPool, { maxBatchSize: 4, preferredBatchSizes: [], maxQueueDelayMs: 50, maxQueueSize: 100 }, observer);
    const release = pool.hold();
    const busy = batcher.submit(request([5])); // runs at once and keeps the model busy
    pool.stopHolding(); // later runs finish at once
    const lonely = batcher.submit(request([2]));
    const full = [0, 1, 2, 3].map(() => batcher.submit(request([3])));
    await Promise.all(full);
    expect(pool.runs).toEqual([
      { items: 1, dims: [1, 5] },
      { items: 4, dims: [4, 3] },
    ]);
    jest.advanceTimersByTime(50);
    release();
    await Promise.all([lonely, busy]);
    expect(pool.runs[2]).toEqual({ items: 1, dims: [1, 2] });
    batcher.close();
  });

  it('times a batch from its oldest request, not from a newer high-priority head', async () => {
    const pool = new FakePool(2);
    const batcher = new Batcher('m', pool as unknown as WorkerPool, { maxBatchSize: 8, preferredBatchSizes: [], maxQueueDelayMs: 30, maxQueueSize: 100 }, observer);
    const release = pool.hold();
    const busy = batcher.submit(request([5]));
    const older = batcher.submit(request([3], 0));
    jest.advanceTimersByTime(20);
    const urgent = batcher.submit(request([3], 5));
    expect(pool.runs).toHaveLength(1);
    jest.advanceTimersByTime(11); // 31 ms after the older one: due
    expect(pool.runs).toEqual([
      { items: 1, dims: [1, 5] },
      { items: 2, dims: [2, 3] },
    ]);
    release();
    await Promise.all([busy, older, urgent]);
    batcher.close();
  });

  it('concatenates multi-item requests and splits the output back to each, in order', async () => {
    const pool = new FakePool();
    const batcher = new Batcher('m', pool as unknown as WorkerPool, { maxBatchSize: 5, preferredBatchSizes: [], maxQueueDelayMs: 10, maxQueueSize: 100 }, observer);
    const release = pool.hold();
    const busy = batcher.submit(request([5]));
    const a = batcher.submit(request([3], 0, 10, 2)); // items valued 10, 11
    const b = batcher.submit(request([3], 0, 20, 3)); // items valued 20, 21, 22
    release();
    const [ra, rb] = await Promise.all([a, b, busy]);
    expect(pool.runs).toEqual([
      { items: 1, dims: [1, 5] },
      { items: 5, dims: [5, 3] },
    ]);
    const values = (r: typeof ra) => Array.from({ length: r.outputs[0]!.bytes.length / 4 }, (_, i) => r.outputs[0]!.bytes.readFloatLE(i * 4));
    expect(ra.outputs[0]!.shape).toEqual([2, 1]);
    expect(values(ra)).toEqual([10, 11]);
    expect(rb.outputs[0]!.shape).toEqual([3, 1]);
    expect(values(rb)).toEqual([20, 21, 22]);
    expect(rb.batchSize).toBe(5);
    batcher.close();
  });

  it('runs a lone request at once, however long the queue delay', async () => {
    const pool = new FakePool();
    const batcher = new Batcher('m', pool as unknown as WorkerPool, { maxBatchSize: 64, preferredBatchSizes: [32, 64], maxQueueDelayMs: 5000, maxQueueSize: 100 }, observer);
    const alone = batcher.submit(request([3]));
    // Dispatched inside submit(): no timer has fired (fake timers never advanced).
    expect(pool.runs).toEqual([{ items: 1, dims: [1, 3] }]);
    const result = await alone;
    expect(result.batchSize).toBe(1);
    expect(result.queueMs).toBeLessThan(5000);
    batcher.close();
  });

  it('requests that arrive while a batch runs form the next batch as soon as it finishes, without waiting for the delay', async () => {
    const pool = new FakePool();
    const batcher = new Batcher('m', pool as unknown as WorkerPool, { maxBatchSize: 64, preferredBatchSizes: [32, 64], maxQueueDelayMs: 5000, maxQueueSize: 100 }, observer);
    const release = pool.hold();
    const first = batcher.submit(request([3], 0, 1));
    const next = [2, 3, 4, 5, 6].map((v) => batcher.submit(request([3], 0, v)));
    expect(pool.runs).toEqual([{ items: 1, dims: [1, 3] }]);
    release();
    const results = await Promise.all([first, ...next]);
    expect(pool.runs).toEqual([
      { items: 1, dims: [1, 3] },
      { items: 5, dims: [5, 3] },
    ]);
    expect(results.map((r) => r.outputs[0]!.bytes.readFloatLE(0))).toEqual([1, 2, 3, 4, 5, 6]);
    batcher.close();
  });

  it('while a batch runs, the queue delay bounds the wait of the next one when another worker is free', async () => {
    const pool = new FakePool(2);
    const batcher = new Batcher('m', pool as unknown as WorkerPool, { maxBatchSize: 64, preferredBatchSizes: [], maxQueueDelayMs: 40, maxQueueSize: 100 }, observer);
    const release = pool.hold();
    const first = batcher.submit(request([3]));
    const waiting = [batcher.submit(request([3])), batcher.submit(request([3]))];
    jest.advanceTimersByTime(39);
    expect(pool.runs).toHaveLength(1);
    jest.advanceTimersByTime(1);
    expect(pool.runs).toEqual([
      { items: 1, dims: [1, 3] },
      { items: 2, dims: [2, 3] },
    ]);
    release();
    await Promise.all([first, ...waiting]);
    batcher.close();
  });

  it('with delayWhenIdle (Triton\'s delayed batching) a lone request waits out the delay even on an idle model', async () => {
    const pool = new FakePool();
    const batcher = new Batcher('m', pool as unknown as WorkerPool, { maxBatchSize: 64, preferredBatchSizes: [], maxQueueDelayMs: 100, delayWhenIdle: true, maxQueueSize: 100 }, observer);
    const alone = batcher.submit(request([3]));
    jest.advanceTimersByTime(99);
    expect(pool.runs).toHaveLength(0);
    jest.advanceTimersByTime(1);
    expect(pool.runs).toEqual([{ items: 1, dims: [1, 3] }]);
    await alone;
    batcher.close();
  });
});
