/**
 * The inspection child process (issue #23 item 7): forked by ModelInspector
 * for one uploaded file, it decodes and checks the ONNX statically, opens it
 * with onnxruntime from memory (never by path, so nothing beside the file is
 * read), runs one warm-up batch of zeros, and sends the graph's inputs and
 * outputs back. A crash, a hang or a memory blow-up here ends this process
 * only; the parent bounds its time and memory. It exits when the parent goes.
 */
import { readFile } from 'node:fs/promises';
import * as ort from 'onnxruntime-node';
import { checkOnnx, OnnxCheckError } from './onnx-checks';
import { datatypeFromOrt } from './tensor';
import { zeroData } from './ort-arrays';
import type { TensorMetadata } from './worker-protocol';

export interface InspectRequest {
  path: string;
}

export type InspectReply =
  | { ok: true; inputs: TensorMetadata[]; outputs: TensorMetadata[] }
  | { ok: false; reason: OnnxCheckError['reason']; message: string };

function metadataOf(list: readonly ort.InferenceSession.ValueMetadata[]): TensorMetadata[] {
  return list.map((m) =>
    m.isTensor ? { name: m.name, type: m.type, shape: m.shape.map((d) => (typeof d === 'number' && d > 0 ? d : -1)) } : { name: m.name, type: 'non-tensor', shape: [] },
  );
}

/** onnxruntime's words for an operator (or domain) it has no kernel for. */
const UNSUPPORTED = /No Op registered for|not a registered function\/op|Could not find an implementation|No opset import for domain|is not supported|Unsupported (?:op|operator)/i;

async function inspect(file: string): Promise<InspectReply> {
  const bytes = await readFile(file);
  checkOnnx(bytes);
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), { executionProviders: ['cpu'], intraOpNumThreads: 1, interOpNumThreads: 1 });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new OnnxCheckError(UNSUPPORTED.test(message) ? 'UNSUPPORTED_OP' : 'ONNX_UNREADABLE', `onnxruntime cannot open the weights: ${message}`);
  }
  const inputs = metadataOf(session.inputMetadata);
  const outputs = metadataOf(session.outputMetadata);
  try {
    const feeds: Record<string, ort.Tensor> = {};
    for (const m of inputs) {
      const datatype = datatypeFromOrt(m.type);
      if (!datatype) throw new Error(`input "${m.name}" has type ${m.type}, which modelgate does not serve`);
      const dims = m.shape.map((d) => (d > 0 ? d : 1));
      const count = dims.reduce((a, b) => a * b, 1);
      feeds[m.name] = new ort.Tensor(m.type as ort.Tensor.Type, zeroData(datatype, count) as ort.Tensor.DataType, dims);
    }
    await session.run(feeds);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new OnnxCheckError(UNSUPPORTED.test(message) ? 'UNSUPPORTED_OP' : 'WARMUP_FAILED', `a warm-up run on zeros failed: ${message}`);
  } finally {
    await session.release().catch(() => undefined);
  }
  return { ok: true, inputs, outputs };
}

if (process.send) {
  process.on('disconnect', () => process.exit(0));
  process.once('message', (request: InspectRequest) => {
    inspect(request.path)
      .catch((error: unknown): InspectReply => {
        if (error instanceof OnnxCheckError) return { ok: false, reason: error.reason, message: error.message };
        return { ok: false, reason: 'ONNX_UNREADABLE', message: error instanceof Error ? error.message : String(error) };
      })
      .then((reply) => process.send!(reply, () => process.exit(0)));
  });
}
