/**
 * Static checks on an uploaded ONNX file (issue #23 item 7), run inside the
 * inspection child process before onnxruntime sees the bytes: the file must
 * decode as a ModelProto (vendored proto/onnx/onnx.proto), no tensor anywhere
 * in the model (initializers, node attributes, subgraphs, training info) may
 * refer to external data (an upload is one file: any external path is outside
 * the model, and onnxruntime would read it relative to the cache directory),
 * and the graph's declared inputs and outputs must have sane sizes (the
 * warm-up allocates one item of each input).
 */
import path from 'node:path';
import { Root, type Type } from 'protobufjs';

/** proto/onnx at the repository root, from src/inference or dist/inference alike. */
const PROTO_FILE = path.resolve(__dirname, '..', '..', 'proto', 'onnx', 'onnx.proto');

/**
 * Elements of one declared input or output (symbolic dims counted as 1):
 * 2^28 (1 GiB of FP32) is far above any served tensor here, and low enough
 * that the warm-up of a graph declaring it cannot exhaust a replica.
 */
export const MAX_DECLARED_ELEMENTS = 2 ** 28;

/** Why an upload is refused; `extensions.reason` of MODEL_INVALID. */
export type InspectReason =
  | 'ONNX_UNREADABLE'
  | 'EXTERNAL_DATA'
  | 'DIMS_TOO_LARGE'
  | 'UNSUPPORTED_OP'
  | 'WARMUP_FAILED'
  | 'VALIDATION_TIMEOUT'
  | 'VALIDATION_MEMORY'
  | 'VALIDATION_CRASHED';

export class OnnxCheckError extends Error {
  constructor(
    readonly reason: InspectReason,
    message: string,
  ) {
    super(message);
  }
}

let modelType: Type | undefined;

function modelProto(): Type {
  modelType ??= new Root().loadSync(PROTO_FILE, { keepCase: true }).lookupType('onnx.ModelProto');
  return modelType;
}

type Obj = Record<string, unknown>;

function num(value: unknown): number {
  if (typeof value === 'number') return value;
  if (typeof value === 'string') return Number(value);
  if (value && typeof (value as { toNumber?: unknown }).toNumber === 'function') return (value as { toNumber(): number }).toNumber();
  return 0;
}

function list(value: unknown): Obj[] {
  return Array.isArray(value) ? (value as Obj[]) : [];
}

/** TensorProto.DataLocation.EXTERNAL */
const EXTERNAL = 1;

function checkTensor(tensor: Obj, where: string): void {
  const external = list(tensor['external_data']);
  if (num(tensor['data_location']) === EXTERNAL || external.length > 0) {
    const location = external.find((e) => e['key'] === 'location')?.['value'];
    throw new OnnxCheckError(
      'EXTERNAL_DATA',
      `tensor "${String(tensor['name'] ?? '')}" (${where}) refers to external data${typeof location === 'string' ? ` at "${location}"` : ''}: upload one self-contained model.onnx`,
    );
  }
}

function checkGraph(graph: Obj, where: string, depth: number): void {
  // Subgraphs nest (If/Loop/Scan); a graph nested this deep is an attack on the walker, not a model.
  if (depth > 64) throw new OnnxCheckError('ONNX_UNREADABLE', 'subgraphs nest more than 64 deep');
  for (const t of list(graph['initializer'])) checkTensor(t, `initializer of ${where}`);
  for (const s of list(graph['sparse_initializer'])) {
    if (s['values']) checkTensor(s['values'] as Obj, `sparse initializer of ${where}`);
    if (s['indices']) checkTensor(s['indices'] as Obj, `sparse initializer of ${where}`);
  }
  for (const node of list(graph['node'])) {
    const nodeWhere = `node "${String(node['name'] || node['op_type'] || '?')}" in ${where}`;
    for (const attr of list(node['attribute'])) {
      if (attr['t']) checkTensor(attr['t'] as Obj, nodeWhere);
      for (const t of list(attr['tensors'])) checkTensor(t, nodeWhere);
      if (attr['g']) checkGraph(attr['g'] as Obj, `subgraph of ${nodeWhere}`, depth + 1);
      for (const g of list(attr['graphs'])) checkGraph(g, `subgraph of ${nodeWhere}`, depth + 1);
    }
  }
}

function checkDims(values: Obj[], what: string): void {
  for (const value of values) {
    const shape = ((value['type'] as Obj | undefined)?.['tensor_type'] as Obj | undefined)?.['shape'] as Obj | undefined;
    let elements = 1;
    for (const dim of list(shape?.['dim'])) {
      const d = dim['dim_value'] === undefined || dim['dim_value'] === null ? 1 : num(dim['dim_value']);
      if (d < 0) throw new OnnxCheckError('DIMS_TOO_LARGE', `graph ${what} "${String(value['name'])}" declares a negative dimension ${d}`);
      elements *= Math.max(d, 1);
    }
    if (elements > MAX_DECLARED_ELEMENTS) {
      const dims = list(shape?.['dim']).map((dim) => (dim['dim_value'] !== undefined && dim['dim_value'] !== null ? String(num(dim['dim_value'])) : String(dim['dim_param'] ?? '?')));
      throw new OnnxCheckError('DIMS_TOO_LARGE', `graph ${what} "${String(value['name'])}" declares [${dims.join(',')}]: ${elements} elements per item, over ${MAX_DECLARED_ELEMENTS}`);
    }
  }
}

/** Decodes and checks; throws OnnxCheckError naming the reason. */
export function checkOnnx(bytes: Uint8Array): void {
  let model: Obj;
  try {
    model = modelProto().toObject(modelProto().decode(bytes), { longs: Number, defaults: false }) as Obj;
  } catch (error) {
    throw new OnnxCheckError('ONNX_UNREADABLE', `not a readable ONNX model: ${error instanceof Error ? error.message : String(error)}`);
  }
  const graph = model['graph'] as Obj | undefined;
  if (!graph) throw new OnnxCheckError('ONNX_UNREADABLE', 'not a readable ONNX model: it has no graph');
  checkGraph(graph, 'the main graph', 0);
  for (const info of list(model['training_info'])) {
    for (const key of ['initialization', 'algorithm']) if (info[key]) checkGraph(info[key] as Obj, `training ${key}`, 1);
  }
  for (const fn of list(model['functions'])) {
    for (const node of list(fn['node'])) for (const attr of list(node['attribute'])) if (attr['t']) checkTensor(attr['t'] as Obj, `function ${String(fn['name'])}`);
  }
  checkDims(list(graph['input']), 'input');
  checkDims(list(graph['output']), 'output');
}
