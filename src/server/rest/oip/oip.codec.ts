/**
 * The Open Inference Protocol (KServe v2) REST body, both ways: an inference
 * request (JSON, or JSON followed by raw tensor bytes per Triton's binary
 * tensor data extension) into the pipeline's protocol-neutral request, and a
 * result into the OIP response. Pure functions: no I/O, easy to test against
 * malformed bodies. Content-Encoding is undone, and the body's size and JSON
 * value count bounded, while it is read (server/bounded-body.ts).
 */
import { isUtf8 } from 'node:buffer';
import { z } from 'zod';
import { BadInputError } from '../../../errors';
import type { InferRequest, InferResponse, InferTensorInput } from '../../../inference/inference.service';
import { DATATYPES, type Datatype } from '../../../inference/model-config';
import { decodeNumbers, decodeStrings } from '../../../inference/tensor';

/** The datatypes of the protocol; the engine runs the subset in DATATYPES. */
const OIP_DATATYPES = ['BOOL', 'UINT8', 'UINT16', 'UINT32', 'UINT64', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64', 'BYTES'] as const;

const parameters = z.record(z.unknown()).optional();

const requestSchema = z.object({
  id: z.string().optional(),
  parameters,
  inputs: z
    .array(
      z.object({
        name: z.string(),
        shape: z.array(z.number()),
        datatype: z.string(),
        parameters,
        data: z.unknown().optional(),
      }),
    )
    .min(1),
  outputs: z.array(z.object({ name: z.string(), parameters })).optional(),
});
type ParsedRequestBody = z.infer<typeof requestSchema>;

export interface OipRequest {
  request: InferRequest;
  /** Every output as binary unless an output says otherwise (`binary_data_output`). */
  binaryByDefault: boolean;
  /** Outputs the client named with an explicit `binary_data`. */
  explicit: Map<string, boolean>;
  /** The request's `parameters` as sent (the explain extension reads its own from here). */
  parameters?: Record<string, unknown>;
}

function fieldOf(path: (string | number)[]): string {
  return path.reduce<string>((out, part) => (typeof part === 'number' ? `${out}[${part}]` : out ? `${out}.${part}` : part), '');
}

/** Reads `Inference-Header-Content-Length`: null when absent (the whole body is JSON). */
export function headerLength(value: string | string[] | undefined): number | null {
  const raw = Array.isArray(value) ? value[0] : value;
  if (raw === undefined) return null;
  if (!/^\d{1,15}$/.test(raw.trim())) throw new BadInputError('Inference-Header-Content-Length must be a whole number of bytes', 'Inference-Header-Content-Length');
  return Number(raw.trim());
}

/** The element count a shape declares, or null when the shape is not one (the engine names that fault). */
function declaredCount(shape: number[]): number | null {
  let count = 1;
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) return null;
    count *= d;
    if (!Number.isSafeInteger(count)) return null;
  }
  return count;
}

/**
 * Flattens `data` (flat or nested, row major) into numbers; BOOL accepts
 * true/false. Stops at the first value past what the shape declares, so a
 * body never pays for walking more elements than its own shape allows.
 */
function flatten(data: unknown, field: string, shape: number[]): number[] {
  return flattenData(data, field, shape, (v) => (typeof v === 'number' ? v : typeof v === 'boolean' ? (v ? 1 : 0) : undefined), 'data must hold numbers (or booleans for BOOL), flat or nested in arrays');
}

/** BYTES `data`: JSON strings, flat or nested (row major), bounded by the shape as flatten is. */
function flattenStrings(data: unknown, field: string, shape: number[]): string[] {
  return flattenData(data, field, shape, (v) => (typeof v === 'string' ? v : undefined), 'BYTES data must hold strings, flat or nested in arrays');
}

/**
 * `data` flat or nested in arrays (row major, at most 32 deep), each leaf read
 * by `leaf` (undefined: not a value of this kind, refused with `refusal`);
 * stops as soon as it holds more elements than the shape declares.
 */
