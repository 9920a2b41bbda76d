/**
 * Tensor bytes and datatypes. The main thread only ever holds raw
 * little-endian bytes (Buffers); typed arrays are made in the worker where
 * onnxruntime runs. JSON `data` arrays are encoded here once, validated for
 * range and finiteness, so nothing malformed reaches onnxruntime.
 */
import { getFloat16, setFloat16 } from '@petamoriken/float16';
import { isUtf8 } from 'node:buffer';
import type { Datatype, NumericDatatype } from './model-config';

/** Bytes per element of the fixed-size datatypes (BYTES elements are length-prefixed: see splitLengthPrefixed). */
export const BYTES_PER_ELEMENT: Record<NumericDatatype, number> = {
  BOOL: 1,
  UINT8: 1,
  UINT16: 2,
  UINT32: 4,
  UINT64: 8,
  INT8: 1,
  INT16: 2,
  INT32: 4,
  INT64: 8,
  FP16: 2,
  FP32: 4,
  FP64: 8,
};

/** onnxruntime's name for each datatype (Tensor.Type). */
export const ORT_TYPE: Record<Datatype, string> = {
  BOOL: 'bool',
  UINT8: 'uint8',
  UINT16: 'uint16',
  UINT32: 'uint32',
  UINT64: 'uint64',
  INT8: 'int8',
  INT16: 'int16',
  INT32: 'int32',
  INT64: 'int64',
  FP16: 'float16',
  FP32: 'float32',
  FP64: 'float64',
  BYTES: 'string',
};

const FROM_ORT_TYPE: Record<string, Datatype> = Object.fromEntries(
  Object.entries(ORT_TYPE).map(([datatype, ort]) => [ort, datatype as Datatype]),
);

export function datatypeFromOrt(type: string): Datatype | undefined {
  return FROM_ORT_TYPE[type];
}

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1);
}

/** Why a JSON value cannot be stored in a datatype, or null when it can. */
function elementProblem(datatype: NumericDatatype, value: number): string | null {
  if (!Number.isFinite(value)) return 'NaN or Infinity is not allowed';
  switch (datatype) {
    case 'FP32':
      return Math.abs(value) > 3.4028234663852886e38 ? 'out of FP32 range' : null;
    case 'FP64':
      return null;
    case 'FP16':
      return Math.abs(value) > 65504 ? 'out of FP16 range' : null;
    case 'BOOL':
      return value === 0 || value === 1 ? null : 'BOOL values must be 0 or 1';
    default: {
      if (!Number.isInteger(value)) return `${datatype} values must be whole numbers`;
      const [min, max] = INTEGER_RANGE[datatype];
      return value < min || value > max ? `out of ${datatype} range` : null;
    }
  }
}

const INTEGER_RANGE: Record<Exclude<NumericDatatype, 'FP16' | 'FP32' | 'FP64' | 'BOOL'>, [number, number]> = {
  UINT8: [0, 255],
  UINT16: [0, 65535],
  UINT32: [0, 4294967295],
  // As INT64: JSON numbers are exact only to 2^53; larger values travel as bytes.
  UINT64: [0, Number.MAX_SAFE_INTEGER],
  INT8: [-128, 127],
  INT16: [-32768, 32767],
  INT32: [-2147483648, 2147483647],
  // JSON numbers are doubles: INT64 beyond ±2^53 must be sent as dataBase64.
  INT64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER],
};

export class TensorEncodingError extends Error {}

/** Encodes JSON numbers as little-endian bytes of the datatype; throws TensorEncodingError naming the element. */
export function encodeNumbers(datatype: NumericDatatype, values: readonly number[]): Buffer {
  const size = BYTES_PER_ELEMENT[datatype];
  const out = Buffer.allocUnsafe(values.length * size);
  for (let i = 0; i < values.length; i += 1) {
    const v = values[i]!;
    const problem = elementProblem(datatype, v);
    if (problem) throw new TensorEncodingError(`element ${i}: ${problem}`);
    const at = i * size;
    switch (datatype) {
      case 'FP32':
        out.writeFloatLE(v, at);
        break;
      case 'FP64':
        out.writeDoubleLE(v, at);
        break;
      case 'FP16':
        out.writeUInt16LE(toHalf(v), at);
        break;
      case 'BOOL':
      case 'UINT8':
        out.writeUInt8(v, at);
        break;
      case 'INT8':
        out.writeInt8(v, at);
        break;
      case 'INT16':
        out.writeInt16LE(v, at);
        break;
      case 'INT32':
        out.writeInt32LE(v, at);
        break;
      case 'INT64':
        out.writeBigInt64LE(BigInt(v), at);
        break;
      case 'UINT16':
        out.writeUInt16LE(v, at);
        break;
      case 'UINT32':
        out.writeUInt32LE(v, at);
        break;
      case 'UINT64':
        out.writeBigUInt64LE(BigInt(v), at);
        break;
    }
  }
  return out;
}

