/**
 * One inference worker thread. It holds an onnxruntime session per loaded
 * model version and runs batches the pool sends it. onnxruntime-node's
 * `session.run()` executes synchronously on the calling thread, so running it
 * here keeps the gateway's event loop free. Tensor bytes arrive and leave as
 * transferred ArrayBuffers (no copies across threads).
 */
import os from 'node:os';
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { createSessionWithFallback } from './providers';
import { BYTES_PER_ELEMENT, datatypeFromOrt, joinLengthPrefixed } from './tensor';
import { ortData, typedArray, zeroData, type TypedArrayOf } from './ort-arrays';
import type { WarmupSample, WorkerReply, WorkerRequest, WorkerStart, WireTensor, TensorMetadata } from './worker-protocol';

if (!parentPort) throw new Error('worker.ts must run as a worker thread');
const port = parentPort;
lowerThreadPriority((workerData as WorkerStart | undefined)?.nice ?? 0);

/**
 * Makes this thread yield the CPU to the event loop when both want it. On Linux a nice value
 * belongs to a thread (setpriority on id 0 changes the caller only), and threads onnxruntime
 * starts later inherit it. Elsewhere the same call would renice the whole process, so it is
 * Linux only. Raising nice needs no privilege; a refusal leaves the thread at its priority.
 */
function lowerThreadPriority(nice: number): void {
  if (nice <= 0 || process.platform !== 'linux') return;
  try {
    os.setPriority(0, nice);
  } catch {
    // A sandbox that forbids setpriority: the thread keeps the process's priority.
  }
}
const sessions = new Map<string, ort.InferenceSession>();

function metadataOf(list: readonly ort.InferenceSession.ValueMetadata[]): TensorMetadata[] {
  return list.map((m) =>
    m.isTensor
      ? { name: m.name, type: m.type, shape: m.shape.map((d) => (typeof d === 'number' && d > 0 ? d : -1)) }
      : { name: m.name, type: 'non-tensor', shape: [] },
  );
}

/** A zero tensor for each input (symbolic dimensions as 1): the warm-up run. */
function warmupFeeds(session: ort.InferenceSession): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const m of metadataOf(session.inputMetadata)) {
    const dims = m.shape.map((d) => (d > 0 ? d : 1));
    const count = dims.reduce((a, b) => a * b, 1);
    const datatype = datatypeFromOrt(m.type);
    if (!datatype) throw new Error(`input "${m.name}" has type ${m.type}, which modelgate does not serve`);
    feeds[m.name] = new ort.Tensor(m.type as ort.Tensor.Type, zeroData(datatype, count) as ort.Tensor.DataType, dims);
  }
  return feeds;
}

/** A configured warm-up sample's feeds (Triton's zero_data, random_data, or given data). */
function sampleFeeds(sample: WarmupSample): Record<string, ort.Tensor> {
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of sample.inputs) {
    const datatype = datatypeFromOrt(input.type);
    if (!datatype) throw new Error(`warm-up input "${input.name}" has type ${input.type}, which modelgate does not serve`);
    const count = input.dims.reduce((a, b) => a * b, 1);
    if (datatype === 'BYTES') {
      // The registry lets a BYTES input warm up on zero_data only: empty strings.
      feeds[input.name] = new ort.Tensor('string', zeroData(datatype, count) as string[], input.dims);
      continue;
    }
    const bytes = new Uint8Array(count * BYTES_PER_ELEMENT[datatype]);
    if (input.fill === 'random') {
      fillRandom(typedArray(input.type, bytes.buffer));
    } else if (input.fill === 'given' && input.item) {
      const item = new Uint8Array(input.item);
      for (let offset = 0; offset + item.length <= bytes.length; offset += item.length) bytes.set(item, offset);
    }
    feeds[input.name] = new ort.Tensor(input.type as ort.Tensor.Type, typedArray(input.type, bytes.buffer) as ort.Tensor.DataType, input.dims);
  }
  return feeds;
}

/** Values a model can take whatever its input means: floats in [0, 1), integers 0..9, booleans. */
function fillRandom(array: TypedArrayOf): void {
  if (array instanceof Float32Array || array instanceof Float64Array) {
    for (let i = 0; i < array.length; i += 1) array[i] = Math.random();
  } else if (array instanceof BigInt64Array || array instanceof BigUint64Array) {
    for (let i = 0; i < array.length; i += 1) array[i] = BigInt(Math.floor(Math.random() * 10));
  } else {
    // float16 travels as Uint16 bits: leave it zero rather than write arbitrary bit patterns (NaNs).
    if (array instanceof Uint16Array) return;
    for (let i = 0; i < array.length; i += 1) array[i] = Math.floor(Math.random() * (array instanceof Uint8Array ? 2 : 10));
  }
}

