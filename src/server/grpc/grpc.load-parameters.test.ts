/**
 * A RepositoryModelLoad's parameters as Triton's gRPC client sends them
 * (issue #23): `file:<v>/model.onnx` weights and `file:warmup/<name>`
 * warm-up samples (Triton's input_data_file) as bytes_params; any other
 * `file:` path is BAD_USER_INPUT, a file over the bound MODEL_TOO_LARGE.
 */
import { loadParameters } from './grpc.server';
import { DomainError } from '../../errors';

const tooLarge = () => new DomainError('MODEL_TOO_LARGE', 'too large');
const bytes = (n: number) => ({ parameter_choice: 'bytes_param' as const, bytes_param: Buffer.alloc(n, 1) });

function codeOf(run: () => unknown): string | null {
  try {
    run();
    return null;
  } catch (error) {
    return error instanceof DomainError ? error.code : String(error);
  }
}

describe('loadParameters (gRPC RepositoryModelLoad)', () => {
  it('reads config, versions\' weights and warm-up files', () => {
    const loaded = loadParameters(
      { config: { parameter_choice: 'string_param', string_param: '{}' }, 'file:2/model.onnx': bytes(10), 'file:warmup/image.raw': bytes(4), other: { parameter_choice: 'bool_param' } },
      100,
      tooLarge,
    );
    expect(loaded.config).toBe('{}');
    expect([...loaded.files.keys()]).toEqual([2]);
    expect([...loaded.warmupFiles].map(([name, b]) => [name, b.length])).toEqual([['image.raw', 4]]);
  });

  it('refuses other file paths, a file that is not bytes, and one over the bound', () => {
    for (const name of ['file:warmup/../1/model.onnx', 'file:warmup/', 'file:warmup/a/b', 'file:1/config.pbtxt', 'file:model.onnx', 'file:warmup/..']) {
      expect({ name, code: codeOf(() => loadParameters({ [name]: bytes(1) }, 100, tooLarge)) }).toEqual({ name, code: 'BAD_USER_INPUT' });
    }
    expect(codeOf(() => loadParameters({ 'file:warmup/x.raw': { parameter_choice: 'string_param', string_param: 'x' } }, 100, tooLarge))).toBe('BAD_USER_INPUT');
    expect(codeOf(() => loadParameters({ 'file:warmup/x.raw': bytes(101) }, 100, tooLarge))).toBe('MODEL_TOO_LARGE');
  });
});
