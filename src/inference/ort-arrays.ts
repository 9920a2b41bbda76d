import type { Datatype } from './model-config';
import { BYTES_PER_ELEMENT, ORT_TYPE, decodeStrings } from './tensor';

/** The typed array onnxruntime takes for a tensor type, over a buffer (the inference worker and the upload inspector both build tensors). */
export type TypedArrayOf = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array | Int8Array | Int16Array | Uint16Array | Uint32Array | BigUint64Array;

export function typedArray(type: string, buffer: ArrayBuffer): TypedArrayOf {
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

/**
 * An onnxruntime tensor's data from the bytes the engine holds: a typed array
 * over them, or for 'string' (BYTES) the length-prefixed elements decoded.
 */
export function ortData(type: string, buffer: ArrayBuffer): TypedArrayOf | string[] {
  return type === 'string' ? decodeStrings(Buffer.from(buffer)) : typedArray(type, buffer);
}

/** `count` zero elements of a datatype (empty strings for BYTES): the warm-up and inspection runs. */
export function zeroData(datatype: Datatype, count: number): TypedArrayOf | string[] {
  if (datatype === 'BYTES') return new Array<string>(count).fill('');
  return typedArray(ORT_TYPE[datatype], new ArrayBuffer(count * BYTES_PER_ELEMENT[datatype]));
}

