/**
 * An inference request's tensors checked against the served config before
 * anything is queued (issue #4's list, in the README's order): names, shapes,
 * batch size, datatypes, the byte bounds, and each input's data in one of its
 * forms (numbers, base64, the binary extension's bytes, BYTES strings).
 * Nothing malformed reaches onnxruntime; every refusal names its field.
 */
import { BadInputError } from '../errors';
import type { BatchInput } from './batcher';
import type { Datatype } from './model-config';
import type { ServedConfig } from './registry';
import { BYTES_PER_ELEMENT, ORT_TYPE, TensorEncodingError, base64Length, base64LengthFits, checkBytes, checkStrings, decodeBase64, elementCount, encodeNumbers, encodeStrings } from './tensor';

export interface InferTensorInput {
  name: string;
  datatype: Datatype;
  shape: number[];
  data?: number[] | null;
  dataBase64?: string | null;
  /** Raw little-endian bytes (the OIP binary tensor extension); no base64 on that path. BYTES: length-prefixed elements. */
  bytes?: Buffer | null;
  /** BYTES elements as text (JSON strings); the other forms carry them length-prefixed. */
  strings?: string[] | null;
}

export interface InferRequest {
  model: string;
  version?: string | null;
  id?: string | null;
  inputs: InferTensorInput[];
  outputs?: string[] | null;
  parameters?: { timeoutMs?: number | null; priority?: number | null } | null;
}

/** The per-request bounds of the gateway's config (INFERENCE_MAX_ITEMS_PER_REQUEST, INFERENCE_MAX_BYTES_PER_REQUEST). */
export interface RequestBounds {
  maxItemsPerRequest: number;
  maxBytesPerRequest: number;
}

/** A request ready to queue: its item count, inputs in config order, and the outputs asked for (null: all). */
export interface ValidatedRequest {
  items: number;
  inputs: BatchInput[];
  outputNames: string[] | null;
}

/**
 * Every check of issue #4's list, naming the field; returns the request ready to queue.
 * Why over 80 lines: the checks run in the documented order on one input at a time; the list is the README's, line for line.
 */
