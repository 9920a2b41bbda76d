/**
 * The Open Inference Protocol's gRPC messages (Triton's grpc_service.proto),
 * both ways: a ModelInferRequest into the pipeline's protocol-neutral
 * request, and a result into a ModelInferResponse. Pure functions: no I/O.
 * Messages arrive decoded by @grpc/proto-loader with keepCase, int64 as
 * decimal strings, bytes as Buffers and defaults filled in (grpc.protos.ts).
 */
import { BadInputError } from '../../errors';
import type { InferRequest, InferResponse, InferTensorInput } from '../../inference/inference.service';
import { DATATYPES, type NumericDatatype } from '../../inference/model-config';
import { BYTES_PER_ELEMENT, joinLengthPrefixed } from '../../inference/tensor';

/** The datatypes of the protocol; the engine runs the subset in DATATYPES. */
const OIP_DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'] as const;

/** InferParameter: a oneof, named by `parameter_choice` (proto-loader's `oneofs`). */
export interface InferParameter {
  parameter_choice?: string;
  bool_param?: boolean;
  int64_param?: string;
  string_param?: string;
  double_param?: number;
  uint64_param?: string;
}

export interface InferTensorContents {
  bool_contents: boolean[];
  int_contents: number[];
  int64_contents: string[];
  uint_contents: number[];
  uint64_contents: string[];
  fp32_contents: number[];
  fp64_contents: number[];
  bytes_contents: Buffer[];
}

type ContentsField = keyof InferTensorContents;
const CONTENTS_FIELDS: ContentsField[] = ['bool_contents', 'int_contents', 'int64_contents', 'uint_contents', 'uint64_contents', 'fp32_contents', 'fp64_contents', 'bytes_contents'];

/** Which typed `contents` field carries each datatype (grpc_service.proto's table); FP16 travels only raw. */
const CONTENTS_FIELD: Record<NumericDatatype, ContentsField | null> = {
  BOOL: 'bool_contents',
  UINT8: 'uint_contents',
  UINT16: 'uint_contents',
  UINT32: 'uint_contents',
  UINT64: 'uint64_contents',
  INT8: 'int_contents',
  INT16: 'int_contents',
  INT32: 'int_contents',
  INT64: 'int64_contents',
  FP16: null,
  FP32: 'fp32_contents',
  FP64: 'fp64_contents',
};

export interface ModelInferRequestMessage {
  model_name: string;
  model_version: string;
  id: string;
  parameters: Record<string, InferParameter>;
  inputs: {
    name: string;
    datatype: string;
    shape: string[];
    parameters: Record<string, InferParameter>;
    contents: InferTensorContents | null;
  }[];
  outputs: { name: string; parameters: Record<string, InferParameter> }[];
  raw_input_contents: Buffer[];
}

export interface ModelInferResponseMessage {
  model_name: string;
  model_version: string;
  id: string;
  outputs: { name: string; datatype: string; shape: number[] }[];
  raw_output_contents: Buffer[];
}

const INT64_TEXT = /^-?\d{1,20}$/;

/** A shape dimension (int64 as text): a whole number the engine can compare; anything else is bad input. */
function dimension(text: string, field: string): number {
  if (!INT64_TEXT.test(text)) throw new BadInputError('shape dimensions must be whole numbers', field);
  const value = Number(text);
  if (!Number.isSafeInteger(value)) throw new BadInputError(`shape dimension ${text} is out of range`, field);
  return value;
}

/** The element count of a shape, refused when it overflows (it could never fit the message bound anyway). */
function elementsOf(shape: number[], field: string): number {
  let product = 1n;
  for (const d of shape) {
    if (d < 0) throw new BadInputError('shape dimensions must not be negative', field);
    product *= BigInt(d);
  }
  if (product > BigInt(Number.MAX_SAFE_INTEGER)) throw new BadInputError(`the shape's element count ${product} overflows`, field);
  return Number(product);
}

