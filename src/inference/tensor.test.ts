import { checkBytes, checkStrings, decodeBase64, decodeNumbers, decodeStrings, encodeNumbers, encodeStrings, joinLengthPrefixed, lengthPrefixedRange, splitLengthPrefixed, TensorEncodingError } from './tensor';

describe('tensor codec', () => {
  it.each([
    ['FP32', [0, 1.5, -2.25, 3.4028234663852886e38]],
    ['FP64', [0, 1e300, -Math.PI]],
    ['INT32', [0, -2147483648, 2147483647]],
    ['INT64', [0, -(2 ** 53) + 1, 2 ** 53 - 1]],
    ['UINT8', [0, 255, 7]],
    ['INT8', [-128, 127]],
    ['INT16', [-32768, 32767]],
    ['BOOL', [0, 1, 1]],
    ['FP16', [0, 1, -2, 0.5, 65504]],
  ] as const)('%s round-trips through little-endian bytes', (datatype, values) => {
    expect(decodeNumbers(datatype, encodeNumbers(datatype, values))).toEqual(values);
  });

  it.each([
    ['FP32', Infinity, /NaN or Infinity/],
    ['FP32', 1e39, /out of FP32 range/],
    ['INT32', 1.5, /whole numbers/],
    ['INT32', 2 ** 31, /out of INT32 range/],
    ['UINT8', -1, /out of UINT8 range/],
    ['BOOL', 2, /0 or 1/],
    ['INT64', 2 ** 60, /out of INT64 range/],
  ] as const)('%s refuses %p naming the element', (datatype, value, message) => {
    expect(() => encodeNumbers(datatype, [0, value])).toThrow(TensorEncodingError);
    expect(() => encodeNumbers(datatype, [0, value])).toThrow(/element 1/);
    expect(() => encodeNumbers(datatype, [0, value])).toThrow(message);
  });

  it('checks raw bytes for NaN, Infinity, bad BOOLs and ragged lengths', () => {
    const nan = Buffer.alloc(8);
    nan.writeFloatLE(NaN, 4);
    expect(checkBytes('FP32', nan)).toMatch(/element 1: NaN/);
    expect(checkBytes('FP32', Buffer.alloc(8))).toBeNull();
    expect(checkBytes('FP32', Buffer.alloc(7))).toMatch(/not a multiple of 4/);
    expect(checkBytes('BOOL', Buffer.from([0, 1, 2]))).toMatch(/element 2/);
    expect(checkBytes('FP16', Buffer.from([0x00, 0x7c]))).toMatch(/NaN or Infinity/);
  });

  it.each([
    ['FP32', 4, (b: Buffer, v: number, at: number) => b.writeFloatLE(v, at)],
    ['FP64', 8, (b: Buffer, v: number, at: number) => b.writeDoubleLE(v, at)],
  ] as const)('finds every non-finite %s at any byte offset and passes every finite one', (datatype, size, write) => {
    const edge = datatype === 'FP32' ? [3.4028234663852886e38, -3.4028234663852886e38, 1.401298464324817e-45] : [Number.MAX_VALUE, -Number.MAX_VALUE, Number.MIN_VALUE];
    const finite = [0, -0, 1, -1, 0.5, 1e-30, ...edge];
    // Offsets 0..size-1 inside a larger buffer: the binary protocol puts a tensor wherever its JSON header ends.
    for (let offset = 0; offset < size; offset += 1) {
      const backing = Buffer.alloc(offset + size * (finite.length + 1));
      const bytes = backing.subarray(offset);
      finite.forEach((v, i) => write(bytes, v, i * size));
      expect(checkBytes(datatype, bytes)).toBeNull();
      for (const bad of [NaN, Infinity, -Infinity]) {
        write(bytes, bad, finite.length * size);
        expect(checkBytes(datatype, bytes)).toBe(`element ${finite.length}: NaN or Infinity is not allowed`);
      }
      // A NaN payload other than the canonical one (sign set, quiet bit clear, low mantissa bits only).
      bytes.fill(0, finite.length * size);
      bytes[bytes.length - 1] = 0xff;
      bytes[bytes.length - 2] = datatype === 'FP32' ? 0x80 : 0xf0;
      bytes[bytes.length - size] = 1;
      expect(checkBytes(datatype, bytes)).toMatch(/NaN or Infinity/);
    }
  });

  it('finds every non-finite FP16 at any byte offset and passes every finite one', () => {
    // Bit patterns: 0, -0, 1, the largest finite (65504), the smallest subnormal, -65504.
    const finite = [0x0000, 0x8000, 0x3c00, 0x7bff, 0x0001, 0xfbff];
    for (let offset = 0; offset < 2; offset += 1) {
      const bytes = Buffer.alloc(offset + 2 * (finite.length + 1)).subarray(offset);
      finite.forEach((bits, i) => bytes.writeUInt16LE(bits, i * 2));
      expect(checkBytes('FP16', bytes)).toBeNull();
      // +∞, −∞, a quiet NaN, a NaN with only the lowest mantissa bit.
      for (const bits of [0x7c00, 0xfc00, 0x7e00, 0x7c01]) {
        bytes.writeUInt16LE(bits, finite.length * 2);
        expect(checkBytes('FP16', bytes)).toBe(`element ${finite.length}: NaN or Infinity is not allowed`);
      }
    }
  });

  it('decodes only strict base64', () => {
    expect(decodeBase64(Buffer.from('hello').toString('base64'))?.toString()).toBe('hello');
    expect(decodeBase64('aGVsbG8=\n')?.toString()).toBe('hello');
    expect(decodeBase64('not*base64')).toBeNull();
    expect(decodeBase64('abc')).toBeNull();
  });
});

