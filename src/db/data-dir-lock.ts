/**
 * Embedded mode is one process per DATA_DIR: PGlite is a single-process
 * Postgres, and two processes on one directory silently lose each other's
 * writes. Every process that opens the embedded database (gateway, CLI,
 * migrations) first takes `DATA_DIR/modelgate.lock`:
 *
 * - The file is created with O_CREAT|O_EXCL (`wx`), so of two processes
 *   racing for a free directory exactly one wins. It holds the holder's
 *   pid, host, role, start time and its kernel start tick (from
 *   /proc/<pid>/stat), so a recycled pid (a container restarted as pid 1)
 *   is not mistaken for the holder.
 * - A lock whose holder is dead (kill -9, OOM, power cut) is taken over at
 *   once: it is removed under a second O_EXCL file (`modelgate.lock.takeover`)
 *   after re-reading it, so two processes judging the same stale lock cannot
 *   both win, and a new holder's file is never removed.
 * - A holder on another host (a shared volume) cannot be checked: the lock
 *   is then treated as held, and the message says which file to delete.
 *
 * Why not proper-lockfile: its staleness is a timeout on an mtime the holder
 * must keep refreshing, so a crashed holder blocks the next start for that
 * long, and a holder whose event loop stalls past it loses the lock to a
 * second process. A pid check answers "is the holder alive" exactly, and
 * immediately, on one host, which is where an embedded DATA_DIR lives.
 */