function int64Param(params: Record<string, InferParameter>, name: string, field: string): number | undefined {
  const p = params[name];
  if (p === undefined) return undefined;
  const text = p.parameter_choice === 'int64_param' ? p.int64_param : p.parameter_choice === 'uint64_param' ? p.uint64_param : undefined;
  const value = text === undefined ? NaN : Number(text);
  if (!Number.isSafeInteger(value)) throw new BadInputError(`${name} must be a whole number (int64_param)`, `${field}.${name}`);
  return value;
}

/** INT64 contents (decimal text) as little-endian bytes. */
function int64Bytes(values: string[], field: string): Buffer {
  const out = Buffer.allocUnsafe(values.length * 8);
  values.forEach((v, i) => {
    if (!INT64_TEXT.test(v)) throw new BadInputError('int64_contents must hold whole numbers', field);
    try {
      out.writeBigInt64LE(BigInt(v), i * 8);
    } catch {
      throw new BadInputError(`int64_contents[${i}] is out of INT64 range`, field);
    }
  });
  return out;
}

/** UINT64 contents (decimal text) as little-endian bytes. */
function uint64Bytes(values: string[], field: string): Buffer {
  const out = Buffer.allocUnsafe(values.length * 8);
  values.forEach((v, i) => {
    if (!/^\d{1,20}$/.test(v)) throw new BadInputError('uint64_contents must hold whole numbers', field);
    try {
      out.writeBigUInt64LE(BigInt(v), i * 8);
    } catch {
      throw new BadInputError(`uint64_contents[${i}] is out of UINT64 range`, field);
    }
  });
  return out;
}

/** One input's values: typed contents (as numbers for the engine to range-check, INT64 as bytes) or its raw bytes. */
function inputValues(
  input: ModelInferRequestMessage['inputs'][number],
  datatype: NumericDatatype,
  elements: number,
  raw: Buffer | undefined,
  field: string,
): Pick<InferTensorInput, 'data' | 'bytes'> {
  const used = CONTENTS_FIELDS.filter((f) => (input.contents?.[f].length ?? 0) > 0);
  if (raw !== undefined) {
    if (used.length > 0) throw new BadInputError('give either contents or raw_input_contents, not both', `${field}.contents`);
    const expected = elements * BYTES_PER_ELEMENT[datatype];
    if (raw.length !== expected) {
      throw new BadInputError(`raw_input_contents has ${raw.length} bytes; shape × ${datatype} takes ${expected}`, `${field}.raw_input_contents`);
    }
    return { bytes: raw };
  }
  const wanted = CONTENTS_FIELD[datatype];
  if (wanted === null) throw new BadInputError(`${datatype} tensors travel in raw_input_contents (the protocol has no typed contents for them)`, `${field}.contents`);
  const stray = used.find((f) => f !== wanted);
  if (stray) throw new BadInputError(`${datatype} values go in contents.${wanted}, not contents.${stray}`, `${field}.contents.${stray}`);
  const values = input.contents?.[wanted] ?? [];
  if (values.length !== elements) throw new BadInputError(`contents.${wanted} has ${values.length} values; the shape takes ${elements}`, `${field}.contents.${wanted}`);
  if (wanted === 'int64_contents') return { bytes: int64Bytes(values as string[], `${field}.contents.int64_contents`) };
  if (wanted === 'uint64_contents') return { bytes: uint64Bytes(values.map(String), `${field}.contents.uint64_contents`) };
  if (wanted === 'bool_contents') return { data: (values as boolean[]).map((b) => (b ? 1 : 0)) };
  return { data: values as number[] };
}

/**
 * A BYTES input as the protocol sends it: raw (length-prefixed elements, as
 * the engine holds them) or typed (one `bytes_contents` entry per element,
 * joined length-prefixed here). The engine checks framing, count and UTF-8.
 */
function bytesValues(input: ModelInferRequestMessage['inputs'][number], elements: number, raw: Buffer | undefined, field: string): Pick<InferTensorInput, 'bytes'> {
  const used = CONTENTS_FIELDS.filter((f) => (input.contents?.[f].length ?? 0) > 0);
  if (raw !== undefined) {
    if (used.length > 0) throw new BadInputError('give either contents or raw_input_contents, not both', `${field}.contents`);
    return { bytes: raw };
  }
  const stray = used.find((f) => f !== 'bytes_contents');
  if (stray) throw new BadInputError(`BYTES values go in contents.bytes_contents, not contents.${stray}`, `${field}.contents.${stray}`);
  const values = input.contents?.bytes_contents ?? [];
  if (values.length !== elements) throw new BadInputError(`contents.bytes_contents has ${values.length} values; the shape takes ${elements}`, `${field}.contents.bytes_contents`);
  return { bytes: joinLengthPrefixed(values) };
}

