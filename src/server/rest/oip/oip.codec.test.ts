import { joinLengthPrefixed } from '../../../inference/tensor';
import { DomainError } from '../../../errors';
import { encodeInferResponse, headerLength, parseInferRequest } from './oip.codec';

const target = { model: 'm', version: null };

function binaryBody(json: unknown, ...tensors: Buffer[]): { body: Buffer; header: number } {
  const head = Buffer.from(JSON.stringify(json));
  return { body: Buffer.concat([head, ...tensors]), header: head.length };
}

function fieldOf(run: () => unknown): string | undefined {
  try {
    run();
  } catch (error) {
    if (error instanceof DomainError && error.code === 'BAD_USER_INPUT') return String(error.extensions['field']);
    throw error;
  }
  return undefined;
}

describe('OIP request parsing', () => {
  it('flattens nested data row major and reads BOOL true/false as 1/0', () => {
    const body = Buffer.from(JSON.stringify({ inputs: [{ name: 'x', datatype: 'FP32', shape: [2, 2], data: [[1, 2], [3, 4]] }, { name: 'b', datatype: 'BOOL', shape: [2], data: [true, false] }] }));
    const { request } = parseInferRequest(body, null, target);
    expect(request.inputs.map((i) => i.data)).toEqual([[1, 2, 3, 4], [1, 0]]);
  });

  it('reads BYTES data as strings (flat or nested), not numbers', () => {
    const body = Buffer.from(JSON.stringify({ inputs: [{ name: 't', datatype: 'BYTES', shape: [2, 1], data: [['haus'], ['café']] }] }));
    const { request } = parseInferRequest(body, null, target);
    expect(request.inputs[0]).toMatchObject({ datatype: 'BYTES', strings: ['haus', 'café'] });
    expect(request.inputs[0]!.data).toBeUndefined();
  });

  it('refuses JSON that is not UTF-8 when it carries BYTES inputs', () => {
    const body = Buffer.concat([Buffer.from('{"inputs":[{"name":"t","datatype":"BYTES","shape":[1],"data":["'), Buffer.from([0xff]), Buffer.from('"]}]}')]);
    expect(fieldOf(() => parseInferRequest(body, null, target))).toBe('body');
  });

  it('hands binary inputs over as byte views of the body, in input order', () => {
    const a = Buffer.from([1, 2, 3, 4]);
    const b = Buffer.from([5, 6]);
    const { body, header } = binaryBody(
      { inputs: [{ name: 'a', datatype: 'INT32', shape: [1], parameters: { binary_data_size: 4 } }, { name: 'j', datatype: 'INT8', shape: [1], data: [7] }, { name: 'b', datatype: 'INT16', shape: [1], parameters: { binary_data_size: 2 } }] },
      a,
      b,
    );
    const { request } = parseInferRequest(body, header, target);
    expect(request.inputs.map((i) => (i.bytes ? [...i.bytes] : i.data))).toEqual([[1, 2, 3, 4], [7], [5, 6]]);
  });

  it('maps Triton parameters: timeout in µs to ms (rounded up), priority, outputs and their binary flags', () => {
    const body = Buffer.from(JSON.stringify({ id: 'r', parameters: { timeout: 1500, priority: 3, binary_data_output: true }, inputs: [{ name: 'x', datatype: 'FP32', shape: [1], data: [0] }], outputs: [{ name: 'o1', parameters: { binary_data: false } }, { name: 'o2' }] }));
    const parsed = parseInferRequest(body, null, target);
    expect(parsed.request).toMatchObject({ id: 'r', outputs: ['o1', 'o2'], parameters: { timeoutMs: 2, priority: 3 } });
    expect(parsed.binaryByDefault).toBe(true);
    expect([...parsed.explicit]).toEqual([['o1', false]]);
  });

  it.each([
    ['a body shorter than its binary_data_size', (): [Buffer, number] => { const x = binaryBody({ inputs: [{ name: 'a', datatype: 'UINT8', shape: [4], parameters: { binary_data_size: 4 } }] }, Buffer.from([1, 2, 3])); return [x.body, x.header]; }, 'inputs[0].parameters.binary_data_size'],
    ['bytes left after the last input', (): [Buffer, number] => { const x = binaryBody({ inputs: [{ name: 'a', datatype: 'UINT8', shape: [2], parameters: { binary_data_size: 2 } }] }, Buffer.from([1, 2, 3])); return [x.body, x.header]; }, 'body'],
    ['a header length past the body', (): [Buffer, number] => { const x = binaryBody({ inputs: [] }); return [x.body, x.header + 1]; }, 'Inference-Header-Content-Length'],
    ['a header length that cuts the JSON', (): [Buffer, number] => { const x = binaryBody({ inputs: [{ name: 'a', datatype: 'UINT8', shape: [1], data: [1] }] }); return [x.body, x.header - 3]; }, 'body'],
    ['data and binary_data_size together', (): [Buffer, number] => { const x = binaryBody({ inputs: [{ name: 'a', datatype: 'UINT8', shape: [1], data: [1], parameters: { binary_data_size: 1 } }] }, Buffer.from([1])); return [x.body, x.header]; }, 'inputs[0].data'],
    ['a negative binary_data_size', (): [Buffer, number] => { const x = binaryBody({ inputs: [{ name: 'a', datatype: 'UINT8', shape: [1], parameters: { binary_data_size: -1 } }] }); return [x.body, x.header]; }, 'inputs[0].parameters.binary_data_size'],
    ['neither data nor binary data', (): [Buffer, number] => { const x = binaryBody({ inputs: [{ name: 'a', datatype: 'UINT8', shape: [1] }] }); return [x.body, x.header]; }, 'inputs[0].data'],
    ['a datatype outside the protocol', (): [Buffer, number] => { const x = binaryBody({ inputs: [{ name: 'a', datatype: 'FLOAT', shape: [1], data: [1] }] }); return [x.body, x.header]; }, 'inputs[0].datatype'],
    ['numbers for BYTES', (): [Buffer, number] => { const x = binaryBody({ inputs: [{ name: 'a', datatype: 'BYTES', shape: [1], data: [1] }] }); return [x.body, x.header]; }, 'inputs[0].data'],
    ['more strings than the shape', (): [Buffer, number] => { const x = binaryBody({ inputs: [{ name: 'a', datatype: 'BYTES', shape: [1], data: ['a', 'b'] }] }); return [x.body, x.header]; }, 'inputs[0].data'],
    ['a shape that is not numbers', (): [Buffer, number] => { const x = binaryBody({ inputs: [{ name: 'a', datatype: 'UINT8', shape: ['1'], data: [1] }] }); return [x.body, x.header]; }, 'inputs[0].shape[0]'],
  ])('refuses %s (400 naming the field)', (_what, build, field) => {
    const [body, header] = build();
    expect(fieldOf(() => parseInferRequest(body, header, target))).toBe(field);
  });

  it('reads Inference-Header-Content-Length strictly', () => {
    expect(headerLength(undefined)).toBeNull();
    expect(headerLength(' 42 ')).toBe(42);
    for (const bad of ['-1', '4.2', '0x10', '', '1e3']) expect(fieldOf(() => headerLength(bad))).toBe('Inference-Header-Content-Length');
  });

  it('stops walking data at the first element past what the shape declares', () => {
    const body = (data: unknown) => Buffer.from(JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 2], data }] }));
    expect(parseInferRequest(body([1, 2]), null, target).request.inputs[0]!.data).toEqual([1, 2]);
    expect(parseInferRequest(body([[1, 2]]), null, target).request.inputs[0]!.data).toEqual([1, 2]);
    expect(fieldOf(() => parseInferRequest(body([1, 2, 3]), null, target))).toBe('inputs[0].data');
    expect(fieldOf(() => parseInferRequest(body([[1, 2], [3]]), null, target))).toBe('inputs[0].data');
  });
});