function flattenData<T>(data: unknown, field: string, shape: number[], leaf: (value: unknown) => T | undefined, refusal: string): T[] {
  const expected = declaredCount(shape);
  const out: T[] = [];
  const limit = expected ?? Number.POSITIVE_INFINITY;
  const visit = (value: unknown, depth: number): void => {
    const read = leaf(value);
    if (read !== undefined) out.push(read);
    else if (Array.isArray(value) && depth < 32) for (const v of value) visit(v, depth + 1);
    else throw new BadInputError(refusal, field);
    if (out.length > limit) throw new BadInputError(`data has more than ${expected} elements; shape [${shape.join(',')}] needs ${expected}`, field);
  };
  visit(data, 0);
  return out;
}

function boolParam(params: Record<string, unknown> | undefined, name: string, field: string): boolean | undefined {
  const value = params?.[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'boolean') throw new BadInputError(`${name} must be true or false`, `${field}.parameters.${name}`);
  return value;
}

function intParam(params: Record<string, unknown> | undefined, name: string, field: string): number | undefined {
  const value = params?.[name];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw new BadInputError(`${name} must be a whole number`, `${field}.parameters.${name}`);
  return value;
}

/**
 * The request's inputs, each from its JSON `data` (numbers or, for BYTES,
 * strings) or from its slice of the binary tail (`binary_data_size`, in input
 * order): every byte of the tail must belong to an input.
 */
function parseInputs(declared: ParsedRequestBody['inputs'], binary: Buffer): InferTensorInput[] {
  let offset = 0;
  const inputs: InferTensorInput[] = declared.map((input, i) => {
    const field = `inputs[${i}]`;
    if (!(OIP_DATATYPES as readonly string[]).includes(input.datatype)) {
      throw new BadInputError(`datatype "${input.datatype}" is not an Open Inference Protocol datatype`, `${field}.datatype`);
    }
    if (!(DATATYPES as readonly string[]).includes(input.datatype)) {
      throw new BadInputError(`datatype ${input.datatype} is not supported by this server (supported: ${DATATYPES.join(', ')})`, `${field}.datatype`);
    }
    const tensor: InferTensorInput = { name: input.name, datatype: input.datatype as Datatype, shape: input.shape };
    const size = intParam(input.parameters, 'binary_data_size', field);
    if (size !== undefined) {
      if (input.data !== undefined) throw new BadInputError('give either data or binary_data_size, not both', `${field}.data`);
      if (size < 0) throw new BadInputError('binary_data_size must not be negative', `${field}.parameters.binary_data_size`);
      if (offset + size > binary.length) {
        throw new BadInputError(
          `binary_data_size ${size} runs past the end of the body (${binary.length - offset} bytes of binary data left)`,
          `${field}.parameters.binary_data_size`,
        );
      }
      tensor.bytes = binary.subarray(offset, offset + size);
      offset += size;
    } else if (input.data === undefined) {
      throw new BadInputError('give data or parameters.binary_data_size', `${field}.data`);
    } else if (tensor.datatype === 'BYTES') {
      tensor.strings = flattenStrings(input.data, `${field}.data`, input.shape);
    } else {
      tensor.data = flatten(input.data, `${field}.data`, input.shape);
    }
    return tensor;
  });
  if (offset !== binary.length) {
    throw new BadInputError(`the body has ${binary.length - offset} bytes after the inputs' binary data (binary_data_size adds up to ${offset})`, 'body');
  }
  return inputs;
}

/**
 * Parses an inference request body. `header`: the JSON's length from
 * Inference-Header-Content-Length (null: the whole body); the bytes after it
 * are the inputs that carry `binary_data_size`, in input order, with nothing
 * missing and nothing left over.
 */
