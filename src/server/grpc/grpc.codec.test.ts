import { BadInputError } from '../../errors';
import { joinLengthPrefixed } from '../../inference/tensor';
import { parseModelInfer, type ModelInferRequestMessage } from './grpc.codec';

const EMPTY_CONTENTS = { bool_contents: [], int_contents: [], int64_contents: [], uint_contents: [], uint64_contents: [], fp32_contents: [], fp64_contents: [], bytes_contents: [] };

/** A ModelInferRequest as proto-loader decodes one (defaults filled in). */
function message(input: Partial<ModelInferRequestMessage['inputs'][number]>, raw: Buffer[] = []): ModelInferRequestMessage {
  return {
    model_name: 'm',
    model_version: '',
    id: '',
    parameters: {},
    inputs: [{ name: 'text', datatype: 'BYTES', shape: ['2'], parameters: {}, contents: null, ...input }],
    outputs: [],
    raw_input_contents: raw,
  };
}

function refusal(m: ModelInferRequestMessage): { field: unknown; message: string } {
  try {
    parseModelInfer(m, null);
  } catch (error) {
    if (error instanceof BadInputError) return { field: error.extensions['field'], message: error.message };
    throw error;
  }
  throw new Error('parsed');
}

describe('gRPC codec: BYTES inputs', () => {
  const words = [Buffer.from('a'), Buffer.from('héllo')];

  it('reads well-formed BYTES, raw (length-prefixed) or typed (bytes_contents), then refuses them: no served model takes BYTES', () => {
    for (const m of [message({}, [joinLengthPrefixed(words)]), message({ contents: { ...EMPTY_CONTENTS, bytes_contents: words } })]) {
      expect(refusal(m)).toEqual({ field: 'inputs[0].datatype', message: expect.stringMatching(/^datatype BYTES is read but no model served here takes it/) });
    }
  });

  it.each([
    ['raw bytes that are not length-prefixed', message({}, [Buffer.alloc(8, 0xff)]), 'inputs[0].raw_input_contents', /runs past the end/],
    ['raw elements fewer than the shape', message({ shape: ['3'] }, [joinLengthPrefixed(words)]), 'inputs[0].raw_input_contents', /2 elements; the shape takes 3/],
    ['raw bytes past the last element', message({ shape: ['1'] }, [joinLengthPrefixed(words)]), 'inputs[0].raw_input_contents', /bytes after the 1 elements/],
    ['bytes_contents fewer than the shape', message({ shape: ['3'], contents: { ...EMPTY_CONTENTS, bytes_contents: words } }), 'inputs[0].contents.bytes_contents', /has 2 values; the shape takes 3/],
    ['BYTES in another contents field', message({ contents: { ...EMPTY_CONTENTS, int_contents: [1, 2] } }), 'inputs[0].contents.int_contents', /BYTES values go in contents.bytes_contents/],
  ])('refuses %s, naming the field', (_, m, field, reason) => {
    const r = refusal(m);
    expect(r.field).toBe(field);
    expect(r.message).toMatch(reason);
  });
});
