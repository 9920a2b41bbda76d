/**
 * The usage write-ahead log: every usage record is appended here, and
 * fsynced, before `record()` resolves, so an answered request's record
 * survives `kill -9` (and a power cut). The same files are the spool while
 * Postgres is down: one mechanism, not two.
 *
 * - Group commit: records arriving while a durable write is in flight
 *   wait for the next one, so the log does one synchronous-data write per
 *   group, however many requests that group holds. No fixed delay: under
 *   light load a group is the records of one event-loop turn, under heavy
 *   load it grows to whatever arrived during the previous fsync.
 * - Segments: JSON lines files `usage-<ms>-<pid>-<seq>.jsonl`, opened with
 *   O_DSYNC (a write returns once durable), grown in zero-filled steps that
 *   the records then overwrite (see GROW_BYTES). A full segment is deleted
 *   once all its records are committed to Postgres, the active one once it
 *   is also idle (a busy log does not pay a new file per flush). When some of its
 *   records are dropped from memory (the database is down, or the memory cap
 *   is reached) it is marked `onDisk` and replayed from the file later;
 *   replays insert idempotently (ON CONFLICT (id, createdAt) DO NOTHING: a replay carries the createdAt it was logged with), so a record
 *   written twice is counted once.
 * - After a failed write the segment is abandoned (never appended to again),
 *   so a torn tail can only hold records that were never acknowledged.
 * - All I/O is fs.promises on a FileHandle: nothing here blocks the event loop.
 *
 * File names carry the writing process id: at start a process adopts only
 * files of processes that are no longer alive, never another live gateway's.
 * The directory is per host.
 */
import { constants } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log/logger';
import { invalidReason, type UsageEvent, type UsageReservation } from './usage-event';

const FILE_PATTERN = /^usage-(\d+)-(\d+)-(\d+)\.jsonl$/;
/** A segment with unreadable lines is renamed with this prefix once its readable records are committed: kept for a person, never replayed. */
export const QUARANTINE_PREFIX = 'quarantined-';
/**
 * O_DSYNC: each write returns once its data (and the file size) is on the
 * device, so a group costs one write, not a write and an fdatasync — one
 * trip through libuv's thread pool instead of two.
 */
const SEGMENT_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_DSYNC;
/**
 * Segments grow in zero-filled steps and records overwrite the zeros: a
 * write that extends a file must also journal its new size (on ext4 that
 * waits for a journal commit shared with every other fsync on the disk),
 * an overwrite inside the file does not. Measured here: p50 0.13-0.17 ms
 * per durable write against 0.31-1.9 ms when appending. Readers stop at the
 * zero-filled tail: everything after the last non-NUL byte is unwritten space
 * (a line cut short just before it is a group torn by a crash, never
 * acknowledged). A NUL run before the tail is a gap (damage): skipped, and
 * the records after it are still read (parseSegment).
 */
const GROW_BYTES = 256 * 1024;
/** A committed active segment idle this long is deleted (a busy one is kept: a new file costs a directory fsync). */
const IDLE_RETIRE_MS = 1_000;

export function serializeEvent(event: UsageEvent): string {
  return JSON.stringify({ ...event, createdAt: event.createdAt.toISOString() });
}

/** A provisional line (UsageSink.reserve): the record as it will read if its call is served. */
function serializeProvisional(event: UsageEvent): string {
  return JSON.stringify({ ...event, createdAt: event.createdAt.toISOString(), provisional: true });
}

/**
 * A provisional record in the log. It counts as a record the process holds
 * (the segment's `inMemory`) from the moment it is durable until the call's
 * own record is durable (or stored in Postgres): only then may its segment
 * be deleted. If that record can be stored nowhere, the provisional one is
 * orphaned and replayed from the file in its stead.
 */
export class ProvisionalRecord implements UsageReservation {
  readonly durable: Promise<boolean>;
  /** The segment holding its line, once durable. */
  segment: WalSegment | undefined;
  /** Its call's own record is stored (or it was orphaned): nothing more to do. */
  settled = false;
  private settleDurable!: (durable: boolean) => void;

  constructor(readonly event: UsageEvent) {
    this.durable = new Promise<boolean>((resolve) => {
      this.settleDurable = resolve;
    });
  }

  /** @internal the log's write of its group finished. */
  wrote(segment: WalSegment | undefined): void {
    this.segment = segment;
    this.settleDurable(segment !== undefined);
  }
}