/** Runs the warm-up (the configured samples, else one run of zeros); how long it took and how many runs. */
async function warmUp(session: ort.InferenceSession, samples: WarmupSample[] | undefined): Promise<{ warmupMs: number; warmupRuns: number }> {
  const started = performance.now();
  let runs = 0;
  if (!samples || samples.length === 0) {
    await session.run(warmupFeeds(session));
    runs = 1;
  } else {
    for (const sample of samples) {
      const feeds = sampleFeeds(sample);
      for (let i = 0; i < Math.max(sample.count, 1); i += 1) {
        try {
          await session.run(feeds);
        } catch (error) {
          throw new Error(`sample "${sample.name}": ${error instanceof Error ? error.message : String(error)}`);
        }
        runs += 1;
      }
    }
  }
  return { warmupMs: performance.now() - started, warmupRuns: runs };
}

function toWire(name: string, tensor: ort.Tensor): { wire: WireTensor; transfer: ArrayBuffer | null } {
  if (tensor.type === 'string') {
    // BYTES leave length-prefixed, as the engine holds them on the main thread.
    const joined = joinLengthPrefixed((tensor.data as string[]).map((s) => Buffer.from(s, 'utf8')));
    const buffer = joined.buffer.slice(joined.byteOffset, joined.byteOffset + joined.byteLength) as ArrayBuffer;
    return { wire: { name, type: tensor.type, dims: [...tensor.dims], buffer }, transfer: buffer };
  }
  const data = tensor.data as TypedArrayOf;
  let buffer = data.buffer as ArrayBuffer;
  let transfer: ArrayBuffer | null = buffer;
  if (data.byteOffset !== 0 || data.byteLength !== buffer.byteLength) {
    buffer = buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
    transfer = buffer;
  }
  return { wire: { name, type: tensor.type, dims: [...tensor.dims], buffer }, transfer };
}

async function handle(message: WorkerRequest): Promise<{ reply: WorkerReply; transfer: ArrayBuffer[] }> {
  switch (message.op) {
    case 'load': {
      const previous = sessions.get(message.key);
      const { session, provider, fallbacks } = await createSessionWithFallback(message.path, message.providers, {
        intraOpThreads: message.intraOpThreads,
      });
      try {
        const { warmupMs, warmupRuns } = await warmUp(session, message.warmup);
        sessions.set(message.key, session);
        if (previous) await previous.release();
        return {
          reply: {
            id: message.id,
            ok: true,
            op: 'load',
            provider,
            fallbacks,
            warmupMs,
            warmupRuns,
            inputs: metadataOf(session.inputMetadata),
            outputs: metadataOf(session.outputMetadata),
          },
          transfer: [],
        };
      } catch (error) {
        await session.release();
        throw new Error(`warm-up run failed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    case 'unload': {
      const session = sessions.get(message.key);
      sessions.delete(message.key);
      if (session) await session.release();
      return { reply: { id: message.id, ok: true, op: 'unload' }, transfer: [] };
    }
    case 'run': {
      const session = sessions.get(message.key);
      if (!session) throw new Error(`model ${message.key} is not loaded in this worker`);
      const feeds: Record<string, ort.Tensor> = {};
      for (const input of message.inputs) {
        feeds[input.name] = new ort.Tensor(input.type as ort.Tensor.Type, ortData(input.type, input.buffer) as ort.Tensor.DataType, input.dims);
      }
      const started = performance.now();
      const results = message.outputNames ? await session.run(feeds, message.outputNames) : await session.run(feeds);
      const computeMs = performance.now() - started;
      const outputs: WireTensor[] = [];
      const transfer: ArrayBuffer[] = [];
      for (const [name, tensor] of Object.entries(results)) {
        const { wire, transfer: t } = toWire(name, tensor);
        outputs.push(wire);
        if (t) transfer.push(t);
      }
      return { reply: { id: message.id, ok: true, op: 'run', outputs, computeMs }, transfer };
    }
  }
}

port.on('message', (message: WorkerRequest) => {
  handle(message).then(
    ({ reply, transfer }) => {
      try {
        port.postMessage(reply, transfer);
      } catch {
        // A buffer owned by native memory cannot be detached: send a copy instead.
        port.postMessage(reply);
      }
    },
    (error: unknown) => {
      const reply: WorkerReply = { id: message.id, ok: false, error: error instanceof Error ? error.message : String(error) };
      port.postMessage(reply);
    },
  );
});
