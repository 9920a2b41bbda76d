/** Fashion-MNIST test images from test/fixtures, shaped for requests. */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';

const FIXTURES = path.resolve(__dirname, '..', 'fixtures');
const images = readFileSync(path.join(FIXTURES, 'fashion-mnist-test-1000.bin'));
const labels = readFileSync(path.join(FIXTURES, 'fashion-mnist-test-1000-labels.bin'));

export const PIXELS = 28 * 28;

export function imagePixels(index: number): Buffer {
  return images.subarray(index * PIXELS, (index + 1) * PIXELS);
}

export function imageLabel(index: number): number {
  return labels[index]!;
}

/** Model input values (pixel / 255) as FP32. */
export function imageFloats(indices: number[]): Float32Array {
  const out = new Float32Array(indices.length * PIXELS);
  indices.forEach((index, n) => {
    const px = imagePixels(index);
    for (let i = 0; i < PIXELS; i += 1) out[n * PIXELS + i] = px[i]! / 255;
  });
  return out;
}

/** An `infer` input tensor with dataBase64 for these images. */
export function imageTensor(indices: number[]): { name: string; datatype: string; shape: number[]; dataBase64: string } {
  const floats = imageFloats(indices);
  return { name: 'image', datatype: 'FP32', shape: [indices.length, 1, 28, 28], dataBase64: Buffer.from(floats.buffer).toString('base64') };
}

export function decodeFloats(base64: string): number[] {
  const bytes = Buffer.from(base64, 'base64');
  return Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
}

export function argmax(values: number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i += 1) if (values[i]! > values[best]!) best = i;
  return best;
}

/** The image as a PNG, optionally scaled and in colour, base64-encoded. */
export async function imagePng(index: number, options: { size?: number; colour?: boolean } = {}): Promise<string> {
  let image = sharp(imagePixels(index), { raw: { width: 28, height: 28, channels: 1 } });
  if (options.size) image = image.resize(options.size, options.size, { kernel: 'nearest' });
  if (options.colour) image = image.toColourspace('srgb');
  return (await image.png().toBuffer()).toString('base64');
}

export const INFER = `mutation Infer($input: InferInput!) {
  infer(input: $input) { modelName modelVersion id executionProvider batchSize
    outputs { name datatype shape dataBase64 } timing { queueMs computeMs totalMs } }
}`;
