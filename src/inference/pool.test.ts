/**
 * The idle-loop worker: it takes a batch while the event loop is mostly idle
 * (batched traffic leaves the loop's core free) and is held back while the
 * loop is busy, so many small requests keep the loop's core to themselves.
 */
import { WorkerPool } from './pool';
import { createLogger } from '../log/logger';

const log = createLogger({ level: 'silent', pretty: false });
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Keeps the event loop busy, as a saturated gateway's loop is. */
function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // spin
  }
}

describe('WorkerPool idle-loop workers', () => {
  let pool: WorkerPool;
  beforeEach(() => {
    pool = new WorkerPool(1, 1, log, 1);
  });
  afterEach(() => pool.close());

  it('hands out the idle-loop worker once the regular ones are busy, while the loop is idle', async () => {
    expect(pool.threads).toBe(2);
    await pause(120);
    const first = pool.acquire();
    const second = pool.acquire();
    expect(first).not.toBeNull();
    expect(second).not.toBeNull();
    expect(second).not.toBe(first);
    expect(pool.acquire()).toBeNull();
  });

  it('keeps the idle-loop worker out of rotation while the loop is busy', async () => {
    await pause(120);
    busyFor(300);
    expect(pool.acquire()).not.toBeNull();
    expect(pool.acquire()).toBeNull();
  });
});