/**
 * Parses a ModelInferRequest. Inputs carry typed `contents` or, all of them,
 * `raw_input_contents` (one entry per input, in input order, each exactly
 * shape × datatype bytes). `deadlineMs`: what is left of the call's gRPC
 * deadline (null: none), which bounds the request's own `timeout`.
 */
export function parseModelInfer(message: ModelInferRequestMessage, deadlineMs: number | null): InferRequest {
  if (message.inputs.length === 0) throw new BadInputError('inputs must hold at least one tensor', 'inputs');
  const raw = message.raw_input_contents;
  if (raw.length > 0 && raw.length !== message.inputs.length) {
    throw new BadInputError(`raw_input_contents has ${raw.length} entries for ${message.inputs.length} inputs (one per input, or none)`, 'raw_input_contents');
  }
  const inputs: InferTensorInput[] = message.inputs.map((input, i) => {
    const field = `inputs[${i}]`;
    if (!(OIP_DATATYPES as readonly string[]).includes(input.datatype)) {
      throw new BadInputError(`datatype "${input.datatype}" is not an Open Inference Protocol datatype`, `${field}.datatype`);
    }
    const shape = input.shape.map((d) => dimension(d, `${field}.shape`));
    const elements = elementsOf(shape, `${field}.shape`);
    if (input.datatype === 'BYTES') return { name: input.name, datatype: 'BYTES', shape, ...bytesValues(input, elements, raw.length > 0 ? raw[i] : undefined, field) };
    if (!(DATATYPES as readonly string[]).includes(input.datatype)) {
      throw new BadInputError(`datatype ${input.datatype} is not supported by this server (supported: ${DATATYPES.join(', ')})`, `${field}.datatype`);
    }
    const datatype = input.datatype as NumericDatatype;
    return { name: input.name, datatype, shape, ...inputValues(input, datatype, elements, raw.length > 0 ? raw[i] : undefined, field) };
  });
  for (const name of ['sequence_id', 'sequence_start', 'sequence_end']) {
    if (message.parameters[name] !== undefined) throw new BadInputError(`parameter ${name}: the sequence extension is not supported`, `parameters.${name}`);
  }
  message.outputs.forEach((o, i) => {
    if (o.parameters['classification'] !== undefined) {
      throw new BadInputError('parameter classification: the classification extension is not supported (use the classify GraphQL mutation)', `outputs[${i}].parameters.classification`);
    }
  });
  const timeoutUs = int64Param(message.parameters, 'timeout', 'parameters');
  // Triton's `timeout` is in microseconds; the engine counts milliseconds. A deadline is at least 1 ms (the engine's floor).
  const timeouts = [timeoutUs === undefined ? null : Math.ceil(timeoutUs / 1000), deadlineMs === null ? null : Math.max(1, Math.floor(deadlineMs))].filter((t): t is number => t !== null);
  return {
    model: message.model_name,
    version: message.model_version === '' ? null : message.model_version,
    id: message.id === '' ? null : message.id,
    inputs,
    outputs: message.outputs.length > 0 ? message.outputs.map((o) => o.name) : null,
    parameters: {
      priority: int64Param(message.parameters, 'priority', 'parameters') ?? null,
      timeoutMs: timeouts.length > 0 ? Math.min(...timeouts) : null,
    },
  };
}

/** The ModelInferResponse: every output's bytes in raw_output_contents, as Triton's server answers. */
export function encodeModelInfer(result: InferResponse): ModelInferResponseMessage {
  return {
    model_name: result.modelName,
    model_version: result.modelVersion,
    id: result.id ?? '',
    outputs: result.outputs.map((o) => ({ name: o.name, datatype: o.datatype, shape: o.shape })),
    raw_output_contents: result.outputs.map((o) => o.bytes),
  };
}
