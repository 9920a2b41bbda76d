/** Open Inference Protocol requests written by hand, as Triton's and KServe's clients send them. */
import { imageFloats } from '../inference/fixtures';

export interface OipResponse {
  status: number;
  headers: Headers;
  /** The JSON part (the whole body, or the first Inference-Header-Content-Length bytes). */
  json: Record<string, unknown>;
  /** The bytes after the JSON (binary outputs), empty when none. */
  binary: Buffer;
}

export async function oip(url: string, init: { method?: string; headers?: Record<string, string>; body?: Buffer | string } = {}): Promise<OipResponse> {
  const res = await fetch(url, { method: init.method ?? (init.body === undefined ? 'GET' : 'POST'), headers: init.headers, body: init.body });
  const bytes = Buffer.from(await res.arrayBuffer());
  const header = res.headers.get('inference-header-content-length');
  const jsonLength = header === null ? bytes.length : Number(header);
  const text = bytes.toString('utf8', 0, jsonLength);
  let json: Record<string, unknown>;
  try {
    json = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  } catch {
    throw new Error(`non-JSON response ${res.status}: ${text.slice(0, 300)}`);
  }
  return { status: res.status, headers: res.headers, json, binary: bytes.subarray(jsonLength) };
}

/** A JSON inference request body for these Fashion-MNIST images (data flat, or nested [n][1][28][28]). */
export function jsonInfer(indices: number[], options: { nested?: boolean; id?: string; outputs?: unknown[]; parameters?: Record<string, unknown> } = {}): string {
  const floats = Array.from(imageFloats(indices));
  let data: unknown = floats;
  if (options.nested) {
    data = indices.map((_, n) => [Array.from({ length: 28 }, (_, r) => floats.slice(n * 784 + r * 28, n * 784 + r * 28 + 28))]);
  }
  return JSON.stringify({
    ...(options.id ? { id: options.id } : {}),
    ...(options.parameters ? { parameters: options.parameters } : {}),
    inputs: [{ name: 'image', datatype: 'FP32', shape: [indices.length, 1, 28, 28], data }],
    ...(options.outputs ? { outputs: options.outputs } : {}),
  });
}

/** A binary-extension request: the JSON header, then the raw FP32 bytes of the images. */
export function binaryInfer(
  indices: number[],
  options: { binaryOutput?: boolean; sizeDelta?: number; extra?: Buffer; truncate?: number; headerDelta?: number; outputs?: unknown[] } = {},
): { body: Buffer; headers: Record<string, string> } {
  const floats = imageFloats(indices);
  const bytes = Buffer.from(floats.buffer, floats.byteOffset, floats.byteLength);
  const json = Buffer.from(
    JSON.stringify({
      inputs: [{ name: 'image', datatype: 'FP32', shape: [indices.length, 1, 28, 28], parameters: { binary_data_size: bytes.length + (options.sizeDelta ?? 0) } }],
      ...(options.binaryOutput ? { parameters: { binary_data_output: true } } : {}),
      ...(options.outputs ? { outputs: options.outputs } : {}),
    }),
  );
  let body = Buffer.concat([json, bytes, options.extra ?? Buffer.alloc(0)]);
  if (options.truncate) body = body.subarray(0, body.length - options.truncate);
  return {
    body,
    headers: { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(json.length + (options.headerDelta ?? 0)) },
  };
}

/** FP32 values (JSON numbers) as their little-endian bytes. */
export function fp32Bytes(values: number[]): Buffer {
  return Buffer.from(Float32Array.from(values).buffer);
}
