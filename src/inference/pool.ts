/**
 * A fixed pool of inference worker threads. Every worker holds a session for
 * every loaded model version (loads are broadcast), so any idle worker can
 * take any batch. We do not use piscina here: its tasks go to whichever worker
 * is free, and it has no way to broadcast a session load to every worker, which
 * is what keeping sessions resident needs. Each worker runs one batch at a
 * time; batchers ask for an idle worker and are woken when one frees up. A
 * worker that dies is replaced and its sessions are loaded again.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import type { Logger } from '../log/logger';
import type { ExecutionProviderName } from '../config';
import type { WarmupSample, WireTensor, WorkerReply, WorkerRequest, WorkerStart } from './worker-protocol';

type LoadReply = Extract<WorkerReply, { op: 'load' }>;
type RunReply = Extract<WorkerReply, { op: 'run' }>;

/** Distributive Omit, so each variant of the request union keeps its own fields. */
type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;

interface LoadSpec {
  key: string;
  path: string;
  providers: ExecutionProviderName[];
  /** Triton's model_warmup, run on every worker before the load resolves (absent: one run of zeros). */
  warmup?: WarmupSample[];
}

/**
 * Idle-loop workers take a batch only while the event loop was busy less than
 * this share of the last sample window (64-item requests at c=8 keep it ~50 %
 * busy, many small requests ~90 %): under batched traffic the loop's core
 * is mostly free, under many small requests it is not and the loop keeps it.
 */
const IDLE_LOOP_MAX_UTILIZATION = 0.75;
const UTILIZATION_WINDOW_MS = 50;

/** Least time between two restarts of the same worker slot. */
const RESPAWN_BACKOFF_MS = 2000;
/** How long close() lets a worker finish what it is doing before terminating it. */
const CLOSE_SETTLE_MS = 5000;

/** The compiled worker: next to this file in dist/, or dist/ when running from src/ under ts-jest. */
export function workerScript(): string {
  const beside = path.join(__dirname, 'worker.js');
  if (existsSync(beside)) return beside;
  const built = path.resolve(__dirname, '..', '..', 'dist', 'inference', 'worker.js');
  if (existsSync(built)) return built;
  throw new Error(`inference worker not found at ${beside} or ${built}: run "npm run build:ts"`);
}

class PoolWorker {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (reply: WorkerReply) => void; reject: (error: Error) => void }>();
  busy = false;
  alive = true;
  readonly thread: Worker;

  constructor(
    readonly index: number,
    script: string,
    onExit: (worker: PoolWorker, error: Error) => void,
    nice: number,
  ) {
    this.thread = new Worker(script, { workerData: { nice } satisfies WorkerStart });
    this.thread.on('message', (reply: WorkerReply) => {
      const waiter = this.pending.get(reply.id);
      if (!waiter) return;
      this.pending.delete(reply.id);
      waiter.resolve(reply);
      if (this.pending.size === 0) for (const settle of this.settledWaiters.splice(0)) settle();
    });
    const fail = (error: Error) => {
      if (!this.alive) return;
      this.alive = false;
      for (const waiter of this.pending.values()) waiter.reject(error);
      this.pending.clear();
      for (const settle of this.settledWaiters.splice(0)) settle();
      onExit(this, error);
    };
    this.thread.on('error', fail);
    this.thread.on('exit', (code) => fail(new Error(`inference worker exited with code ${code}`)));
  }

  private readonly settledWaiters: (() => void)[] = [];

  /**
   * Resolves when nothing sent to the worker is outstanding (or it died).
   * Terminating a thread while onnxruntime creates a session there aborts the
   * whole process ("terminate called after throwing Napi::Error").
   */
  settled(): Promise<void> {
    if (this.pending.size === 0 || !this.alive) return Promise.resolve();
    return new Promise((resolve) => this.settledWaiters.push(resolve));
  }

  send(request: WithoutId<WorkerRequest>, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
    if (!this.alive) return Promise.reject(new Error('inference worker is not running'));
    const id = this.nextId++;
    return new Promise<WorkerReply>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.thread.postMessage({ ...request, id }, transfer);
    });
  }
}

