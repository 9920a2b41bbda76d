/**
 * The local spool: where usage records wait, durably, while Postgres is
 * unavailable or the in-memory buffer is full. Append-only JSON lines, one
 * fsync per appended batch. The service rotates the active file before
 * replaying, writes the closed files to the database (idempotent on id) and
 * deletes each one only after its records are committed — a crash in between
 * replays the file again, and ON CONFLICT (id) DO NOTHING keeps counts exact.
 *
 * File names carry the writing process id: at start a process adopts only
 * files of processes that are no longer alive, never another live gateway's
 * active file. The directory is per host.
 */
import { appendFileSync, closeSync, fsyncSync, openSync } from 'node:fs';
import { mkdir, open, readdir, readFile, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log/logger';
import type { UsageEvent } from './usage-event';

const FILE_PATTERN = /^usage-(\d+)-(\d+)-(\d+)\.jsonl$/;

export function serializeEvent(event: UsageEvent): string {
  return JSON.stringify({ ...event, createdAt: event.createdAt.toISOString() });
}

export function parseEvent(line: string): UsageEvent {
  const raw = JSON.parse(line) as Omit<UsageEvent, 'createdAt'> & { createdAt: string };
  return { ...raw, createdAt: new Date(raw.createdAt) };
}

/** Files some Spool in this process still owns (its active file); never adopted by another. */
const OWNED_HERE = new Set<string>();

function pidAlive(pid: number): boolean {
  if (pid === process.pid) return false; // our own files: ownership is decided by OWNED_HERE
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class Spool {
  /** Closed files waiting for replay, oldest first, with their record counts. */
  private readonly closed: { file: string; records: number }[] = [];
  private active: { file: string; handle: FileHandle; records: number } | undefined;
  private seq = 0;
  private appending: Promise<void> = Promise.resolve();
  private initialised = false;

  constructor(
    readonly dir: string,
    private readonly log: Logger,
  ) {}

  /** Records on disk not yet written to the database. */
  get records(): number {
    return this.closed.reduce((n, f) => n + f.records, 0) + (this.active?.records ?? 0);
  }

  get isEmpty(): boolean {
    return this.records === 0;
  }

  /** Creates the directory and adopts files left by processes that are gone (a crash or an outage at exit). */
  async init(): Promise<void> {
    if (this.initialised) return;
    this.initialised = true;
    await mkdir(this.dir, { recursive: true });
    const names = (await readdir(this.dir)).filter((n) => FILE_PATTERN.test(n)).sort();
    for (const name of names) {
      const pid = Number(FILE_PATTERN.exec(name)?.[2]);
      const file = path.join(this.dir, name);
      if (pidAlive(pid) || OWNED_HERE.has(file)) continue;
      const records = (await readFile(file, 'utf8')).split('\n').filter((l) => l.trim() !== '').length;
      if (records === 0) {
        await unlink(file).catch(() => undefined);
        continue;
      }
      this.closed.push({ file, records });
    }
    if (this.closed.length > 0) this.log.warn({ files: this.closed.length, records: this.records, dir: this.dir }, 'usage spool has records from an earlier run; replaying when the database is up');
  }

  private nextName(): string {
    this.seq += 1;
    return path.join(this.dir, `usage-${String(Date.now()).padStart(15, '0')}-${process.pid}-${String(this.seq).padStart(9, '0')}.jsonl`);
  }

  /** Appends a batch and fsyncs it; appends are serialized. Resolves once the batch is durable. */
  append(events: UsageEvent[]): Promise<void> {
    if (events.length === 0) return this.appending;
    const text = events.map(serializeEvent).join('\n') + '\n';
    const run = async (): Promise<void> => {
      await this.init();
      if (!this.active) {
        const file = this.nextName();
        OWNED_HERE.add(file);
        this.active = { file, handle: await open(file, 'a'), records: 0 };
      }
      await this.active.handle.write(text);
      await this.active.handle.datasync();
      this.active.records += events.length;
    };
    const result = this.appending.then(run);
    // Keep the chain alive after a failure; the caller sees the rejection.
    this.appending = result.catch(() => undefined);
    return result;
  }

  /**
   * Last resort after close(): a synchronous durable append, so a record that
   * arrives during exit still reaches disk before the process ends.
   */
  appendSync(events: UsageEvent[]): void {
    const file = this.nextName();
    const fd = openSync(file, 'a');
    try {
      appendFileSync(fd, events.map(serializeEvent).join('\n') + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.closed.push({ file, records: events.length });
  }

  /** Sets aside records the database refuses for their data (never replayed; kept for a person to look at). */
  async reject(events: UsageEvent[]): Promise<void> {
    await this.init();
    const file = path.join(this.dir, `rejected-${process.pid}.jsonl`);
    const handle = await open(file, 'a');
    try {
      await handle.write(events.map(serializeEvent).join('\n') + '\n');
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  /** Closes the active file so new appends go to a fresh one; returns the files to replay, oldest first. */
  async rotate(): Promise<{ file: string; records: number }[]> {
    await this.closeActive();
    return [...this.closed];
  }

  /** Closes the file being appended to (after pending appends): kept for replay when it holds records, else deleted. */
  private async closeActive(): Promise<void> {
    await this.appending;
    if (!this.active) return;
    const { file, handle, records } = this.active;
    this.active = undefined;
    await handle.close();
    OWNED_HERE.delete(file);
    if (records > 0) this.closed.push({ file, records });
    else await unlink(file).catch(() => undefined);
  }

  /** Reads a spool file; a torn last line (crash mid-append, never fsynced) is skipped with a warning. */
  async read(file: string): Promise<UsageEvent[]> {
    const lines = (await readFile(file, 'utf8')).split('\n');
    const events: UsageEvent[] = [];
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        events.push(parseEvent(line));
      } catch {
        this.log.error({ file, line: i + 1 }, 'unreadable usage spool line skipped');
      }
    });
    return events;
  }

  /** Forgets and deletes a file whose records are all committed. */
  async remove(file: string): Promise<void> {
    const index = this.closed.findIndex((f) => f.file === file);
    if (index >= 0) this.closed.splice(index, 1);
    await unlink(file).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }

  async close(): Promise<void> {
    await this.closeActive();
  }
}
