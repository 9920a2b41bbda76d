/**
 * Image preprocessing for `classify`: PNG/JPEG/WebP bytes (any size, grey or
 * colour, decoded by sharp/libvips) or raw pixel arrays, converted to the
 * model's input as its config.json `preprocessing` block says.
 */
import sharp from 'sharp';
import { BadInputError } from '../errors';
import type { ModelConfig } from './model-config';
import { decodeBase64 } from './tensor';

export type Preprocessing = NonNullable<ModelConfig['preprocessing']>;

export interface ImageSource {
  /** Base64 of an encoded image (PNG, JPEG or WebP). */
  image?: string | null;
  /** The deprecated old name of `image`. */
  png?: string | null;
  /** Raw pixel values 0–255, row-major, channels interleaved. */
  pixels?: number[] | null;
  width?: number | null;
  height?: number | null;
  channels?: number | null;
}

/**
 * Most pixels one input image may have. The models take 28×28 (or similar)
 * inputs; decoding a 4096² PNG costs ~130 ms of CPU here, so the cap bounds
 * what one request can make the gateway decode.
 */
export const MAX_INPUT_PIXELS = 1024 * 1024;
const MAX_SIDE = 1024;
/**
 * Longest `png` accepted: 8 M base64 characters (6 MiB), above what any
 * encoding of 1024×1024 8-bit RGBA pixels (4 MiB raw) needs.
 */
export const MAX_ENCODED_IMAGE_BASE64 = 8 * 1024 * 1024;

/** Returns the image as model-ready float values in the model's layout (one item, no batch axis). */
export async function preprocessImage(source: ImageSource, prep: Preprocessing, field: string): Promise<Float32Array> {
  const channels = prep.color === 'grey' ? 1 : 3;
  let image: sharp.Sharp;
  if (source.image != null && source.png != null) throw new BadInputError('give image or its deprecated old name png, not both', `${field}.png`);
  // The field the client used, so errors name it.
  const encodedField = source.image != null ? 'image' : 'png';
  const encoded = source.image ?? source.png;
  if (encoded != null && source.pixels != null) throw new BadInputError(`give either ${encodedField} or pixels, not both`, field);
  if (encoded != null) {
    // Decoding base64 runs on the event loop: bound it by what a 1024×1024 image can need.
    if (encoded.length > MAX_ENCODED_IMAGE_BASE64) {
      throw new BadInputError(`${encodedField} is over ${MAX_ENCODED_IMAGE_BASE64} base64 characters; images are at most 1024×1024 pixels`, `${field}.${encodedField}`);
    }
    const bytes = decodeBase64(encoded);
    if (!bytes || bytes.length === 0) throw new BadInputError(`${encodedField} is not valid base64`, `${field}.${encodedField}`);
    image = sharp(bytes, { limitInputPixels: MAX_INPUT_PIXELS, failOn: 'error' });
  } else if (source.pixels != null) {
    const { width, height } = source;
    const ch = source.channels ?? 1;
    if (!width || !height || width < 1 || height < 1 || width > MAX_SIDE || height > MAX_SIDE) {
      throw new BadInputError(`pixels need width and height between 1 and ${MAX_SIDE}`, `${field}.width`);
    }
    if (![1, 3, 4].includes(ch)) throw new BadInputError('channels must be 1, 3 or 4', `${field}.channels`);
    if (source.pixels.length !== width * height * ch) {
      throw new BadInputError(`pixels has ${source.pixels.length} values; width × height × channels is ${width * height * ch}`, `${field}.pixels`);
    }
    const raw = Buffer.allocUnsafe(source.pixels.length);
    for (let i = 0; i < source.pixels.length; i += 1) {
      const v = source.pixels[i]!;
      if (!Number.isFinite(v) || v < 0 || v > 255) throw new BadInputError(`pixel ${i} is ${v}; values must be 0–255`, `${field}.pixels`);
      raw[i] = Math.round(v);
    }
    image = sharp(raw, { raw: { width, height, channels: ch as 1 | 3 | 4 } });
  } else {
    throw new BadInputError('give image (base64 of a PNG, JPEG or WebP file) or pixels', field);
  }

  let pixels: Buffer;
  try {
    let pipeline = image.flatten({ background: '#000000' }).resize(prep.width, prep.height, { fit: 'fill' });
    pipeline = channels === 1 ? pipeline.greyscale() : pipeline.toColourspace('srgb');
    const { data, info } = await pipeline.raw().toBuffer({ resolveWithObject: true });
    if (info.channels !== channels) {
      // greyscale() may keep an alpha channel on some inputs; take the first channels only.
      pixels = Buffer.alloc(prep.width * prep.height * channels);
      for (let p = 0; p < prep.width * prep.height; p += 1) for (let c = 0; c < channels; c += 1) pixels[p * channels + c] = data[p * info.channels + c]!;
    } else {
      pixels = data;
    }
  } catch (error) {
    if (error instanceof BadInputError) throw error;
    // The decoder's own text (libvips: "VipsJpeg: Bogus Huffman table…") names the library; the client gets ours.
    const tooLarge = error instanceof Error && /pixel limit/.test(error.message);
    throw new BadInputError(
      tooLarge
        ? `image exceeds the pixel limit (${MAX_INPUT_PIXELS} pixels, 1024×1024)`
        : encoded != null
          ? 'image cannot be decoded (corrupt, truncated, or not PNG, JPEG or WebP)'
          : 'pixels cannot be converted',
      encoded != null ? `${field}.${encodedField}` : `${field}.pixels`,
    );
  }

  const out = new Float32Array(prep.width * prep.height * channels);
  const plane = prep.width * prep.height;
  for (let p = 0; p < plane; p += 1) {
    for (let c = 0; c < channels; c += 1) {
      const raw = pixels[p * channels + c]!;
      const value = (prep.invert ? 255 - raw : raw) * prep.scale;
      // NCHW stores each channel as its own plane; NHWC keeps channels interleaved.
      out[prep.layout === 'NCHW' ? c * plane + p : p * channels + c] = value;
    }
  }
  return out;
}
