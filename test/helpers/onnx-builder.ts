/**
 * Builds ONNX files for tests and benchmarks with protobufjs and the vendored
 * proto/onnx/onnx.proto (python's onnx package is not installed here): a
 * small served graph with an initializer of any size, and the hostile
 * variants issue #23 names (absurd dims, external data, an op onnxruntime
 * lacks).
 */
import path from 'node:path';
import { Root } from 'protobufjs';

const PROTO = path.resolve(__dirname, '..', '..', 'proto', 'onnx', 'onnx.proto');
const model = new Root().loadSync(PROTO, { keepCase: true }).lookupType('onnx.ModelProto');

const FLOAT = 1;

type Dim = number | string;

function valueInfo(name: string, dims: Dim[]) {
  return { name, type: { tensor_type: { elem_type: FLOAT, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } } };
}

export interface GraphOptions {
  /** Bytes of the initializer W (rounded down to whole floats, at least one). */
  initializerBytes?: number;
  /** Declared dims of input X and output Y (default ['batch', 4]). */
  dims?: Dim[];
  /** W stored outside the file at this path (data_location EXTERNAL). */
  externalPath?: string;
  /** An extra node of this op type (domain '') between the sum and the output. */
  unknownOp?: string;
  inputName?: string;
  /** Fills W (default: every element 0, so Y = X). */
  fill?: number;
}

/**
 * Y = X + ReduceSum(W): input X and output Y FP32 of `dims` (a dynamic first
 * axis: it batches), W an initializer of `initializerBytes`. With fill 0 the
 * model answers its input.
 */
export function buildOnnx(options: GraphOptions = {}): Buffer {
  const floats = Math.max(1, Math.floor((options.initializerBytes ?? 4) / 4));
  const dims = options.dims ?? ['batch', 4];
  const input = options.inputName ?? 'X';
  const raw = Buffer.alloc(floats * 4);
  if (options.fill) for (let i = 0; i < floats; i++) raw.writeFloatLE(options.fill, i * 4);
  const initializer = options.externalPath
    ? { name: 'W', data_type: FLOAT, dims: [floats], data_location: 1, external_data: [{ key: 'location', value: options.externalPath }, { key: 'length', value: String(floats * 4) }] }
    : { name: 'W', data_type: FLOAT, dims: [floats], raw_data: raw };
  const nodes: Record<string, unknown>[] = [
    { op_type: 'ReduceSum', input: ['W'], output: ['S'], name: 'sum', attribute: [{ name: 'keepdims', type: 2, i: 1 }] },
    { op_type: 'Add', input: [input, options.unknownOp ? 'S2' : 'S'], output: ['Y'], name: 'add' },
  ];
  if (options.unknownOp) nodes.splice(1, 0, { op_type: options.unknownOp, input: ['S'], output: ['S2'], name: 'mystery' });
  const message = model.fromObject({
    ir_version: 8,
    producer_name: 'modelgate-tests',
    opset_import: [{ domain: '', version: 13 }],
    graph: {
      name: 'generated',
      node: nodes,
      initializer: [initializer],
      input: [valueInfo(input, dims)],
      output: [valueInfo('Y', dims)],
    },
  });
  return Buffer.from(model.encode(message).finish());
}

/** modelgate's config.json form for a generated graph (batching, X/Y FP32 [4]). */
export function generatedConfig(name: string, options: { input?: string; dims?: number[] } = {}): Record<string, unknown> {
  return {
    name,
    backend: 'onnxruntime',
    max_batch_size: 16,
    input: [{ name: options.input ?? 'X', data_type: 'TYPE_FP32', dims: options.dims ?? [4] }],
    output: [{ name: 'Y', data_type: 'TYPE_FP32', dims: options.dims ?? [4] }],
  };
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 127) {
    out.push((n & 127) | 128);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Buffer.from(out);
}

/** A length-delimited protobuf field. */
function field(number: number, payload: Buffer): Buffer {
  return Buffer.concat([varint((number << 3) | 2), varint(payload.length), payload]);
}

/**
 * The generated graph plus an unused INT64 initializer of `values` zeros
 * stored as packed int64_data: one byte each in the file, one decoded value
 * each in whatever parses it (protobuf merges the appended graph into the
 * first). Encoded by hand so the test never holds the values itself.
 */
export function buildInt64Flood(values: number): Buffer {
  const INT64 = 7;
  const tensor = Buffer.concat([
    Buffer.concat([varint((1 << 3) | 0), varint(values)]), // dims: [values]
    Buffer.concat([varint((2 << 3) | 0), varint(INT64)]), // data_type
    field(7, Buffer.alloc(values)), // int64_data, packed zeros
    field(8, Buffer.from('flood')), // name
  ]);
  return Buffer.concat([buildOnnx(), field(7, field(5, tensor))]); // ModelProto.graph.initializer
}
