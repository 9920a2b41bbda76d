import { mkdtempSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DataDirLock, DataDirLockedError, LOCK_FILE } from './data-dir-lock';

function freshDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'mg-lock-'));
}

/** A pid no process has. */
function deadPid(): number {
  for (let pid = 4_194_000; ; pid -= 1) {
    try {
      process.kill(pid, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ESRCH') return pid;
    }
  }
}

describe('DataDirLock', () => {
  it('lets exactly one of two racing acquirers hold a free directory', async () => {
    const dir = freshDir();
    const results = await Promise.allSettled([DataDirLock.acquire(dir, 'gateway'), DataDirLock.acquire(dir, 'cli')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(refused?.reason).toBeInstanceOf(DataDirLockedError);
    expect((refused?.reason as DataDirLockedError).holder.pid).toBe(process.pid);
    for (const r of results) if (r.status === 'fulfilled') await r.value.release();
    expect(existsSync(path.join(dir, LOCK_FILE))).toBe(false);
  });

  it("takes over a dead holder's lock, and of two racing for it exactly one wins", async () => {
    const dir = freshDir();
    const stale = { pid: deadPid(), host: os.hostname(), role: 'gateway', startedAt: '2026-01-01T00:00:00.000Z', procStart: '1' };
    writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify(stale));
    const results = await Promise.allSettled([DataDirLock.acquire(dir, 'gateway'), DataDirLock.acquire(dir, 'gateway')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'rejected' && r.reason instanceof DataDirLockedError)).toHaveLength(1);
    expect(JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid });
    expect(existsSync(path.join(dir, `${LOCK_FILE}.takeover`))).toBe(false);
    for (const r of results) if (r.status === 'fulfilled') await r.value.release();
  });

  it('treats a recycled pid (same pid, another start time) as dead', async () => {
    const dir = freshDir();
    writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ pid: process.pid, host: os.hostname(), role: 'gateway', startedAt: 'x', procStart: '1' }));
    const lock = await DataDirLock.acquire(dir, 'cli');
    expect(JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid, role: 'cli' });
    await lock.release();
  });

  it('counts a holder on another host as alive and names the file to delete', async () => {
    const dir = freshDir();
    writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify({ pid: deadPid(), host: 'elsewhere.example', role: 'gateway', startedAt: 'x', procStart: null }));
    await expect(DataDirLock.acquire(dir, 'gateway')).rejects.toThrow(`on host elsewhere.example`);
    await expect(DataDirLock.acquire(dir, 'gateway')).rejects.toThrow(`delete ${path.join(dir, LOCK_FILE)}`);
  });
});