export function validateTensors(request: InferRequest, config: ServedConfig, bounds: RequestBounds): ValidatedRequest {
  const batching = config.maxBatchSize > 0;
  if (request.id != null && request.id.length > 256) throw new BadInputError('id must be at most 256 characters', 'id');
  const seen = new Set<string>();
  request.inputs.forEach((input, i) => {
    if (seen.has(input.name)) throw new BadInputError(`input "${input.name}" is given twice`, `inputs[${i}].name`);
    seen.add(input.name);
    if (!config.inputs.some((spec) => spec.name === input.name)) {
      throw new BadInputError(`Model "${config.name}" has no input "${input.name}" (inputs: ${config.inputs.map((s) => s.name).join(', ')})`, `inputs[${i}].name`);
    }
  });
  const missing = config.inputs.filter((spec) => !seen.has(spec.name));
  if (missing.length > 0) throw new BadInputError(`missing input ${missing.map((m) => `"${m.name}"`).join(', ')}`, 'inputs');

  let items = 1;
  let totalBytes = 0;
  const byName = new Map<string, BatchInput>();
  request.inputs.forEach((input, i) => {
    const spec = config.inputs.find((s) => s.name === input.name)!;
    const field = `inputs[${i}]`;
    if (input.datatype !== spec.datatype) throw new BadInputError(`input "${input.name}" is ${spec.datatype}, got ${input.datatype}`, `${field}.datatype`);
    const expectedRank = spec.dims.length + (batching ? 1 : 0);
    const shown = `[${batching ? 'batch,' : ''}${spec.dims.join(',')}]`;
    if (input.shape.length !== expectedRank) throw new BadInputError(`input "${input.name}" has shape [${input.shape.join(',')}]; the model takes ${shown}`, `${field}.shape`);
    if (input.shape.some((d) => !Number.isInteger(d) || d < 1)) throw new BadInputError('shape dimensions must be positive whole numbers', `${field}.shape`);
    const itemShape = batching ? input.shape.slice(1) : input.shape;
    itemShape.forEach((d, k) => {
      const want = spec.dims[k]!;
      if (want !== -1 && d !== want) throw new BadInputError(`input "${input.name}" has shape [${input.shape.join(',')}]; the model takes ${shown}`, `${field}.shape`);
    });
    if (batching) {
      const n = input.shape[0]!;
      if (i === 0) items = n;
      else if (n !== items) throw new BadInputError(`every input must have the same batch size (${items}), got ${n}`, `${field}.shape`);
      const max = Math.min(config.maxBatchSize, bounds.maxItemsPerRequest);
      if (n > max) throw new BadInputError(`batch of ${n} exceeds the maximum of ${max} items per request`, `${field}.shape`);
    }
    const count = elementCount(input.shape);
    if (spec.datatype === 'BYTES') {
      const bytes = stringInput(input, count, field);
      totalBytes += bytes.length;
      if (totalBytes > bounds.maxBytesPerRequest) {
        throw new BadInputError(`inputs exceed ${bounds.maxBytesPerRequest} bytes (INFERENCE_MAX_BYTES_PER_REQUEST)`, `${field}.shape`);
      }
      byName.set(input.name, { name: input.name, type: ORT_TYPE.BYTES, itemShape, bytes });
      return;
    }
    if (input.strings !== undefined && input.strings !== null) throw new BadInputError(`input "${input.name}" is ${spec.datatype}: give numbers, not strings`, `${field}.data`);
    const byteLength = count * BYTES_PER_ELEMENT[spec.datatype];
    totalBytes += byteLength;
    if (totalBytes > bounds.maxBytesPerRequest) {
      throw new BadInputError(`inputs exceed ${bounds.maxBytesPerRequest} bytes (INFERENCE_MAX_BYTES_PER_REQUEST)`, `${field}.shape`);
    }
    const hasData = input.data !== undefined && input.data !== null;
    const hasBase64 = input.dataBase64 !== undefined && input.dataBase64 !== null;
    const hasBytes = input.bytes !== undefined && input.bytes !== null;
    if (Number(hasData) + Number(hasBase64) + Number(hasBytes) !== 1) {
      throw new BadInputError(hasBytes ? 'give either data or binary data, not both' : 'give exactly one of data or dataBase64', `${field}.data`);
    }
    let bytes: Buffer;
    if (hasData) {
      if (input.data!.length !== count) throw new BadInputError(`data has ${input.data!.length} elements; shape [${input.shape.join(',')}] needs ${count}`, `${field}.data`);
      try {
        bytes = encodeNumbers(spec.datatype, input.data!);
      } catch (error) {
        if (error instanceof TensorEncodingError) throw new BadInputError(`data ${error.message}`, `${field}.data`);
        throw error;
      }
    } else {
      const source = hasBytes ? 'binary data' : 'dataBase64';
      const where = hasBytes ? `${field}.parameters.binary_data_size` : `${field}.dataBase64`;
      // A dataBase64 whose length cannot fit the shape is refused before any decoding work.
      if (!hasBytes && !base64LengthFits(input.dataBase64!, byteLength)) {
        throw new BadInputError(`dataBase64 has ${input.dataBase64!.length} characters; shape [${input.shape.join(',')}] of ${spec.datatype} needs ${byteLength} bytes (${base64Length(byteLength)} characters)`, `${field}.dataBase64`);
      }
      const raw = hasBytes ? input.bytes! : decodeBase64(input.dataBase64!);
      if (!raw) throw new BadInputError('dataBase64 is not valid base64', `${field}.dataBase64`);
      if (raw.length !== byteLength) {
        throw new BadInputError(`${source} holds ${raw.length} bytes; shape [${input.shape.join(',')}] of ${spec.datatype} needs ${byteLength}`, where);
      }
      const problem = checkBytes(spec.datatype, raw);
      if (problem) throw new BadInputError(`${source} ${problem}`, where);
      bytes = raw;
    }
    byName.set(input.name, { name: input.name, type: ORT_TYPE[spec.datatype], itemShape, bytes });
  });

  let outputNames: string[] | null = null;
  if (request.outputs && request.outputs.length > 0) {
    request.outputs.forEach((name, i) => {
      if (!config.outputs.some((o) => o.name === name)) {
        throw new BadInputError(`Model "${config.name}" has no output "${name}" (outputs: ${config.outputs.map((o) => o.name).join(', ')})`, `outputs[${i}]`);
      }
    });
    outputNames = [...new Set(request.outputs)];
  }
  // Inputs in config order, so batches of different callers line up.
  return { items: batching ? items : 1, inputs: config.inputs.map((spec) => byName.get(spec.name)!), outputNames };
}

/**
 * A BYTES input as the engine holds it (length-prefixed, each element UTF-8):
 * from JSON strings, or from length-prefixed bytes (binary extension, gRPC,
 * base64) checked for framing, element count and UTF-8.
 */
function stringInput(input: InferTensorInput, count: number, field: string): Buffer {
  const forms = [input.strings, input.data, input.dataBase64, input.bytes].filter((f) => f !== undefined && f !== null).length;
  if (forms !== 1) throw new BadInputError('give exactly one of strings (data), dataBase64 or binary data', `${field}.data`);
  if (input.data) throw new BadInputError(`input "${input.name}" is BYTES: give strings, not numbers`, `${field}.data`);
  if (input.strings) {
    if (input.strings.length !== count) throw new BadInputError(`data has ${input.strings.length} elements; shape [${input.shape.join(',')}] needs ${count}`, `${field}.data`);
    const bytes = encodeStrings(input.strings);
    if (typeof bytes === 'number') throw new BadInputError(`data element ${bytes} is not well-formed Unicode (a lone surrogate)`, `${field}.data`);
    return bytes;
  }
  const where = input.bytes ? `${field}.parameters.binary_data_size` : `${field}.dataBase64`;
  const raw = input.bytes ?? decodeBase64(input.dataBase64!);
  if (!raw) throw new BadInputError('dataBase64 is not valid base64', where);
  const problem = checkStrings(raw, count);
  if (problem) throw new BadInputError(`${input.bytes ? 'binary data' : 'dataBase64'} ${problem}`, where);
  return raw;
}
