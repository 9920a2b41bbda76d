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

  it('reads BYTES raw (length-prefixed, passed on as sent) or typed (bytes_contents, joined length-prefixed): the engine gets the same bytes', () => {
    const joined = joinLengthPrefixed(words);
    for (const m of [message({}, [joined]), message({ contents: { ...EMPTY_CONTENTS, bytes_contents: words } })]) {
      const input = parseModelInfer(m, null).inputs[0]!;
      expect(input.datatype).toBe('BYTES');
      expect(input.shape).toEqual([2]);
      expect(input.bytes?.equals(joined)).toBe(true);
    }
  });

  // Framing, element count of raw bytes and UTF-8 are the engine's checks (one for every door): test/oip/oip-bytes.test.ts.
  it.each([
    ['bytes_contents fewer than the shape', message({ shape: ['3'], contents: { ...EMPTY_CONTENTS, bytes_contents: words } }), 'inputs[0].contents.bytes_contents', /has 2 values; the shape takes 3/],
    ['BYTES in another contents field', message({ contents: { ...EMPTY_CONTENTS, int_contents: [1, 2] } }), 'inputs[0].contents.int_contents', /BYTES values go in contents.bytes_contents/],
    ['both raw and typed contents', message({ contents: { ...EMPTY_CONTENTS, bytes_contents: words } }, [joinLengthPrefixed(words)]), 'inputs[0].contents', /not both/],
  ])('refuses %s, naming the field', (_, m, field, reason) => {
    const r = refusal(m);
    expect(r.field).toBe(field);
    expect(r.message).toMatch(reason);
  });
});
