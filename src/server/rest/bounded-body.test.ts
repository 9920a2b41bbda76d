import { Readable } from 'node:stream';
import { deflateSync, gzipSync } from 'node:zlib';
import { BadInputError } from '../../errors';
import { readBoundedBody, type BoundedBodyOptions } from './bounded-body';
import { HttpRefusal } from './http-errors';

const options = (over: Partial<BoundedBodyOptions> = {}): BoundedBodyOptions => ({ encoding: undefined, limitBytes: 1000, maxValues: 100, jsonBytes: null, ...over });

/** A body arriving in chunks of `size` bytes, counting how many chunks the reader pulled. */
function stream(bytes: Buffer, size = 64): Readable & { pulled: number } {
  let offset = 0;
  const s = new Readable({
    read() {
      if (offset >= bytes.length) return void this.push(null);
      (s as Readable & { pulled: number }).pulled += 1;
      this.push(bytes.subarray(offset, offset + size));
      offset += size;
    },
  }) as Readable & { pulled: number };
  s.pulled = 0;
  return s;
}

async function refusalOf(promise: Promise<unknown>): Promise<{ status: number; code: string } | null> {
  try {
    await promise;
    return null;
  } catch (error) {
    if (error instanceof HttpRefusal) return { status: error.statusCode, code: error.publicCode };
    throw error;
  }
}

describe('bounded body reader', () => {
  const json = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', shape: [3], data: [1, 2, 3] }] }));

  it('passes plain, gzip and deflate bodies through unchanged', async () => {
    expect((await readBoundedBody(stream(json), options())).bytes?.equals(json)).toBe(true);
    expect((await readBoundedBody(stream(gzipSync(json)), options({ encoding: 'gzip' }))).bytes?.equals(json)).toBe(true);
    expect((await readBoundedBody(stream(deflateSync(json)), options({ encoding: 'Deflate ' }))).bytes?.equals(json)).toBe(true);
  });

  it('refuses a body over the limit, on the wire or once inflated, with 413 PAYLOAD_TOO_LARGE', async () => {
    expect(await refusalOf(readBoundedBody(stream(Buffer.alloc(1001, 32)), options()))).toEqual({ status: 413, code: 'PAYLOAD_TOO_LARGE' });
    expect(await refusalOf(readBoundedBody(stream(gzipSync(Buffer.alloc(100_000, 32))), options({ encoding: 'gzip' })))).toEqual({ status: 413, code: 'PAYLOAD_TOO_LARGE' });
  });

  it('refuses more JSON values than the cap with 400 BAD_USER_INPUT, before inflating the rest', async () => {
    // 10 million zeros: ~20 MB inflated, ~20 KB on the wire.
    const bomb = gzipSync(Buffer.from(`{"inputs":[{"name":"x","shape":[1],"data":[${'0,'.repeat(10_000_000)}0]}]}`), { level: 9 });
    const body = stream(bomb, 1024);
    const started = process.cpuUsage();
    expect(await refusalOf(readBoundedBody(body, options({ encoding: 'gzip', limitBytes: 30_000_000, maxValues: 26_384 })))).toEqual({ status: 400, code: 'BAD_USER_INPUT' });
    const cpu = process.cpuUsage(started);
    console.log(`bomb refused after ${(cpu.user + cpu.system) / 1000} ms CPU; the whole body was read (${body.pulled} chunks of ${bomb.length} bytes)`);
    // Nested brackets count too (a list of lists holds values without commas).
    expect(await refusalOf(readBoundedBody(stream(Buffer.from('['.repeat(200))), options()))).toEqual({ status: 400, code: 'BAD_USER_INPUT' });
  });

  it('counts only the JSON part of a binary body', async () => {
    const tensor = Buffer.alloc(500, 44); // 500 commas as raw bytes
    const read = await readBoundedBody(stream(Buffer.concat([json, tensor])), options({ jsonBytes: json.length }));
    expect(read.bytes?.length).toBe(json.length + 500);
    expect(await refusalOf(readBoundedBody(stream(Buffer.concat([json, tensor])), options()))).toEqual({ status: 400, code: 'BAD_USER_INPUT' });
  });

  it('hands the route a BAD_USER_INPUT for bytes that are not gzip and for unknown encodings', async () => {
    const notGzip = await readBoundedBody(stream(json), options({ encoding: 'gzip' }));
    expect(notGzip.error).toBeInstanceOf(BadInputError);
    expect(notGzip.error?.extensions['field']).toBe('Content-Encoding');
    const brotli = await readBoundedBody(stream(json), options({ encoding: 'br' }));
    expect(brotli.error?.message).toMatch(/br is not supported/);
  });
});