export class WorkerPool {
  private readonly workers: PoolWorker[] = [];
  private readonly loaded = new Map<string, LoadSpec>();
  private readonly idleListeners = new Set<() => void>();
  private closed = false;
  private readonly script: string;

  /** Every worker thread: `size` regular ones, then `idleLoopWorkers` that only take work while the event loop is mostly idle. */
  readonly threads: number;

  constructor(
    readonly size: number,
    private readonly intraOpThreads: number,
    private readonly log: Logger,
    readonly idleLoopWorkers = 0,
    /** The event loop's recent busy share (0..1); tests hand in a fixed one. */
    loopUtilization?: () => number,
    /** Nice value for the worker threads (and the onnxruntime threads they start): see INFERENCE_WORKER_NICE. */
    private readonly threadNice = 0,
  ) {
    if (loopUtilization) this.eventLoopUtilization = loopUtilization;
    this.script = workerScript();
    this.threads = size + idleLoopWorkers;
    for (let i = 0; i < this.threads; i += 1) this.workers.push(this.spawn(i));
  }

  private utilizationMark = performance.eventLoopUtilization();
  private utilizationAt = performance.now();
  // Idle until a window says otherwise: a fresh pool has done no work yet.
  private loopUtilization = 0;

  /** The event loop's busy share over the last completed window (at most one sample per window). */
  private eventLoopUtilization = (): number => {
    const now = performance.now();
    if (now - this.utilizationAt >= UTILIZATION_WINDOW_MS) {
      const mark = performance.eventLoopUtilization();
      this.loopUtilization = performance.eventLoopUtilization(mark, this.utilizationMark).utilization;
      this.utilizationMark = mark;
      this.utilizationAt = now;
    }
    return this.loopUtilization;
  };

  private readonly lastRespawn = new Map<number, number>();

  private spawn(index: number): PoolWorker {
    return new PoolWorker(index, this.script, (_dead, error) => {
      if (this.closed) return;
      // A worker that keeps dying (a model that crashes it) is restarted at most every few seconds.
      const since = Date.now() - (this.lastRespawn.get(index) ?? 0);
      const delay = since < RESPAWN_BACKOFF_MS ? RESPAWN_BACKOFF_MS : 0;
      this.log.error({ worker: index, err: error.message, restartInMs: delay }, 'inference worker died; starting a replacement');
      setTimeout(() => this.replace(index), delay).unref();
    }, this.threadNice);
  }

  private replace(index: number): void {
    if (this.closed) return;
    this.lastRespawn.set(index, Date.now());
    let replacement: PoolWorker;
    try {
      replacement = this.spawn(index);
    } catch (error) {
      this.log.error({ worker: index, err: String(error) }, 'inference worker could not be started; retrying');
      setTimeout(() => this.replace(index), RESPAWN_BACKOFF_MS).unref();
      return;
    }
    this.workers[index] = replacement;
    // Bring the replacement up to the same set of sessions before it takes work.
    replacement.busy = true;
    void Promise.all(
      [...this.loaded.values()].map(async (spec) => {
        const reply = await replacement.send({ op: 'load', ...spec, intraOpThreads: this.intraOpThreads });
        if (!reply.ok) throw new Error(reply.error);
      }),
    ).then(
      () => {
        replacement.busy = false;
        this.notifyIdle();
      },
      (e: unknown) => {
        // Without every session it would fail batches: keep it out of rotation and start over.
        this.log.error({ worker: index, err: String(e) }, 'replacement worker failed to load a model; replacing it again');
        void replacement.thread.terminate();
      },
    );
  }