/** Checks raw bytes from the client: floats must be finite, BOOL 0/1. */
export function checkBytes(datatype: NumericDatatype, bytes: Buffer): string | null {
  const size = BYTES_PER_ELEMENT[datatype];
  if (bytes.length % size !== 0) return `byte length ${bytes.length} is not a multiple of ${size} (${datatype})`;
  const n = bytes.length / size;
  if (datatype === 'FP32') {
    // NaN and ±Infinity are the values whose exponent bits are all ones: the top byte (little-endian)
    // holds 7 of the 8, the byte below it the 8th. Read as bytes, the check needs no aligned view, so
    // the binary protocol's tensors (at any offset after the JSON header) are not copied to be checked.
    for (let at = 3; at < bytes.length; at += 4) {
      if ((bytes[at]! & 0x7f) === 0x7f && (bytes[at - 1]! & 0x80) === 0x80) return `element ${(at - 3) / 4}: NaN or Infinity is not allowed`;
    }
  } else if (datatype === 'FP64') {
    // The same for doubles: 7 exponent bits in the top byte, 4 in the byte below. (One loop for both,
    // with size and masks as variables, measured about twice as slow: bench/check-bytes.mjs.)
    for (let at = 7; at < bytes.length; at += 8) {
      if ((bytes[at]! & 0x7f) === 0x7f && (bytes[at - 1]! & 0xf0) === 0xf0) return `element ${(at - 7) / 8}: NaN or Infinity is not allowed`;
    }
  } else if (datatype === 'FP16') {
    // Exponent bits all ones means Inf or NaN.
    for (let i = 0; i < n; i += 1) if ((bytes.readUInt16LE(i * 2) & 0x7c00) === 0x7c00) return `element ${i}: NaN or Infinity is not allowed`;
  } else if (datatype === 'BOOL') {
    for (let i = 0; i < n; i += 1) if (bytes[i]! > 1) return `element ${i}: BOOL values must be 0 or 1`;
  }
  return null;
}

/** Decodes little-endian bytes to JSON numbers (INT64 beyond 2^53 loses precision; use base64 for exact values). */
export function decodeNumbers(datatype: NumericDatatype, bytes: Buffer): number[] {
  const size = BYTES_PER_ELEMENT[datatype];
  const n = Math.floor(bytes.length / size);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i += 1) {
    const at = i * size;
    switch (datatype) {
      case 'FP32':
        out[i] = bytes.readFloatLE(at);
        break;
      case 'FP64':
        out[i] = bytes.readDoubleLE(at);
        break;
      case 'FP16':
        out[i] = fromHalf(bytes.readUInt16LE(at));
        break;
      case 'BOOL':
      case 'UINT8':
        out[i] = bytes.readUInt8(at);
        break;
      case 'INT8':
        out[i] = bytes.readInt8(at);
        break;
      case 'INT16':
        out[i] = bytes.readInt16LE(at);
        break;
      case 'INT32':
        out[i] = bytes.readInt32LE(at);
        break;
      case 'INT64':
        out[i] = Number(bytes.readBigInt64LE(at));
        break;
      case 'UINT16':
        out[i] = bytes.readUInt16LE(at);
        break;
      case 'UINT32':
        out[i] = bytes.readUInt32LE(at);
        break;
      case 'UINT64':
        out[i] = Number(bytes.readBigUInt64LE(at));
        break;
    }
  }
  return out;
}

/**
 * Strict base64 (Node's decoder silently skips characters outside the
 * alphabet). Validated by a native round trip — decode, re-encode, compare —
 * at about a tenth of the cost of a per-character loop or a regular
 * expression (5 MB: ~5 ms against ~45 ms here), so a large tensor or image
 * costs the event loop little. Line breaks and spaces are allowed; the
 * re-encoded form must match, so non-zero trailing bits are refused.
 */
export function decodeBase64(text: string): Buffer | null {
  const compact = hasAsciiWhitespace(text) ? text.replace(/[ \t\n\r\f\v]+/g, '') : text;
  if (compact.length % 4 !== 0) return null;
  const bytes = Buffer.from(compact, 'base64');
  return bytes.toString('base64') === compact ? bytes : null;
}

/** Native substring searches: far cheaper than a /\s/ scan on megabytes. */
function hasAsciiWhitespace(text: string): boolean {
  return text.includes('\n') || text.includes(' ') || text.includes('\r') || text.includes('\t') || text.includes('\f') || text.includes('\v');
}

/** Characters of the padded base64 of `bytes` bytes. */
export function base64Length(bytes: number): number {
  return Math.ceil(bytes / 3) * 4;
}

/**
 * Whether a base64 text can hold exactly `bytes` bytes, judged from its
 * length alone (line breaks allowed, up to 1 in 8 characters): a wrong-sized
 * tensor is refused before megabytes are decoded.
 */
export function base64LengthFits(text: string, bytes: number): boolean {
  const want = base64Length(bytes);
  return text.length >= want && text.length <= want + Math.ceil(want / 8) + 8;
}

