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

export type WorkerRequest =
  | { id: number; op: 'load'; key: string; path: string; providers: ExecutionProviderName[]; intraOpThreads: number }
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
      inputs: TensorMetadata[];
      outputs: TensorMetadata[];
    }
  | { id: number; ok: true; op: 'unload' }
  | { id: number; ok: true; op: 'run'; outputs: WireTensor[]; computeMs: number }
  | { id: number; ok: false; error: string };