/**
 * One log line back to an event, validated as record() validates a new one
 * (a line can be damaged on disk, or written by an older build): throws,
 * naming what is wrong, for anything that is not a storable record.
 */
export function parseEvent(line: string): UsageEvent {
  return parseLine(line).event;
}

/** A log line: its record, and whether it is a provisional one (written before its call ran). */
function parseLine(line: string): { event: UsageEvent; provisional: boolean } {
  const raw: unknown = JSON.parse(line);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error('not a JSON object');
  const r = raw as Record<string, unknown>;
  const event = {
    id: r['id'],
    tenantId: r['tenantId'],
    apiKeyId: r['apiKeyId'],
    model: r['model'],
    modelVersion: r['modelVersion'],
    items: r['items'],
    computeUnits: r['computeUnits'],
    status: r['status'],
    latencyMs: r['latencyMs'],
    queueMs: r['queueMs'],
    computeMs: r['computeMs'],
    executionProvider: r['executionProvider'],
    // Lines written before the protocol was recorded replay as UNKNOWN; a present value is validated below.
    protocol: r['protocol'] === undefined ? 'UNKNOWN' : r['protocol'],
    createdAt: typeof r['createdAt'] === 'string' ? new Date(r['createdAt']) : new Date(Number.NaN),
    // Lines written before the response cache have no cacheHit.
    ...(r['cacheHit'] === undefined ? {} : { cacheHit: r['cacheHit'] }),
    // Lines written before trace ids were recorded (and untraced calls) have no traceId.
    ...(r['traceId'] === undefined ? {} : { traceId: r['traceId'] }),
  } as UsageEvent; // each field is checked by invalidReason just below
  const bad = invalidReason(event);
  if (bad) throw new Error(`invalid ${bad}`);
  return { event, provisional: r['provisional'] === true };
}

/** A line of a segment that is neither a record nor the torn tail. */
export interface UnreadableLine {
  /** Byte offset in the file. */
  offset: number;
  bytes: number;
  reason: string;
}

/** What a segment's file holds. */
export interface SegmentContents {
  events: UsageEvent[];
  /** Provisional records (UsageSink.reserve): replayed only where no record of their call follows (see UsageWal.read). */
  provisional: UsageEvent[];
  /** Lines that are not valid records (damage on disk, a bug): the segment is quarantined, not deleted. */
  unreadable: UnreadableLine[];
  /** Bytes inside the records part that are not records: NUL runs (a zeroed page) and unreadable lines. */
  skippedBytes: number;
  /** A last line cut short with no newline before the zero-filled tail: a group torn by a crash, never acknowledged. */
  tornTail: boolean;
}

const NL = 0x0a;
const NUL = 0x00;

/**
 * Splits a segment into records. The zero-filled space after the last
 * record is the tail (not counted); a NUL run before it is a gap (a page the
 * disk zeroed, say), treated as a line break so that every record outside it
 * is still read; the pieces of lines it cut are unreadable lines.
 */
export function parseSegment(data: Buffer): SegmentContents {
  let end = data.length;
  while (end > 0 && data[end - 1] === NUL) end -= 1;
  const contents: SegmentContents = { events: [], provisional: [], unreadable: [], skippedBytes: 0, tornTail: false };
  let start = 0;
  while (start < end) {
    const byte = data[start];
    if (byte === NL) {
      start += 1;
      continue;
    }
    if (byte === NUL) {
      contents.skippedBytes += 1;
      start += 1;
      continue;
    }
    let stop = start;
    while (stop < end && data[stop] !== NL && data[stop] !== NUL) stop += 1;
    const text = data.toString('utf8', start, stop);
    if (text.trim() !== '') {
      try {
        const line = parseLine(text);
        (line.provisional ? contents.provisional : contents.events).push(line.event);
      } catch (error) {
        if (stop === end) contents.tornTail = true;
        else {
          contents.unreadable.push({ offset: start, bytes: stop - start, reason: error instanceof Error ? error.message.slice(0, 120) : String(error) });
          contents.skippedBytes += stop - start;
        }
      }
    }
    start = stop;
  }
  return contents;
}

/** Files a UsageWal in this process still appends to; never adopted by another instance. */
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