/**
 * FP16 through @petamoriken/float16 (a maintained codec, the Float16Array
 * polyfill): rounds to nearest, ties to even, from the double itself, as
 * numpy's float64 → float16 does (test/inference/fp16-numpy.test.ts checks
 * both agree on random values). The earlier hand-written conversion
 * truncated (0.7 gave 0x3999, numpy 0x399a).
 */
const HALF = new DataView(new ArrayBuffer(2));

export function toHalf(value: number): number {
  setFloat16(HALF, 0, value, true);
  return HALF.getUint16(0, true);
}

export function fromHalf(bits: number): number {
  HALF.setUint16(0, bits, true);
  return getFloat16(HALF, 0, true);
}

/**
 * The Open Inference Protocol's BYTES elements as they travel raw (the REST
 * binary extension, gRPC raw contents): each a 4-byte little-endian length,
 * then that many bytes. Splits `bytes` into exactly `elements` elements, or
 * says why it cannot (a length running past the end, bytes left over, too
 * few or too many elements). The elements are views, not copies.
 */
export function splitLengthPrefixed(bytes: Buffer, elements: number): Buffer[] | string {
  const out: Buffer[] = [];
  return walkLengthPrefixed(bytes, elements, (element) => out.push(element)) ?? out;
}

/**
 * The one walk over length-prefixed elements: calls `visit` with each
 * element (a view) in order and answers why the framing is wrong (a length
 * past the end, bytes left over, too few or too many elements), or null.
 */
function walkLengthPrefixed(bytes: Buffer, elements: number, visit: (element: Buffer, index: number) => void): string | null {
  let at = 0;
  let count = 0;
  while (at < bytes.length) {
    if (count === elements) return `${bytes.length - at} bytes after the ${elements} elements the shape takes`;
    if (at + 4 > bytes.length) return `element ${count}: ${bytes.length - at} bytes left where a 4-byte length was expected`;
    const length = bytes.readUInt32LE(at);
    if (at + 4 + length > bytes.length) return `element ${count}: its length ${length} runs past the end of the ${bytes.length} bytes`;
    visit(bytes.subarray(at + 4, at + 4 + length), count);
    at += 4 + length;
    count += 1;
  }
  return count === elements ? null : `${count} elements; the shape takes ${elements}`;
}

/** BYTES elements as length-prefixed bytes (the inverse of splitLengthPrefixed). */
export function joinLengthPrefixed(elements: readonly Buffer[]): Buffer {
  const out = Buffer.allocUnsafe(elements.reduce((n, e) => n + 4 + e.length, 0));
  let at = 0;
  for (const element of elements) {
    out.writeUInt32LE(element.length, at);
    element.copy(out, at + 4);
    at += 4 + element.length;
  }
  return out;
}

/**
 * Checks a BYTES tensor as the engine holds it (length-prefixed): exactly
 * `elements` elements, each UTF-8 (onnx tensor(string) is text; a byte string
 * that is not would reach the graph mangled). Null when it is well formed.
 */
export function checkStrings(bytes: Buffer, elements: number): string | null {
  // Framing first (the whole walk), then the first element that is not UTF-8.
  let notUtf8 = -1;
  const framing = walkLengthPrefixed(bytes, elements, (element, index) => {
    if (notUtf8 === -1 && !isUtf8(element)) notUtf8 = index;
  });
  if (framing) return `is not BYTES as the protocol sends them (each element a 4-byte little-endian length, then its bytes): ${framing}`;
  return notUtf8 === -1 ? null : `element ${notUtf8} is not UTF-8 text (the model takes strings)`;
}

// String.prototype.isWellFormed is ES2024; the lib here is ES2022.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Strings as a length-prefixed BYTES tensor, or the index of the first string that is not well-formed Unicode (a lone surrogate). */
export function encodeStrings(values: readonly string[]): Buffer | number {
  const bad = values.findIndex((v) => LONE_SURROGATE.test(v));
  if (bad !== -1) return bad;
  return joinLengthPrefixed(values.map((v) => Buffer.from(v, 'utf8')));
}

/** A length-prefixed BYTES tensor's elements as strings (checked UTF-8 on the way in; onnxruntime's strings are UTF-8). */
export function decodeStrings(bytes: Buffer): string[] {
  const out: string[] = [];
  for (let at = 0; at + 4 <= bytes.length; ) {
    const length = bytes.readUInt32LE(at);
    out.push(bytes.toString('utf8', at + 4, at + 4 + length));
    at += 4 + length;
  }
  return out;
}

/** The byte range of elements [first, first + count) of a length-prefixed BYTES tensor (how a batched string output is split per request). */
export function lengthPrefixedRange(bytes: Buffer, first: number, count: number): Buffer {
  let at = 0;
  for (let i = 0; i < first; i += 1) at += 4 + bytes.readUInt32LE(at);
  let end = at;
  for (let i = 0; i < count; i += 1) end += 4 + bytes.readUInt32LE(end);
  return bytes.subarray(at, end);
}
