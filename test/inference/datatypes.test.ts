/**
 * Tensor codecs of the datatypes added by issue #24 item 3, tested at the
 * codec layer (no shipped model takes UINT16/32/64 or FP16 inputs, so no
 * door can run one end to end): FP16 rounding against numpy's own
 * conversion on random values, and the unsigned integers' ranges and bytes.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { decodeNumbers, encodeNumbers, fromHalf, toHalf, TensorEncodingError } from '../../src/inference/tensor';

const PYTHON = '/usr/bin/python3';

/** A seeded generator (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('FP16 against numpy', () => {
  it('rounds 0.7 to nearest even (0x399a, as numpy), not truncated (0x3999)', () => {
    expect(toHalf(0.7).toString(16)).toBe('399a');
    expect(encodeNumbers('FP16', [0.7]).readUInt16LE(0)).toBe(0x399a);
  });

  it("encodes 200 000 random doubles exactly as numpy's float64 → float16, and decodes all 65 536 halves as numpy does", () => {
    const random = rng(24);
    const values: number[] = [];
    for (let i = 0; i < 200_000; i += 1) {
      const kind = i % 4;
      const sign = random() < 0.5 ? -1 : 1;
      if (kind === 0) values.push(sign * random() * 65504); // normal range
      else if (kind === 1) values.push(sign * Math.min(65504, 2 ** (-26 + random() * 42) * (1 + random()))); // every exponent, subnormals included
      else if (kind === 2) {
        // Exact ties between two halves (and near them), where truncation and rounding differ.
        const half = Math.floor(random() * 0x7bff);
        const between = (fromHalf(half) + fromHalf(half + 1)) / 2;
        values.push(sign * (random() < 0.5 ? between : between * (1 + (random() - 0.5) * 1e-6)));
      } else values.push(sign * Math.fround(random() * 2 ** (random() * 16 - 8))); // float32-representable inputs
    }
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-fp16-'));
    const input = Buffer.alloc(values.length * 8);
    values.forEach((v, i) => input.writeDoubleLE(v, i * 8));
    writeFileSync(path.join(dir, 'in.f64'), input);
    execFileSync(PYTHON, [
      '-c',
      [
        'import numpy as np, sys',
        'd = sys.argv[1]',
        "x = np.fromfile(d + '/in.f64', dtype='<f8')",
        "x.astype(np.float16).view('<u2').tofile(d + '/out.u2')",
        "np.arange(65536, dtype='<u2').view(np.float16).astype('<f8').tofile(d + '/halves.f64')",
      ].join('\n'),
      dir,
    ]);
    const numpy = readFileSync(path.join(dir, 'out.u2'));
    const ours = encodeNumbers('FP16', values);
    const mismatches: string[] = [];
    for (let i = 0; i < values.length && mismatches.length < 5; i += 1) {
      if (ours.readUInt16LE(i * 2) !== numpy.readUInt16LE(i * 2)) mismatches.push(`${values[i]}: ours ${ours.readUInt16LE(i * 2).toString(16)}, numpy ${numpy.readUInt16LE(i * 2).toString(16)}`);
    }
    expect(mismatches).toEqual([]);

    const halves = readFileSync(path.join(dir, 'halves.f64'));
    const decoded = decodeNumbers('FP16', Buffer.from(new Uint16Array(Array.from({ length: 65536 }, (_, i) => i)).buffer));
    const wrong = decoded.filter((v, i) => !Object.is(v, halves.readDoubleLE(i * 8)) && !(Number.isNaN(v) && Number.isNaN(halves.readDoubleLE(i * 8))));
    expect(wrong).toEqual([]);
  });

  it('refuses values outside the FP16 range rather than rounding them to infinity', () => {
    expect(() => encodeNumbers('FP16', [1, 65520])).toThrow(TensorEncodingError);
    expect(encodeNumbers('FP16', [65504]).readUInt16LE(0)).toBe(0x7bff);
  });
});

describe('UINT16, UINT32, UINT64', () => {
  it('encode little-endian and decode back, at their bounds', () => {
    const cases: ['UINT16' | 'UINT32' | 'UINT64', number[], string][] = [
      ['UINT16', [0, 1, 65535], '00000100ffff'],
      ['UINT32', [0, 4294967295], '00000000ffffffff'],
      ['UINT64', [1, Number.MAX_SAFE_INTEGER], '0100000000000000ffffffffffff1f00'],
    ];
    for (const [datatype, values, hex] of cases) {
      const bytes = encodeNumbers(datatype, values);
      expect({ datatype, hex: bytes.toString('hex') }).toEqual({ datatype, hex });
      expect(decodeNumbers(datatype, bytes)).toEqual(values);
    }
  });

  it('refuses negative, fractional and out-of-range values, naming the element', () => {
    expect(() => encodeNumbers('UINT16', [1, 65536])).toThrow('element 1: out of UINT16 range');
    expect(() => encodeNumbers('UINT32', [-1])).toThrow('element 0: out of UINT32 range');
    expect(() => encodeNumbers('UINT32', [1.5])).toThrow('element 0: UINT32 values must be whole numbers');
    // Beyond 2^53 a JSON number is not exact: such UINT64 values travel as bytes (raw, binary or uint64_contents).
    expect(() => encodeNumbers('UINT64', [2 ** 53])).toThrow('element 0: out of UINT64 range');
  });
});