export interface WalSegment {
  readonly file: string;
  /** When its oldest record still in the file was appended (about: set at creation and at truncation). */
  createdAt: number;
  /** Records durably in the file. */
  appended: number;
  /** Of those, records known to be committed to Postgres. */
  committed: number;
  /** Records of this segment the writer holds in memory (buffered or in flight). */
  inMemory: number;
  /** Some uncommitted records are only in the file: the file must be replayed. */
  onDisk: boolean;
  /** Removed from the log (replayed or retired); late completions on it are ignored. */
  gone: boolean;
  /** Provisional records in it whose call's own record is not stored yet (each also counted in inMemory). */
  openProvisionals: number;
  /** Left by a dead process (read at start): its provisional lines are replayed unless a record of their call is in the adopted files. */
  adopted: boolean;
  /** Ids of this process's provisional lines in it that a replay must store (their call's record has no line of its own, or none could be stored). */
  replayIds?: Set<string>;
}

export interface WalStats {
  /** Records in the log not yet committed to Postgres (the WAL lag, in records). */
  uncommitted: number;
  /** Of those, records only on disk, waiting for a replay (the spool depth). */
  spooled: number;
  segments: number;
  /** Age of the oldest segment holding uncommitted records (the WAL lag, in time); 0 when none. */
  oldestUncommittedMs: number;
  /** Records waiting for the next group commit, or in it. */
  pending: number;
  groupCommits: number;
}

export interface UsageWalOptions {
  dir: string;
  log: Logger;
  /** A segment takes at most this many records, then a new one starts. */
  segmentMaxRecords: number;
  /** Called once per group, after it is durable and before its record() promises resolve. */
  onDurable: (events: UsageEvent[], segment: WalSegment) => void;
  /** Called when a group could not be made durable here; its record() promises follow the returned promise. */
  onWriteFailed: (events: UsageEvent[], error: unknown) => Promise<void>;
}

interface Group {
  events: UsageEvent[];
  /** Per event: the provisional record it supersedes, if any. */
  supersedes: (ProvisionalRecord | undefined)[];
  provisionals: ProvisionalRecord[];
  text: string[];
  resolve: () => void;
  reject: (error: unknown) => void;
  done: Promise<void>;
}

interface Active {
  segment: WalSegment;
  handle: FileHandle;
  /** Where the next group goes (the end of the records). */
  offset: number;
  /** The file's size: records plus zero-filled space. */
  allocated: number;
}

export class UsageWal {
  readonly dir: string;
  /** Every segment with records not known to be committed, oldest first (the active one last). */
  private readonly segments: WalSegment[] = [];
  private active: Active | undefined;
  /** The group collecting appends for the next write. */
  private group: Group | undefined;
  /** The group being written. */
  private writing: Group | undefined;
  private committing = false;
  /** File operations (writes, rotations, closes) run one at a time, in order. */
  private io: Promise<void> = Promise.resolve();
  private seq = 0;
  private initialised = false;
  /** After close(): each group goes to a file that is closed at once and left for the next start. */
  private closed = false;
  private groupCommits = 0;
  private pendingRecords = 0;
  private lastAppendAt = 0;
  private readonly log: Logger;
  /** Ids with a final record in the adopted files: their provisional lines are not replayed. */
  private readonly adoptedFinalIds = new Set<string>();

  constructor(private readonly options: UsageWalOptions) {
    this.dir = options.dir;
    this.log = options.log;
  }

  /** Creates the directory and adopts segments left by processes that are gone (a crash, or an outage at exit). */
  async init(): Promise<void> {
    if (this.initialised) return;
    this.initialised = true;
    await mkdir(this.dir, { recursive: true });
    const names = (await readdir(this.dir)).filter((n) => FILE_PATTERN.test(n)).sort();
    for (const name of names) {
      const match = FILE_PATTERN.exec(name);
      const file = path.join(this.dir, name);
      if (pidAlive(Number(match?.[2])) || OWNED_HERE.has(file)) continue;
      const contents = parseSegment(await readFile(file));
      const records = contents.events.length + contents.provisional.length + contents.unreadable.length + (contents.tornTail ? 1 : 0);
      if (records === 0) {
        await unlink(file).catch(() => undefined);
        continue;
      }
      for (const event of contents.events) this.adoptedFinalIds.add(event.id);
      this.segments.push({ file, createdAt: Number(match?.[1]), appended: records, committed: 0, inMemory: 0, onDisk: true, gone: false, openProvisionals: 0, adopted: true });
    }
    const adopted = this.stats().spooled;
    if (adopted > 0) this.log.warn({ files: this.segments.length, records: adopted, dir: this.dir }, 'usage log has records from an earlier run; replaying them into the database');
  }