import { readFileSync, unlinkSync } from 'node:fs';
import { mkdir, open, readFile, stat, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export const LOCK_FILE = 'modelgate.lock';
const TAKEOVER_FILE = `${LOCK_FILE}.takeover`;
/** A lock file still empty or unparseable after this long was left by a process that died creating it. */
const UNREADABLE_STALE_MS = 2_000;
/** A takeover guard older than this was left by a process that died mid-takeover. */
const TAKEOVER_STALE_MS = 5_000;

export type LockRole = 'gateway' | 'cli' | 'migrate';

export interface LockHolder {
  pid: number;
  host: string;
  role: LockRole;
  startedAt: string;
  /** The process's start time in clock ticks since boot (Linux /proc/<pid>/stat field 22), when known. */
  procStart: string | null;
}

export class DataDirLockedError extends Error {
  constructor(
    readonly dataDir: string,
    readonly holder: LockHolder,
    readonly lockFile: string,
  ) {
    const who = `${holder.role} pid ${holder.pid} on host ${holder.host}, started ${holder.startedAt}`;
    const sameHost = holder.host === os.hostname();
    super(
      `DATA_DIR ${dataDir} is in use by another modelgate process (${who}). ` +
        'The embedded database allows one process at a time: stop that process first, ' +
        'or run every process against a PostgreSQL server by setting DATABASE_URL. ' +
        (sameHost ? '' : `That process runs on another host and cannot be checked from here; if it is gone, delete ${lockFile}.`),
    );
    this.name = 'DataDirLockedError';
  }
}

/** The kernel start tick of a process, or null where /proc is not available. */
async function procStartOf(pid: number | 'self'): Promise<string | null> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at field 3; starttime is field 22.
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

function parseHolder(text: string): LockHolder | null {
  try {
    const raw = JSON.parse(text) as Partial<LockHolder>;
    if (typeof raw.pid !== 'number' || typeof raw.host !== 'string') return null;
    return {
      pid: raw.pid,
      host: raw.host,
      role: raw.role ?? 'gateway',
      startedAt: typeof raw.startedAt === 'string' ? raw.startedAt : 'unknown',
      procStart: typeof raw.procStart === 'string' ? raw.procStart : null,
    };
  } catch {
    return null;
  }
}

/** Whether the process a lock names still runs; a holder on another host counts as alive (it cannot be checked). */
async function holderAlive(holder: LockHolder): Promise<boolean> {
  if (holder.host !== os.hostname()) return true;
  try {
    process.kill(holder.pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    // EPERM: a process with that pid exists (another user's).
  }
  if (holder.procStart === null) return true;
  const now = await procStartOf(holder.pid);
  return now === null || now === holder.procStart;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export class DataDirLock {
  private released = false;
  private readonly onExit = () => this.releaseSync();

  private constructor(
    readonly file: string,
    private readonly content: string,
  ) {
    // A process.exit() elsewhere (a forced second signal) still frees the directory.
    process.once('exit', this.onExit);
  }

  /** The directory an embedded database's lock lives in: DATA_DIR (PGlite's files are in DATA_DIR/pglite). */
  static dirFor(pgliteDir: string): string {
    return path.dirname(pgliteDir);
  }

  /** Takes DATA_DIR's lock, taking over a dead holder's; throws DataDirLockedError while a live process holds it. */
  static async acquire(dataDir: string, role: LockRole): Promise<DataDirLock> {
    const file = path.join(dataDir, LOCK_FILE);
    const me: LockHolder = { pid: process.pid, host: os.hostname(), role, startedAt: new Date().toISOString(), procStart: await procStartOf('self') };
    const content = JSON.stringify(me) + '\n';
    await mkdir(dataDir, { recursive: true });
    for (let attempt = 0; attempt < 200; attempt += 1) {
      try {
        const handle = await open(file, 'wx');
        try {
          await handle.writeFile(content);
          await handle.sync();
        } finally {
          await handle.close();
        }
        return new DataDirLock(file, content);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const seen = await readLock(file);
      if (seen === null) continue; // removed meanwhile: try again
      if (seen.holder === null) {
        // Being written by its creator, or left empty by one that died doing so.
        if (Date.now() - seen.mtimeMs < UNREADABLE_STALE_MS) {
          await sleep(25);
          continue;
        }
      } else if (await holderAlive(seen.holder)) {
        throw new DataDirLockedError(dataDir, seen.holder, file);
      }
      await takeOver(dataDir, file, seen.text);
    }
    throw new Error(`could not take ${file} (it kept changing); is another modelgate process starting on DATA_DIR ${dataDir}?`);
  }

  /** Frees the directory (only if the lock file is still this process's). */
  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    process.removeListener('exit', this.onExit);
    const text = await readFile(this.file, 'utf8').catch(() => null);
    if (text === this.content) await unlink(this.file).catch(() => undefined);
  }

  private releaseSync(): void {
    if (this.released) return;
    this.released = true;
    try {
      if (readFileSync(this.file, 'utf8') === this.content) unlinkSync(this.file);
    } catch {
      // exiting anyway; the next start takes a dead holder's lock over
    }
  }
}

async function readLock(file: string): Promise<{ text: string; holder: LockHolder | null; mtimeMs: number } | null> {
  try {
    const [text, info] = await Promise.all([readFile(file, 'utf8'), stat(file)]);
    return { text, holder: parseHolder(text), mtimeMs: info.mtimeMs };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/**
 * Removes a stale lock, but only while holding the takeover guard and only
 * if the file still is the one judged stale: a process that took the lock
 * meanwhile keeps it. The caller then races for the free lock with O_EXCL.
 */
async function takeOver(dataDir: string, file: string, staleText: string): Promise<void> {
  const guard = path.join(dataDir, TAKEOVER_FILE);
  let handle;
  try {
    handle = await open(guard, 'wx');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const info = await stat(guard).catch(() => null);
    if (info && Date.now() - info.mtimeMs > TAKEOVER_STALE_MS) await unlink(guard).catch(() => undefined);
    await sleep(25);
    return;
  }
  try {
    await handle.close();
    const now = await readFile(file, 'utf8').catch(() => null);
    if (now === staleText) await unlink(file).catch(() => undefined);
  } finally {
    await unlink(guard).catch(() => undefined);
  }
}