export function parseInferRequest(body: Buffer, header: number | null, target: { model: string; version: string | null }): OipRequest {
  if (header !== null && header > body.length) {
    throw new BadInputError(`Inference-Header-Content-Length is ${header} but the body has ${body.length} bytes`, 'Inference-Header-Content-Length');
  }
  const jsonLength = header ?? body.length;
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8', 0, jsonLength));
  } catch {
    throw new BadInputError('the inference request is not valid JSON', 'body');
  }
  const parsed = requestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new BadInputError(`${fieldOf(issue.path) || 'body'}: ${issue.message}`, fieldOf(issue.path) || 'body');
  }
  const body0 = parsed.data;
  // Strings reach the model as text: JSON that is not UTF-8 would reach it mangled (U+FFFD).
  // Checked only when a BYTES input is present, so numeric requests pay nothing for it.
  if (body0.inputs.some((i) => i.datatype === 'BYTES') && !isUtf8(body.subarray(0, jsonLength))) {
    throw new BadInputError('the JSON of a request with BYTES inputs must be UTF-8', 'body');
  }
  const inputs = parseInputs(body0.inputs, body.subarray(jsonLength));

  // Extensions a client may ask for that this server does not implement are refused, not ignored.
  for (const name of ['sequence_id', 'sequence_start', 'sequence_end']) {
    if (body0.parameters?.[name] !== undefined) throw new BadInputError(`parameter ${name}: the sequence extension is not supported`, `parameters.${name}`);
  }
  const binaryByDefault = boolParam(body0.parameters, 'binary_data_output', 'request') ?? false;
  const explicit = new Map<string, boolean>();
  body0.outputs?.forEach((o, i) => {
    const classes = o.parameters?.['classification'];
    if (classes !== undefined && classes !== 0) {
      throw new BadInputError('parameter classification: the classification extension is not supported (use the classify GraphQL mutation)', `outputs[${i}].parameters.classification`);
    }
    const flag = boolParam(o.parameters, 'binary_data', `outputs[${i}]`);
    if (flag !== undefined) explicit.set(o.name, flag);
  });
  const timeout = intParam(body0.parameters, 'timeout', 'request');
  const request: InferRequest = {
    model: target.model,
    version: target.version,
    id: body0.id ?? null,
    inputs,
    outputs: body0.outputs?.map((o) => o.name) ?? null,
    parameters: {
      priority: intParam(body0.parameters, 'priority', 'request') ?? null,
      // Triton's `timeout` is in microseconds; the engine counts milliseconds.
      timeoutMs: timeout === undefined ? null : Math.ceil(timeout / 1000),
    },
  };
  return { request, binaryByDefault, explicit, parameters: body0.parameters ?? {} };
}

export interface EncodedResponse {
  contentType: 'application/json' | 'application/octet-stream';
  /** Set when binary outputs follow the JSON. */
  headerLength: number | null;
  body: Buffer;
}

/** The OIP inference response: JSON outputs as flat `data`, binary ones as bytes after the JSON in output order. */
export function encodeInferResponse(parsed: OipRequest, result: InferResponse): EncodedResponse {
  const binaries: Buffer[] = [];
  const outputs = result.outputs.map((o) => {
    const binary = parsed.explicit.get(o.name) ?? parsed.binaryByDefault;
    if (binary) {
      binaries.push(o.bytes);
      return { name: o.name, datatype: o.datatype, shape: o.shape, parameters: { binary_data_size: o.bytes.length } };
    }
    return { name: o.name, datatype: o.datatype, shape: o.shape, data: o.datatype === 'BYTES' ? decodeStrings(o.bytes) : decodeNumbers(o.datatype, o.bytes) };
  });
  const json = Buffer.from(
    JSON.stringify({
      model_name: result.modelName,
      model_version: result.modelVersion,
      ...(result.id !== null ? { id: result.id } : {}),
      outputs,
    }),
  );
  if (binaries.length === 0) return { contentType: 'application/json', headerLength: null, body: json };
  return { contentType: 'application/octet-stream', headerLength: json.length, body: Buffer.concat([json, ...binaries]) };
}