  stats(): WalStats {
    let uncommitted = 0;
    let spooled = 0;
    let oldest = Infinity;
    for (const s of this.segments) {
      const open = Math.max(0, s.appended - s.committed);
      uncommitted += open;
      if (s.onDisk) spooled += open;
      if (open > 0) oldest = Math.min(oldest, s.createdAt);
    }
    return {
      uncommitted,
      spooled,
      segments: this.segments.length,
      oldestUncommittedMs: Number.isFinite(oldest) ? Math.max(0, Date.now() - oldest) : 0,
      pending: this.pendingRecords,
      groupCommits: this.groupCommits,
    };
  }

  /** Whether some segment must be replayed from its file. */
  get needsReplay(): boolean {
    return this.segments.some((s) => s.onDisk);
  }

  /**
   * Resolves once the event is durable (or written by onWriteFailed); rejects when neither worked.
   * `supersedes`: the call's provisional record, released once this one is stored.
   */
  append(event: UsageEvent, supersedes?: ProvisionalRecord): Promise<void> {
    const text = serializeEvent(event);
    const group = this.openGroup();
    group.events.push(event);
    group.supersedes.push(supersedes);
    group.text.push(text);
    this.pendingRecords += 1;
    this.lastAppendAt = Date.now();
    return group.done;
  }

  /** Writes a provisional record (UsageSink.reserve) with the next group; its `durable` says whether that worked. */
  appendProvisional(event: UsageEvent): ProvisionalRecord {
    const record = new ProvisionalRecord(event);
    const group = this.openGroup();
    group.provisionals.push(record);
    group.text.push(serializeProvisional(event));
    this.lastAppendAt = Date.now();
    return record;
  }

  private openGroup(): Group {
    if (this.group) return this.group;
    let resolve!: () => void;
    let reject!: (error: unknown) => void;
    const done = new Promise<void>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const group: Group = { events: [], supersedes: [], provisionals: [], text: [], resolve, reject, done };
    this.group = group;
    if (!this.committing) this.startCommitting();
    return group;
  }

  /** The call's own record is stored: its provisional record no longer holds the segment. */
  private release(record: ProvisionalRecord): void {
    if (record.settled) return;
    record.settled = true;
    const segment = record.segment;
    if (!segment) return;
    segment.openProvisionals -= 1;
    this.committed(segment, 1);
  }

  /**
   * The call was served as reserved: its record takes the provisional line's
   * place as a record this process holds (the caller buffers it against the
   * same segment), with no line of its own. False when that cannot be: the
   * segment is replayed from its file (or gone), so the record must be
   * appended (it supersedes the line there).
   */
  handOver(record: ProvisionalRecord): boolean {
    const segment = record.segment;
    if (record.settled || !segment || segment.onDisk || segment.gone) return false;
    record.settled = true;
    segment.openProvisionals -= 1;
    segment.inMemory -= 1;
    return true;
  }

  /** A handed-over record was dropped from memory uncommitted: its provisional line in `segment` is replayed from the file (every attempt, until one succeeds). */
  replayProvisional(segment: WalSegment, id: string): void {
    (segment.replayIds ??= new Set()).add(id);
  }

  /** The call's own record could be stored nowhere: the provisional one is replayed from its file instead. */
  private orphan(record: ProvisionalRecord): void {
    if (record.settled) return;
    record.settled = true;
    const segment = record.segment;
    if (!segment) return;
    segment.openProvisionals -= 1;
    this.replayProvisional(segment, record.event.id);
    this.spilled(segment, 1);
  }

  /** Resolves once every record appended so far is durable (or failed); groups are written in order. */
  settle(): Promise<void> {
    const last = this.group ?? this.writing;
    return last ? last.done.catch(() => undefined) : Promise.resolve();
  }

  private startCommitting(): void {
    this.committing = true;
    // The first group collects what the rest of this event-loop turn appends.
    setImmediate(() => void this.commitLoop());
  }

  private exclusive<T>(run: () => Promise<T>): Promise<T> {
    const result = this.io.then(run);
    this.io = result.then(
      () => undefined,
      () => undefined,
    );
    return result;
  }

