/**
 * The idle-loop worker: it takes a batch while the event loop is mostly idle
 * (batched traffic leaves the loop's core free) and is held back while the
 * loop is busy, so many small requests keep the loop's core to themselves.
 * The loop's utilization is handed in, so the rule is tested without timing.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { WorkerPool } from './pool';
import { createLogger } from '../log/logger';

const log = createLogger({ level: 'silent', pretty: false });

describe('WorkerPool idle-loop workers', () => {
  let utilization = 0;
  let pool: WorkerPool;
  beforeEach(() => {
    pool = new WorkerPool(1, 1, log, 1, () => utilization);
  });
  afterEach(() => pool.close());

  it('hands out the idle-loop worker once the regular ones are busy, while the loop is idle', () => {
    utilization = 0.2;
    expect(pool.threads).toBe(2);
    const first = pool.acquire();
    const second = pool.acquire();
    expect(first).not.toBeNull();
    expect(second).not.toBeNull();
    expect(second).not.toBe(first);
    expect(pool.acquire()).toBeNull();
  });

  it('keeps the idle-loop worker out of rotation while the loop is busy', () => {
    utilization = 0.9;
    expect(pool.acquire()).not.toBeNull();
    expect(pool.acquire()).toBeNull();
  });

  it('without idle-loop workers, the pool is its regular size', () => {
    const plain = new WorkerPool(1, 1, log);
    try {
      expect(plain.threads).toBe(1);
      expect(plain.acquire()).not.toBeNull();
      expect(plain.acquire()).toBeNull();
    } finally {
      void plain.close();
    }
  });
});

/**
 * INFERENCE_WORKER_NICE: the model threads (each worker, and the intra-op threads onnxruntime
 * starts inside it) run at the configured nice value, the event loop at the process's own, so a
 * saturated CPU serves the loop first. Read from the kernel's view of this process's threads.
 */
describe('WorkerPool thread priority', () => {
  const niceOf = (tid: string): number | null => {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      // Field 19 (nice); fields after the command name start at field 3.
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
    } catch {
      return null; // the thread ended between listing and reading
    }
  };
  const threadNices = (): number[] =>
    readdirSync('/proc/self/task')
      .map(niceOf)
      .filter((n): n is number => n !== null);

  (process.platform === 'linux' ? it : it.skip)('lowers the workers and the onnxruntime threads they start, not the event loop', async () => {
    const before = threadNices();
    expect(before.every((n) => n === 0)).toBe(true);
    const pool = new WorkerPool(2, 2, log, 0, undefined, 7);
    try {
      await pool.load({ key: 'fashion-cnn:1', path: path.join(__dirname, '../../models/fashion-cnn/1/model.onnx'), providers: ['cpu'] });
      const after = threadNices();
      const lowered = after.filter((n) => n === 7).length;
      // Two workers, each with one onnxruntime intra-op thread beside itself (intraOpThreads 2).
      expect(lowered).toBeGreaterThanOrEqual(4);
      // Everything else (the event loop, libuv's pool, V8's helpers) keeps the process's priority.
      expect(after.filter((n) => n !== 7 && n !== 0)).toEqual([]);
      expect(niceOf(String(process.pid))).toBe(0);
    } finally {
      await pool.close();
    }
  });
});
