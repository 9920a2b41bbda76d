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
  private free = 1;
  private listeners = new Set<() => void>();
  onIdle(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
  acquire(): object | null {
    if (this.free === 0) return null;
    this.free -= 1;
    return {};
  }
  async run(_worker: object, _key: string, inputs: WireTensor[]) {
    const items = inputs[0]!.dims[0]!;
    this.runs.push({ items, dims: inputs[0]!.dims });
    this.free += 1;
    // Output row i holds the first input value of item i, so the split can be checked.
    const input = new Float32Array(inputs[0]!.buffer);
    const perItem = input.length / items;
    const out = Float32Array.from({ length: items }, (_, i) => input[i * perItem]!);
    return { id: 0, ok: true as const, op: 'run' as const, computeMs: 1, outputs: [{ name: 'y', type: 'float32', dims: [items, 1], buffer: out.buffer }] };
  }
}

const observer = { executed: () => undefined, queued: () => undefined };

function request(itemShape: number[], priority = 0, value = 0, items = 1): BatchRequest {
  const count = itemShape.reduce((a, b) => a * b, 1) * items;
  const values = Float32Array.from({ length: count }, (_, i) => value + Math.floor(i / (count / items)));
  return { items, inputs: [{ name: 'x', type: 'float32', itemShape, bytes: Buffer.from(values.buffer) }], outputNames: null, priority, timeoutMs: 10_000 };
}

describe('Batcher dispatch', () => {
  beforeEach(() => jest.useFakeTimers());
  afterEach(() => jest.useRealTimers());

  it('sends a full group at once even while an older group of another shape is still waiting', async () => {
    const pool = new FakePool();
    const batcher = new Batcher('m', pool as unknown as WorkerPool, { maxBatchSize: 4, preferredBatchSizes: [], maxQueueDelayMs: 50, maxQueueSize: 100 }, observer);
    const lonely = batcher.submit(request([2]));
    const full = [0, 1, 2, 3].map(() => batcher.submit(request([3])));
    await Promise.all(full);
    expect(pool.runs).toEqual([{ items: 4, dims: [4, 3] }]);
    jest.advanceTimersByTime(50);
    await lonely;
    expect(pool.runs[1]).toEqual({ items: 1, dims: [1, 2] });
    batcher.close();
  });

  it('times a batch from its oldest request, not from a newer high-priority head', async () => {
    const pool = new FakePool();
    const batcher = new Batcher('m', pool as unknown as WorkerPool, { maxBatchSize: 8, preferredBatchSizes: [], maxQueueDelayMs: 30, maxQueueSize: 100 }, observer);
    const older = batcher.submit(request([3], 0));
    jest.advanceTimersByTime(20);
    const urgent = batcher.submit(request([3], 5));
    expect(pool.runs).toHaveLength(0);
    jest.advanceTimersByTime(11); // 31 ms after the older one: due
    await Promise.all([older, urgent]);
    expect(pool.runs).toEqual([{ items: 2, dims: [2, 3] }]);
    batcher.close();
  });

  it('concatenates multi-item requests and splits the output back to each, in order', async () => {
    const pool = new FakePool();
    const batcher = new Batcher('m', pool as unknown as WorkerPool, { maxBatchSize: 5, preferredBatchSizes: [], maxQueueDelayMs: 10, maxQueueSize: 100 }, observer);
    const a = batcher.submit(request([3], 0, 10, 2)); // items valued 10, 11
    const b = batcher.submit(request([3], 0, 20, 3)); // items valued 20, 21, 22
    const [ra, rb] = await Promise.all([a, b]);
    expect(pool.runs).toEqual([{ items: 5, dims: [5, 3] }]);
    const values = (r: typeof ra) => Array.from({ length: r.outputs[0]!.bytes.length / 4 }, (_, i) => r.outputs[0]!.bytes.readFloatLE(i * 4));
    expect(ra.outputs[0]!.shape).toEqual([2, 1]);
    expect(values(ra)).toEqual([10, 11]);
    expect(rb.outputs[0]!.shape).toEqual([3, 1]);
    expect(values(rb)).toEqual([20, 21, 22]);
    expect(rb.batchSize).toBe(5);
    batcher.close();
  });
});