describe('OIP response encoding', () => {
  const result = {
    modelName: 'm',
    modelVersion: '1',
    id: null,
    queueMs: 0,
    computeMs: 0,
    executionProvider: 'cpu',
    batchSize: 1,
    outputs: [
      { name: 'a', datatype: 'FP32' as const, shape: [2], bytes: Buffer.from(new Float32Array([0.5, -1]).buffer) },
      { name: 'b', datatype: 'INT8' as const, shape: [3], bytes: Buffer.from([1, 255, 3]) },
      { name: 'c', datatype: 'BYTES' as const, shape: [2], bytes: joinLengthPrefixed([Buffer.from('en'), Buffer.from('漢字')]) },
    ],
  };

  it('answers JSON when no output is binary', () => {
    const encoded = encodeInferResponse({ request: { model: 'm', inputs: [] }, binaryByDefault: false, explicit: new Map() }, result);
    expect(encoded.contentType).toBe('application/json');
    expect(JSON.parse(encoded.body.toString())).toEqual({
      model_name: 'm',
      model_version: '1',
      outputs: [
        { name: 'a', datatype: 'FP32', shape: [2], data: [0.5, -1] },
        { name: 'b', datatype: 'INT8', shape: [3], data: [1, -1, 3] },
        { name: 'c', datatype: 'BYTES', shape: [2], data: ['en', '漢字'] },
      ],
    });
  });

  it('puts binary outputs after the JSON in output order with their sizes', () => {
    const encoded = encodeInferResponse({ request: { model: 'm', inputs: [] }, binaryByDefault: true, explicit: new Map([['a', false]]) }, result);
    expect(encoded.contentType).toBe('application/octet-stream');
    const json = JSON.parse(encoded.body.toString('utf8', 0, encoded.headerLength!)) as { outputs: Record<string, unknown>[] };
    expect(json.outputs[1]).toEqual({ name: 'b', datatype: 'INT8', shape: [3], parameters: { binary_data_size: 3 } });
    // BYTES travel binary as they do in the request: each element a 4-byte little-endian length, then its bytes.
    expect(json.outputs[2]).toEqual({ name: 'c', datatype: 'BYTES', shape: [2], parameters: { binary_data_size: 4 + 2 + 4 + 6 } });
    expect([...encoded.body.subarray(encoded.headerLength!)]).toEqual([1, 255, 3, 2, 0, 0, 0, ...Buffer.from('en'), 6, 0, 0, 0, ...Buffer.from('漢字')]);
  });
});
