/** Messages between the gateway and its inference worker threads. */
import type { ExecutionProviderName } from '../config';

export interface WireTensor {
  name: string;
  /** onnxruntime's type name (float32, int64, …). */
  type: string;
  dims: number[];
  buffer: ArrayBuffer;
}

export interface TensorMetadata {
  name: string;
  type: string;
  /** -1 for symbolic or unknown dimensions. */
  shape: number[];
}

/** One input of a warm-up sample: zeros and random values are made in the worker (nothing large crosses threads). */
export interface WarmupTensor {
  name: string;
  type: string;
  /** The full shape, batch axis included where the model batches. */
  dims: number[];
  fill: 'zero' | 'random' | 'given';
  /** One item's raw little-endian bytes (fill 'given'), repeated along the batch axis. */
  item?: ArrayBuffer;
}

/** Triton's model_warmup entry as a worker runs it: `count` runs of these inputs. */
export interface WarmupSample {
  name: string;
  count: number;
  inputs: WarmupTensor[];
}

/** What a worker thread is started with (its workerData). */
export interface WorkerStart {
  /** Nice value the thread sets on itself before any session exists (so onnxruntime's threads inherit it). */
  nice: number;
}

export type WorkerRequest =
  | {
      id: number;
      op: 'load';
      key: string;
      path: string;
      providers: ExecutionProviderName[];
      intraOpThreads: number;
      /** Absent or empty: one run of zeros (symbolic dimensions as 1). */
      warmup?: WarmupSample[];
    }
  | { id: number; op: 'unload'; key: string }
  | { id: number; op: 'run'; key: string; inputs: WireTensor[]; outputNames: string[] | null };

export type WorkerReply =
  | {
      id: number;
      ok: true;
      op: 'load';
      provider: ExecutionProviderName;
      fallbacks: { provider: ExecutionProviderName; reason: string }[];
      warmupMs: number;
      /** Warm-up runs done (every sample's count). */
      warmupRuns: number;
      inputs: TensorMetadata[];
      outputs: TensorMetadata[];
    }
  | { id: number; ok: true; op: 'unload' }
  | { id: number; ok: true; op: 'run'; outputs: WireTensor[]; computeMs: number }
  | { id: number; ok: false; error: string };
