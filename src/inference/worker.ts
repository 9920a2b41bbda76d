/**
 * One inference worker thread. It holds an onnxruntime session per loaded
 * model version and runs batches the pool sends it. onnxruntime-node's
 * `session.run()` executes synchronously on the calling thread, so running it
 * here keeps the gateway's event loop free. Tensor bytes arrive and leave as
 * transferred ArrayBuffers (no copies across threads).
 */
import { parentPort } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { createSessionWithFallback } from './providers';
import { BYTES_PER_ELEMENT, datatypeFromOrt } from './tensor';
import type { WorkerReply, WorkerRequest, WireTensor, TensorMetadata } from './worker-protocol';

if (!parentPort) throw new Error('worker.ts must run as a worker thread');
const port = parentPort;
const sessions = new Map<string, ort.InferenceSession>();

type TypedArrayOf = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Int16Array | Uint16Array | Uint32Array | BigUint64Array;

function typedArray(type: string, buffer: ArrayBuffer): TypedArrayOf {
  switch (type) {
    case 'float32':
      return new Float32Array(buffer);
    case 'float64':
      return new Float64Array(buffer);
    case 'int32':
      return new Int32Array(buffer);
    case 'int64':
      return new BigInt64Array(buffer);
    case 'int16':
      return new Int16Array(buffer);
    case 'int8':
      return new Int8Array(buffer);
    case 'float16':
    case 'uint16':
      return new Uint16Array(buffer);
    case 'uint32':
      return new Uint32Array(buffer);
    case 'uint64':
      return new BigUint64Array(buffer);
    case 'uint8':
    case 'bool':
      return new Uint8Array(buffer);
    default:
      throw new Error(`unsupported tensor type ${type}`);
  }
}

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
    const size = BYTES_PER_ELEMENT[datatype];
    feeds[m.name] = new ort.Tensor(m.type as ort.Tensor.Type, typedArray(m.type, new ArrayBuffer(count * size)) as ort.Tensor.DataType, dims);
  }
  return feeds;
}

function toWire(name: string, tensor: ort.Tensor): { wire: WireTensor; transfer: ArrayBuffer | null } {
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
        const started = performance.now();
        await session.run(warmupFeeds(session));
        const warmupMs = performance.now() - started;
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
        feeds[input.name] = new ort.Tensor(input.type as ort.Tensor.Type, typedArray(input.type, input.buffer) as ort.Tensor.DataType, input.dims);
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