  private async commitLoop(): Promise<void> {
    try {
      while (this.group) {
        const group = this.group;
        this.group = undefined;
        this.writing = group;
        try {
          const segment = await this.exclusive(() => this.writeGroup(group));
          this.groupCommits += 1;
          for (const record of group.provisionals) {
            segment.inMemory += 1;
            segment.openProvisionals += 1;
            record.wrote(segment);
          }
          this.options.onDurable(group.events, segment);
          for (const record of group.supersedes) if (record) this.release(record);
          group.resolve();
        } catch (error) {
          // The file may now end in a torn line: never append to it again.
          await this.exclusive(() => this.closeActive());
          for (const record of group.provisionals) record.wrote(undefined);
          this.options.onWriteFailed(group.events, error).then(
            () => {
              for (const record of group.supersedes) if (record) this.release(record);
              group.resolve();
            },
            (failure: unknown) => {
              for (const record of group.supersedes) if (record) this.orphan(record);
              group.reject(failure);
            },
          );
        } finally {
          this.pendingRecords -= group.events.length;
          this.writing = undefined;
        }
      }
    } finally {
      this.committing = false;
    }
  }

  /** One durable (O_DSYNC) write for the whole group; a new segment's directory entry is synced too. */
  private async writeGroup(group: Group): Promise<WalSegment> {
    await this.init();
    if (this.active && this.active.segment.appended >= this.options.segmentMaxRecords) await this.closeActive();
    let fresh = false;
    if (!this.active) {
      this.active = await this.openSegment();
      fresh = true;
    }
    const active = this.active;
    const { segment, handle } = active;
    const data = Buffer.from(group.text.join('\n') + '\n');
    if (active.offset + data.length > active.allocated) {
      const grow = Math.max(GROW_BYTES, active.offset + data.length - active.allocated);
      await writeFully(handle, Buffer.alloc(grow), active.allocated, segment.file);
      active.allocated += grow;
    }
    await writeFully(handle, data, active.offset, segment.file);
    active.offset += data.length;
    if (fresh) await this.syncDirectory();
    segment.appended += group.events.length + group.provisionals.length;
    if (this.closed) {
      // Exit is in progress: nobody will write these to the database in this process.
      segment.onDisk = true;
      await this.closeActive();
    }
    return segment;
  }

  private async openSegment(): Promise<Active> {
    this.seq += 1;
    const now = Date.now();
    const file = path.join(this.dir, `usage-${String(now).padStart(15, '0')}-${process.pid}-${String(this.seq).padStart(9, '0')}.jsonl`);
    OWNED_HERE.add(file);
    let handle: FileHandle;
    try {
      handle = await open(file, SEGMENT_FLAGS, 0o644);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      // The directory was removed under us (a temp cleaner, an operator): make it again.
      await mkdir(this.dir, { recursive: true });
      handle = await open(file, SEGMENT_FLAGS, 0o644);
    }
    const segment: WalSegment = { file, createdAt: now, appended: 0, committed: 0, inMemory: 0, onDisk: false, gone: false, openProvisionals: 0, adopted: false };
    this.segments.push(segment);
    return { segment, handle, offset: 0, allocated: 0 };
  }

