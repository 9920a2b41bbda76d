/**
 * Reads a request body whose work is bounded before it is done: the bytes on
 * the wire (BODY_LIMIT_BYTES), the bytes after Content-Encoding gzip/deflate
 * is undone (the same bound, inflated asynchronously in zlib's stream, chunk
 * by chunk, stopped the moment it is crossed), and the JSON values a parse
 * could produce (commas and opening brackets counted as the bytes arrive,
 * the same cap as the GraphQL door's). A gzip body of ~19 KB holding
 * 10 million zeros is refused after inflating a few hundred KB, instead of
 * being inflated, parsed and walked on the event loop for seconds.
 *
 * Resource refusals (413 PAYLOAD_TOO_LARGE, 400 BAD_USER_INPUT for too many
 * values) reject; a body the route should still refuse through its own path
 * (not valid gzip, an unsupported encoding) resolves with `error` set.
 */
import type { Readable } from 'node:stream';
import { createGunzip, createInflate, type Gunzip, type Inflate } from 'node:zlib';
import { BadInputError } from '../../errors';
import { HttpRefusal } from './http-errors';

export interface BoundedBodyOptions {
  /** Content-Encoding as sent. */
  encoding: string | string[] | undefined;
  /** BODY_LIMIT_BYTES: the most bytes read, and the most bytes inflated. */
  limitBytes: number;
  /** The most JSON values (commas plus opening brackets) the JSON part may hold. */
  maxValues: number;
  /** How many leading bytes (after decoding) are JSON; null: all of them. Bytes after it are raw tensors and not counted. */
  jsonBytes: number | null;
}

export type BoundedBody = { bytes: Buffer; error?: undefined } | { bytes?: undefined; error: BadInputError };

/** Values a JSON text can hold at most: its commas plus its opening brackets (each list or object holds one more than its commas). */
export function countJsonSeparators(chunk: Buffer, end = chunk.length): number {
  let count = 0;
  for (let i = 0; i < end; i += 1) {
    const b = chunk[i];
    if (b === 44 || b === 91) count += 1;
  }
  return count;
}

function encodingOf(value: string | string[] | undefined): string {
  return ((Array.isArray(value) ? value[0] : value) ?? '').trim().toLowerCase();
}

/**
 * Why over 80 lines: one streaming state machine (raw bytes → optional
 * inflater → size bound and JSON value count) whose handlers share its
 * state in closures; split, that state would travel in an object through
 * every chunk of every REST request.
 */
export function readBoundedBody(payload: Readable, options: BoundedBodyOptions): Promise<BoundedBody> {
  const { limitBytes, maxValues } = options;
  const jsonBytes = options.jsonBytes ?? Number.POSITIVE_INFINITY;
  const encoding = encodingOf(options.encoding);
  const tooLarge = (inflated: boolean) =>
    new HttpRefusal(413, 'PAYLOAD_TOO_LARGE', `Request body ${inflated ? 'inflates to more than' : 'exceeds'} the limit of ${limitBytes} bytes (BODY_LIMIT_BYTES)`, inflated ? { field: 'Content-Encoding' } : {});
  const tooManyValues = () =>
    new HttpRefusal(400, 'BAD_USER_INPUT', `Request body holds more than ${maxValues} JSON values; send tensors as binary data (binary_data_size, application/octet-stream)`, { field: 'inputs' });

  return new Promise(
    // Why over 80 lines: the state machine itself (see above).
    (resolve, reject) => {
      let inflater: Gunzip | Inflate | null = null;
      let decodeError: BadInputError | undefined;
      if (encoding === 'gzip') inflater = createGunzip();
      else if (encoding === 'deflate') inflater = createInflate();
      else if (encoding !== '' && encoding !== 'identity') decodeError = new BadInputError(`Content-Encoding ${encoding} is not supported (gzip, deflate)`, 'Content-Encoding');

      const chunks: Buffer[] = [];
      let received = 0;
      let produced = 0;
      let values = 0;
      let counting = false;
      let rawEnded = false;
      let inflated = inflater === null;
      let settled = false;
      // Decided mid-body: answered once the body is in (draining costs nothing), so the client reads it instead of a reset.
      let refusal: HttpRefusal | undefined;

      const cleanup = () => {
        payload.removeListener('data', onRaw);
        payload.removeListener('end', onRawEnd);
        payload.removeListener('error', onRawError);
        if (inflater) {
          inflater.removeAllListeners();
          inflater.on('error', () => undefined);
          inflater.destroy();
        }
      };
      const settle = (fn: () => void) => {
        if (settled) return;
        settled = true;
        cleanup();
        fn();
      };
      const stopInflating = () => {
        chunks.length = 0;
        if (inflater && !inflated) {
          inflated = true;
          inflater.removeAllListeners();
          inflater.on('error', () => undefined);
          inflater.destroy();
        }
        if (payload.isPaused()) payload.resume();
      };
      const maybeFinish = () => {
        if (!rawEnded || !inflated) return;
        if (refusal) return settle(() => reject(refusal));
        if (decodeError) return settle(() => resolve({ error: decodeError! }));
        settle(() => resolve({ bytes: chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, produced) }));
      };

      const onOutput = (chunk: Buffer) => {
        if (refusal || decodeError) return;
        const start = produced;
        produced += chunk.length;
        if (produced > limitBytes) {
          refusal = tooLarge(inflater !== null);
          stopInflating();
          return maybeFinish();
        }
        chunks.push(chunk);
        // A JSON text holds at most one separator per byte: nothing to count until it is longer than the cap
        // (a single-image request never is), then everything so far at once and each chunk as it comes.
        if (start < jsonBytes && produced > maxValues) {
          const pending = counting ? [chunk] : chunks;
          let offset = counting ? start : 0;
          counting = true;
          for (const c of pending) {
            if (offset < jsonBytes) values += countJsonSeparators(c, Math.min(c.length, jsonBytes - offset));
            offset += c.length;
          }
          if (values > maxValues) {
            refusal = tooManyValues();
            stopInflating();
            return maybeFinish();
          }
        }
      };

      if (inflater) {
        inflater.on('data', onOutput);
        inflater.on('end', () => {
          inflated = true;
          maybeFinish();
        });
        inflater.on('error', () => {
          decodeError ??= new BadInputError(`the body is not valid ${encoding} data`, 'Content-Encoding');
          stopInflating();
          maybeFinish();
        });
        inflater.on('drain', () => {
          if (payload.isPaused()) payload.resume();
        });
      }

      const onRaw = (chunk: Buffer) => {
        received += chunk.length;
        if (received > limitBytes) return settle(() => reject(tooLarge(false)));
        if (refusal || decodeError) return;
        if (inflater) {
          if (!inflater.write(chunk)) payload.pause();
        } else onOutput(chunk);
      };
      const onRawEnd = () => {
        rawEnded = true;
        if (inflater && !inflated) inflater.end();
        maybeFinish();
      };
      const onRawError = (error: Error) => settle(() => reject(error));
      payload.on('data', onRaw);
      payload.on('end', onRawEnd);
      payload.on('error', onRawError);
    },
  );
}