  /** Loads (or replaces) a session on every worker; resolves with the first worker's report. */
  async load(spec: LoadSpec): Promise<LoadReply> {
    // The registry's background load pass may still be going when the gateway closes:
    // a load sent to a thread about to be terminated would abort the process.
    if (this.closed) throw new Error('inference pool is closed');
    // Registered first, so a worker replaced while this load runs loads it too.
    this.loaded.set(spec.key, spec);
    const results = await Promise.allSettled(this.workers.map((w) => w.send({ op: 'load', ...spec, intraOpThreads: this.intraOpThreads })));
    const problem = results
      .map((r) => (r.status === 'rejected' ? String(r.reason instanceof Error ? r.reason.message : r.reason) : r.value.ok ? null : r.value.error))
      .find((p) => p !== null);
    if (problem !== undefined) {
      // Release it wherever it did load (no session left behind on the survivors).
      await this.unload(spec.key);
      throw new Error(problem);
    }
    const replies = results.map((r) => (r as PromiseFulfilledResult<WorkerReply>).value as LoadReply);
    // Workers warm up in parallel: the load took as long as the slowest one.
    return { ...replies[0]!, warmupMs: Math.max(...replies.map((r) => r.warmupMs)) };
  }

  /** Releases a session on every live worker; never throws (a dead worker holds nothing). */
  async unload(key: string): Promise<void> {
    this.loaded.delete(key);
    await Promise.allSettled(this.workers.filter((w) => w.alive).map((w) => w.send({ op: 'unload', key })));
  }

  /** An idle worker, marked busy, or null when all are busy (idle-loop workers count only while the loop is mostly idle). */
  acquire(): PoolWorker | null {
    const worker = this.pick();
    if (!worker) return null;
    worker.busy = true;
    return worker;
  }

  /** Whether acquire() would hand out a worker now (nothing is marked). */
  canAcquire(): boolean {
    return this.pick() !== undefined;
  }

  private pick(): PoolWorker | undefined {
    let worker: PoolWorker | undefined;
    for (let i = 0; i < this.size; i += 1) {
      const w = this.workers[i]!;
      if (w.alive && !w.busy) {
        worker = w;
        break;
      }
    }
    if (!worker && this.idleLoopWorkers > 0 && this.eventLoopUtilization() < IDLE_LOOP_MAX_UTILIZATION) {
      for (let i = this.size; i < this.workers.length && !worker; i += 1) {
        const w = this.workers[i]!;
        if (w.alive && !w.busy) worker = w;
      }
    }
    return worker;
  }

  async run(worker: PoolWorker, key: string, inputs: WireTensor[], outputNames: string[] | null): Promise<RunReply> {
    try {
      const reply = await worker.send(
        { op: 'run', key, inputs, outputNames },
        inputs.map((i) => i.buffer),
      );
      if (!reply.ok) throw new Error(reply.error);
      return reply as RunReply;
    } finally {
      worker.busy = false;
      this.notifyIdle();
    }
  }

  /** Called whenever a worker becomes free; batchers use it to dispatch waiting requests. */
  onIdle(listener: () => void): () => void {
    this.idleListeners.add(listener);
    return () => this.idleListeners.delete(listener);
  }

  private wakeOffset = 0;

  /** Wakes batchers starting at a rotating position, so one busy model cannot starve the others of workers. */
  private notifyIdle(): void {
    const listeners = [...this.idleListeners];
    if (listeners.length === 0) return;
    this.wakeOffset = (this.wakeOffset + 1) % listeners.length;
    for (let i = 0; i < listeners.length; i += 1) listeners[(this.wakeOffset + i) % listeners.length]!();
  }

  get busyCount(): number {
    return this.workers.filter((w) => w.busy).length;
  }

  async close(): Promise<void> {
    this.closed = true;
    // Outstanding loads and runs settle first (bounded), then sessions are
    // released and threads go one at a time: terminating a thread while
    // onnxruntime works there, or several workers holding sessions at once,
    // can abort the process in onnxruntime-node's teardown ("terminate called
    // after throwing an instance of 'Napi::Error'", seen here with two workers).
    await Promise.all(
      this.workers.map(async (w) => {
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, CLOSE_SETTLE_MS);
        });
        await Promise.race([w.settled(), timeout]);
        clearTimeout(timer);
      }),
    );
    const keys = [...this.loaded.keys()];
    await Promise.allSettled(this.workers.filter((w) => w.alive).flatMap((w) => keys.map((key) => w.send({ op: 'unload', key }))));
    for (const w of this.workers) await w.thread.terminate();
  }
}

export type { PoolWorker };