  /** A new file survives a power cut only once its directory entry is synced. */
  private async syncDirectory(): Promise<void> {
    const dir = await open(this.dir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }

  /** Stops appending to the active segment; it stays in the log until its records are committed. */
  private async closeActive(): Promise<void> {
    const active = this.active;
    if (!active) return;
    this.active = undefined;
    await active.handle.close().catch(() => undefined);
    OWNED_HERE.delete(active.segment.file);
    if (active.segment.appended === 0) await this.drop(active.segment);
  }

  /** Records of `segment` are committed to Postgres. */
  committed(segment: WalSegment, records: number): void {
    segment.committed += records;
    segment.inMemory -= records;
  }

  /** Records of `segment` were dropped from memory uncommitted: they are replayed from the file. */
  spilled(segment: WalSegment, records: number): void {
    segment.inMemory -= records;
    if (!segment.gone) segment.onDisk = true;
  }

  /**
   * The segments to replay, oldest first. An active segment marked onDisk is
   * closed first (new groups go to a new file), so every file read is complete.
   */
  async replayable(): Promise<WalSegment[]> {
    if (this.active?.segment.onDisk) {
      await this.exclusive(async () => {
        if (this.active?.segment.onDisk) await this.closeActive();
      });
    }
    const activeSegment = this.active?.segment;
    return this.segments.filter((s) => s.onDisk && s !== activeSegment);
  }

  /**
   * Reads a segment (parseSegment): its valid records, and what could not be
   * read, each logged. Null when the file is gone (another process replayed it).
   */
  async read(segment: WalSegment): Promise<SegmentContents | null> {
    let data: Buffer;
    try {
      data = await readFile(segment.file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    const contents = parseSegment(data);
    // A provisional record stands in for its call's record only where that record is missing:
    // in a dead process's files, when no file of it holds the call's record; in this process's, when it was orphaned.
    for (const event of contents.provisional) {
      const replay = segment.adopted ? !this.adoptedFinalIds.has(event.id) : (segment.replayIds?.has(event.id) ?? false);
      if (replay) contents.events.push(event);
    }
    if (contents.tornTail) this.log.warn({ file: segment.file }, 'usage log ends in a line torn by a crash (never acknowledged); skipped');
    if (contents.unreadable.length > 0 || contents.skippedBytes > 0) {
      this.log.warn(
        { file: segment.file, records: contents.events.length, unreadableLines: contents.unreadable.length, skippedBytes: contents.skippedBytes, lines: contents.unreadable.slice(0, 10) },
        'usage log segment has unreadable lines; its readable records are replayed and the file is quarantined',
      );
    }
    return contents;
  }

  /**
   * A replayed segment that holds unreadable lines: its readable records are
   * committed; the file is renamed (QUARANTINE_PREFIX) for a person to look
   * at rather than deleted, and never replayed again. Returns the new path.
   */
  async quarantine(segment: WalSegment): Promise<string> {
    segment.committed = segment.appended;
    segment.gone = true;
    const index = this.segments.indexOf(segment);
    if (index >= 0) this.segments.splice(index, 1);
    const target = path.join(this.dir, QUARANTINE_PREFIX + path.basename(segment.file));
    await rename(segment.file, target);
    await this.syncDirectory();
    return target;
  }

  /**
   * Deletes a replayed segment (all of its records are committed). One that
   * still holds provisional records of calls in flight stays until they are
   * released (retireCommitted deletes it then).
   */
  async replayed(segment: WalSegment): Promise<void> {
    if (segment.openProvisionals > 0) {
      segment.committed = segment.appended - segment.openProvisionals;
      segment.onDisk = false;
      return;
    }
    segment.committed = segment.appended;
    await this.drop(segment);
  }

  /**
   * Deletes every segment whose records are all committed. The active one is
   * retired too when nothing is being appended, so a quiet log holds no files.
   */
  async retireCommitted(): Promise<void> {
    await this.exclusive(async () => {
      // Only when idle: a busy log keeps appending to its file (committed records in it are
      // harmless, a replay inserts them as no-ops) rather than pay a new file per flush.
      const active = this.active;
      if (active && !this.group && this.isCommitted(active.segment) && Date.now() - this.lastAppendAt >= IDLE_RETIRE_MS) await this.closeActive();
      const activeSegment = this.active?.segment;
      for (const s of [...this.segments]) {
        if (s !== activeSegment && this.isCommitted(s)) await this.drop(s);
      }
    });
  }

  private isCommitted(s: WalSegment): boolean {
    return !s.onDisk && s.inMemory === 0 && s.committed >= s.appended;
  }

  private async drop(segment: WalSegment): Promise<void> {
    segment.gone = true;
    const index = this.segments.indexOf(segment);
    if (index >= 0) this.segments.splice(index, 1);
    await unlink(segment.file).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }

  /** Sets aside records the database refuses for their data (never replayed; kept for a person to look at). */
  async reject(events: UsageEvent[]): Promise<void> {
    await this.init();
    const handle = await open(path.join(this.dir, `rejected-${process.pid}.jsonl`), 'a');
    try {
      // As they are, even a createdAt that is no date (serializeEvent would throw on it).
      const lines = events.map((e) => JSON.stringify({ ...e, createdAt: e.createdAt instanceof Date && !Number.isNaN(e.createdAt.getTime()) ? e.createdAt.toISOString() : String(e.createdAt) }));
      await handle.write(lines.join('\n') + '\n');
      await handle.datasync();
    } finally {
      await handle.close();
    }
  }

  /**
   * Waits for pending groups, deletes what is committed and closes the file.
   * Later appends still become durable (each in a file left for the next start).
   */
  async close(): Promise<void> {
    await this.settle();
    this.closed = true;
    await this.exclusive(async () => {
      const active = this.active;
      if (active && !this.isCommitted(active.segment)) active.segment.onDisk = true;
      await this.closeActive();
    });
    await this.retireCommitted();
  }
}

/** One positional write of all of `data` (O_DSYNC: durable when it returns). */
async function writeFully(handle: FileHandle, data: Buffer, position: number, file: string): Promise<void> {
  const { bytesWritten } = await handle.write(data, 0, data.length, position);
  if (bytesWritten !== data.length) throw new Error(`short write to ${file} (${bytesWritten} of ${data.length} bytes)`);
}
