/**
 * The upload inspector (issue #23 item 7): each hostile file is refused by the
 * child process with the reason named, and the child's bounds hold (a time
 * bound and a resident-memory bound small enough that every inspection passes
 * them, so the kill path itself is what is tested), and a child that dies
 * (V8's abort past its heap cap) is VALIDATION_CRASHED. The child is the built
 * dist/inference/inspect-child.js (`npm run build:ts` first).
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ModelInspector } from '../../src/inference/model-inspector';
import { DomainError } from '../../src/errors';
import { buildInt64Flood, buildOnnx } from '../helpers/onnx-builder';
import { REPO_ROOT } from '../harness';

const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-inspect-'));
const CNN = path.join(REPO_ROOT, 'models', 'fashion-cnn', '1', 'model.onnx');

function file(name: string, bytes: Buffer): string {
  const at = path.join(dir, `${name}.onnx`);
  writeFileSync(at, bytes);
  return at;
}

async function reasonOf(inspector: ModelInspector, at: string): Promise<{ code: string; reason: unknown; message: string }> {
  const error = await inspector.inspect('m', at).then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DomainError);
  const d = error as DomainError;
  return { code: d.code, reason: d.extensions['reason'], message: d.message };
}

const inspector = new ModelInspector({ timeoutMs: 120_000, maxMemoryBytes: 4 * 2 ** 30 });

describe('ModelInspector', () => {
  it('reads the graph of a servable model (the CNN and a generated one)', async () => {
    expect(await inspector.inspect('cnn', CNN)).toEqual({
      inputs: [{ name: 'image', type: 'float32', shape: [-1, 1, 28, 28] }],
      outputs: [{ name: 'probabilities', type: 'float32', shape: [-1, 10] }],
    });
    expect(await inspector.inspect('gen', file('ok', buildOnnx({ initializerBytes: 64 * 1024 })))).toEqual({
      inputs: [{ name: 'X', type: 'float32', shape: [-1, 4] }],
      outputs: [{ name: 'Y', type: 'float32', shape: [-1, 4] }],
    });
  }, 120_000);

  it('refuses each hostile file with MODEL_INVALID naming the reason', async () => {
    const cases: [string, Buffer, string][] = [
      ['truncated', readFileSync(CNN).subarray(0, 5000), 'ONNX_UNREADABLE'],
      ['garbage', Buffer.from('this is not a protobuf at all, just text'.repeat(50)), 'ONNX_UNREADABLE'],
      ['absurd-dims', buildOnnx({ dims: ['batch', 1_000_000_000_000] }), 'DIMS_TOO_LARGE'],
      ['absurd-product', buildOnnx({ dims: [65536, 65536, 1] }), 'DIMS_TOO_LARGE'],
      ['external-data', buildOnnx({ externalPath: '../../../../etc/passwd' }), 'EXTERNAL_DATA'],
      ['unknown-op', buildOnnx({ unknownOp: 'NoSuchOperator' }), 'UNSUPPORTED_OP'],
    ];
    for (const [name, bytes, reason] of cases) {
      const refused = await reasonOf(inspector, file(name, bytes));
      expect({ name, code: refused.code, reason: refused.reason }).toEqual({ name, code: 'MODEL_INVALID', reason });
    }
  }, 180_000);

  it('kills an inspection past its time bound (VALIDATION_TIMEOUT) and past its memory bound (VALIDATION_MEMORY)', async () => {
    // Starting node and onnxruntime alone takes longer than 20 ms and more than 16 MiB.
    const hurried = new ModelInspector({ timeoutMs: 20, maxMemoryBytes: 4 * 2 ** 30 });
    expect((await reasonOf(hurried, CNN)).reason).toBe('VALIDATION_TIMEOUT');
    const starved = new ModelInspector({ timeoutMs: 120_000, maxMemoryBytes: 16 * 2 ** 20 });
    const memory = await reasonOf(starved, CNN);
    expect(memory.reason).toBe('VALIDATION_MEMORY');
    expect(memory.message).toMatch(/MODEL_VALIDATE_MAX_MEMORY_BYTES/);
    // The inspector still works after its children were killed.
    expect((await inspector.inspect('cnn', CNN)).inputs).toHaveLength(1);
  }, 120_000);

  it('a child that dies is VALIDATION_CRASHED: 32 M packed int64 values blow the heap cap (half the memory bound) and V8 aborts it', async () => {
    // 32 MiB of file, a decoded value per byte: far over a 512 MiB heap, while the process stays under the 1 GiB RSS bound.
    const bounded = new ModelInspector({ timeoutMs: 120_000, maxMemoryBytes: 2 ** 30 });
    const crashed = await reasonOf(bounded, file('int64-flood', buildInt64Flood(32 * 2 ** 20)));
    expect(crashed).toMatchObject({ code: 'MODEL_INVALID', reason: 'VALIDATION_CRASHED' });
    expect(crashed.message).toMatch(/signal SIGABRT|exit code/);
    process.stdout.write(`crashed inspection: ${crashed.message}\n`);
    // The next inspection runs in a fresh child.
    expect((await bounded.inspect('cnn', CNN)).inputs).toHaveLength(1);
  }, 120_000);
});