describe('BYTES elements, length-prefixed (4-byte little-endian length, then the bytes)', () => {
  const words = ['', 'a', 'héllo', '\u0000\u00ff'].map((w) => Buffer.from(w, 'utf8'));

  it('round-trips, empty elements included', () => {
    const joined = joinLengthPrefixed(words);
    expect(joined.readUInt32LE(0)).toBe(0);
    expect(joined.readUInt32LE(4)).toBe(1);
    expect(splitLengthPrefixed(joined, words.length)).toEqual(words);
    expect(splitLengthPrefixed(Buffer.alloc(0), 0)).toEqual([]);
  });

  it.each([
    ['a length running past the end', () => joinLengthPrefixed(words).subarray(0, -1), 4, /runs past the end/],
    ['a length cut short', () => Buffer.concat([joinLengthPrefixed(words), Buffer.from([1, 0])]), 5, /a 4-byte length was expected/],
    ['bytes after the last element', () => joinLengthPrefixed(words), 3, /bytes after the 3 elements/],
    ['too few elements', () => joinLengthPrefixed(words), 5, /4 elements; the shape takes 5/],
    ['a length near 2^32', () => Buffer.from([0xff, 0xff, 0xff, 0xff, 1]), 1, /runs past the end/],
  ])('refuses %s with the reason', (_, bytes, elements, reason) => {
    expect(splitLengthPrefixed(bytes(), elements)).toMatch(reason);
  });
});


describe('BYTES as the engine holds them (strings)', () => {
  const texts = ['', 'haus', 'café', '漢字🦋'];

  it('encodes strings length-prefixed as UTF-8, decodes them back, and checks framing, count and UTF-8', () => {
    const bytes = encodeStrings(texts) as Buffer;
    expect(bytes.equals(joinLengthPrefixed(texts.map((t) => Buffer.from(t, 'utf8'))))).toBe(true);
    expect(decodeStrings(bytes)).toEqual(texts);
    expect(checkStrings(bytes, texts.length)).toBeNull();
    expect(checkStrings(bytes, 3)).toMatch(/bytes after the 3 elements/);
    expect(checkStrings(joinLengthPrefixed([Buffer.from('ok'), Buffer.from([0xc3, 0x28])]), 2)).toMatch(/element 1 is not UTF-8/);
    // A lone surrogate is no Unicode text: its index, not bytes.
    expect(encodeStrings(['ok', 'a\ud800'])).toBe(1);
    expect(encodeStrings(['\ud83e\udd8b'])).toBeInstanceOf(Buffer);
  });

  it('cuts the byte range of whole elements (a batched output split per request)', () => {
    const bytes = encodeStrings(texts) as Buffer;
    expect(decodeStrings(lengthPrefixedRange(bytes, 1, 2))).toEqual(['haus', 'café']);
    expect(decodeStrings(lengthPrefixedRange(bytes, 0, 4))).toEqual(texts);
    expect(lengthPrefixedRange(bytes, 4, 0).length).toBe(0);
  });
});
