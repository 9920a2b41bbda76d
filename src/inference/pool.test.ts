/**
 * The idle-loop worker: it takes a batch while the event loop is mostly idle
 * (batched traffic leaves the loop's core free) and is held back while the
 * loop is busy, so many small requests keep the loop's core to themselves.
 * The loop's utilization is handed in, so the rule is tested without timing.
 */
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
