/** The suite's one wait: what it resolves with, and what it says when it gives up. */
import { until } from './until';

describe('until', () => {
  it('resolves with the first value that arrives, after reading as often as needed', async () => {
    let reads = 0;
    const value = await until('the third read', () => (++reads >= 3 ? { reads } : undefined), { everyMs: 1 });
    expect(value).toEqual({ reads: 3 });
    expect(reads).toBe(3);
  });

  it('waits for `accept` over any value and counts a throwing read as not yet', async () => {
    let reads = 0;
    const value = await until(
      'status 200',
      () => {
        reads += 1;
        if (reads === 1) throw new Error('connection refused');
        return { status: reads < 4 ? 503 : 200 };
      },
      { accept: (r) => r.status === 200, everyMs: 1 },
    );
    expect(value).toEqual({ status: 200 });
    expect(reads).toBe(4);
  });

  it('names what it waited for and the last value seen when it times out', async () => {
    await expect(until('the pending gauge to reach 8', () => ({ pending: 3 }), { accept: (r) => r.pending >= 8, timeoutMs: 30, everyMs: 5 })).rejects.toThrow(
      /timed out after \d+ ms \(\d+ reads\) waiting for the pending gauge to reach 8; last seen: \{ pending: 3 \}/,
    );
  });

  it('names the last error when every read threw', async () => {
    await expect(
      until(
        'nginx to answer',
        () => {
          throw new Error('ECONNREFUSED 127.0.0.1:1');
        },
        { timeoutMs: 20, everyMs: 5 },
      ),
    ).rejects.toThrow(/waiting for nginx to answer; last seen: Error: ECONNREFUSED 127\.0\.0\.1:1/);
  });

  it('gives up at the guard even while a read hangs', async () => {
    let reads = 0;
    await expect(
      until(
        '/readyz 200',
        () => {
          reads += 1;
          return reads === 1 ? { status: 503 } : new Promise<{ status: number }>(() => undefined);
        },
        { accept: (r) => r.status === 200, timeoutMs: 50, everyMs: 1 },
      ),
    ).rejects.toThrow(/\(1 reads, the last still unanswered\) waiting for \/readyz 200; last seen: \{ status: 503 \}/);
  });

  it('stops at once when failIf gives a reason', async () => {
    let reads = 0;
    await expect(
      until(
        'ready',
        () => {
          reads += 1;
          return false;
        },
        { failIf: () => (reads >= 2 ? 'the process exited (1)' : undefined), everyMs: 1 },
      ),
    ).rejects.toThrow(/gave up waiting for ready: the process exited \(1\); last seen: false/);
    expect(reads).toBe(2); // it did not read on until the guard
  });

  it('reports the time waited through onArrived', async () => {
    const waited: number[] = [];
    await until('a value', () => 1, { onArrived: (ms) => waited.push(ms) });
    expect(waited).toHaveLength(1);
    expect(waited[0]).toBeGreaterThanOrEqual(0);
  });
});
