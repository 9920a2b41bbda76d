/**
 * BYTES (strings) through every door, against the production build and the
 * seed model that takes them (models/word-language: text BYTES [N, 1] ->
 * probabilities FP32 [N, 6] + language BYTES [N, 1]): the same words give
 * bit-identical answers over REST JSON, the REST binary extension (each
 * element a 4-byte little-endian length, then its bytes), gRPC (typed
 * bytes_contents and length-prefixed raw_input_contents) and GraphQL
 * (strings); malformed string tensors are a coded 400 / INVALID_ARGUMENT on
 * each door, and the gateway keeps serving.
 */
import { status } from '@grpc/grpc-js';
import { ProductionGateway, productionEnv } from '../harness';
import { freePort } from '../helpers/capture';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { graphql } from '../helpers/gateway';
import { OipGrpcClient } from '../grpc/client';
import { oip } from './helpers';

const MODEL = 'word-language';
// One word per language the model knows, plus non-ASCII text (2-, 3- and 4-byte UTF-8) and an empty string.
const WORDS = ['butterfly', 'gemeinschaft', 'maison', 'mariposa', 'ragazzo', 'gezellig', 'größenwahn', 'café', '漢字🦋', ''];
const SHAPE = [WORDS.length, 1];

let gateway: ProductionGateway;
let client: OipGrpcClient;
let key: string;

beforeAll(async () => {
  const grpcPort = await freePort();
  gateway = await ProductionGateway.start({ ...productionEnv(), GRPC_PORT: String(grpcPort), BODY_LIMIT_BYTES: '65536' });
  client = new OipGrpcClient(`127.0.0.1:${grpcPort}`);
  key = (await createTestKey({ scopes: ['inference'] })).key;
}, 60_000);

afterAll(async () => {
  client?.close();
  await gateway?.stop();
  await closeTestKeys();
});

/** Strings as the protocol's BYTES bytes: each a 4-byte little-endian length, then its UTF-8 bytes. */
function lengthPrefixed(elements: (string | Buffer)[]): Buffer {
  return Buffer.concat(
    elements.flatMap((e) => {
      const bytes = typeof e === 'string' ? Buffer.from(e, 'utf8') : e;
      const length = Buffer.alloc(4);
      length.writeUInt32LE(bytes.length);
      return [length, bytes];
    }),
  );
}

/** A binary-extension body: the JSON header, then each input's bytes. */
function binaryBody(inputs: { shape: number[]; bytes: Buffer; datatype?: string }[], binaryOutput = true): { body: Buffer; headers: Record<string, string> } {
  const json = Buffer.from(
    JSON.stringify({
      inputs: inputs.map((i) => ({ name: 'text', datatype: i.datatype ?? 'BYTES', shape: i.shape, parameters: { binary_data_size: i.bytes.length } })),
      ...(binaryOutput ? { parameters: { binary_data_output: true } } : {}),
    }),
  );
  return { body: Buffer.concat([json, ...inputs.map((i) => i.bytes)]), headers: { 'inference-header-content-length': String(json.length), 'content-type': 'application/octet-stream' } };
}

const restUrl = () => `${gateway.url}/v2/models/${MODEL}/infer`;
const jsonHeaders = () => ({ ...authHeaders(key), 'content-type': 'application/json' });

interface JsonOutput {
  name: string;
  datatype: string;
  shape: number[];
  data?: unknown[];
  parameters?: { binary_data_size: number };
}

describe('BYTES through every door (word-language)', () => {
  it('gives the same answer, bit for bit, over REST JSON, REST binary, gRPC typed and raw, and GraphQL', async () => {
    // REST JSON: strings in, strings and numbers out.
    const json = await oip(restUrl(), { headers: jsonHeaders(), body: JSON.stringify({ inputs: [{ name: 'text', datatype: 'BYTES', shape: SHAPE, data: WORDS }] }) });
    expect(json.status).toBe(200);
    const outputs = json.json['outputs'] as JsonOutput[];
    const probabilities = outputs.find((o) => o.name === 'probabilities')!;
    const language = outputs.find((o) => o.name === 'language')!;
    expect(probabilities).toMatchObject({ datatype: 'FP32', shape: [WORDS.length, 6] });
    expect(language).toMatchObject({ datatype: 'BYTES', shape: [WORDS.length, 1] });
    const labels = language.data as string[];
    // The model's answers on the six plain words (0.85 held-out accuracy: it gets these six right; not every word).
    expect(labels.slice(0, 6)).toEqual(['en', 'de', 'fr', 'es', 'it', 'nl']);
    expect(labels.every((l) => ['en', 'de', 'fr', 'es', 'it', 'nl'].includes(l))).toBe(true);
    const probabilityBytes = Buffer.from(Float32Array.from(probabilities.data as number[]).buffer);
    const languageBytes = lengthPrefixed(labels);

    // REST binary extension: length-prefixed in, binary out.
    const { body, headers } = binaryBody([{ shape: SHAPE, bytes: lengthPrefixed(WORDS) }]);
    const binary = await oip(restUrl(), { headers: { ...headers, ...authHeaders(key) }, body });
    expect(binary.status).toBe(200);
    const binaryOutputs = binary.json['outputs'] as JsonOutput[];
    const sizes = binaryOutputs.map((o) => o.parameters!.binary_data_size);
    const parts: Record<string, Buffer> = {};
    let at = 0;
    binaryOutputs.forEach((o, i) => {
      parts[o.name] = binary.binary.subarray(at, at + sizes[i]!);
      at += sizes[i]!;
    });
    expect(parts['probabilities']!.equals(probabilityBytes)).toBe(true);
    expect(parts['language']!.equals(languageBytes)).toBe(true);

    // gRPC: typed bytes_contents and raw length-prefixed contents; outputs always raw.
    const typed = await client.call<{ outputs: { name: string; datatype: string; shape: string[] }[]; raw_output_contents: Buffer[] }>(
      'ModelInfer',
      { model_name: MODEL, inputs: [{ name: 'text', datatype: 'BYTES', shape: SHAPE, contents: { bytes_contents: WORDS.map((w) => Buffer.from(w, 'utf8')) } }] },
      key,
    );
    const raw = await client.call<{ outputs: { name: string; datatype: string; shape: string[] }[]; raw_output_contents: Buffer[] }>(
      'ModelInfer',
      { model_name: MODEL, inputs: [{ name: 'text', datatype: 'BYTES', shape: SHAPE }], raw_input_contents: [lengthPrefixed(WORDS)] },
      key,
    );
    for (const answer of [typed, raw]) {
      expect(answer.ok).toBe(true);
      const byName = Object.fromEntries(answer.response!.outputs.map((o, i) => [o.name, { ...o, bytes: answer.response!.raw_output_contents[i]! }]));
      expect(byName['language']).toMatchObject({ datatype: 'BYTES', shape: [String(WORDS.length), '1'] });
      expect(byName['probabilities']!.bytes.equals(probabilityBytes)).toBe(true);
      expect(byName['language']!.bytes.equals(languageBytes)).toBe(true);
    }

    // GraphQL: strings in, strings (and the length-prefixed base64) out.
    const gql = await graphql<{ infer: { outputs: { name: string; datatype: string; shape: number[]; strings: string[] | null; dataBase64: string }[] } }>(
      gateway.url,
      'mutation($input: InferInput!) { infer(input: $input) { outputs { name datatype shape strings dataBase64 } } }',
      { input: { model: MODEL, inputs: [{ name: 'text', datatype: 'BYTES', shape: SHAPE, strings: WORDS }] } },
      authHeaders(key),
    );
    expect(gql.body.errors).toBeUndefined();
    const gqlOutputs = Object.fromEntries(gql.body.data!.infer.outputs.map((o) => [o.name, o]));
    expect(gqlOutputs['language']!.strings).toEqual(labels);
    expect(gqlOutputs['probabilities']!.strings).toBeNull();
    expect(Buffer.from(gqlOutputs['probabilities']!.dataBase64, 'base64').equals(probabilityBytes)).toBe(true);
    expect(Buffer.from(gqlOutputs['language']!.dataBase64, 'base64').equals(languageBytes)).toBe(true);
  });

  it('answers concurrent string requests, batched together or not, each with its own words (string outputs split per request)', async () => {
    const infer = (words: string[]) =>
      graphql<{ infer: { batchSize: number; outputs: { name: string; strings: string[] | null; dataBase64: string }[] } }>(
        gateway.url,
        'mutation($input: InferInput!) { infer(input: $input) { batchSize outputs { name strings dataBase64 } } }',
        { input: { model: MODEL, inputs: [{ name: 'text', datatype: 'BYTES', shape: [words.length, 1], strings: words }] } },
        authHeaders(key),
      );
    // Requests of 1 to 3 words, so items of different requests sit at different offsets of a batch.
    const requests = Array.from({ length: 24 }, (_, i) => WORDS.slice(i % WORDS.length, (i % WORDS.length) + 1 + (i % 3)));
    const alone: Awaited<ReturnType<typeof infer>>[] = [];
    for (const words of requests) alone.push(await infer(words));
    const together = await Promise.all(requests.map((words) => infer(words)));
    together.forEach((answer, i) => {
      expect(answer.body.errors).toBeUndefined();
      expect(answer.body.data!.infer.outputs).toEqual(alone[i]!.body.data!.infer.outputs);
      expect(answer.body.data!.infer.outputs.find((o) => o.name === 'language')!.strings).toHaveLength(requests[i]!.length);
    });
    // dataBase64 in: the same length-prefixed bytes as the binary extension.
    const base64 = await graphql<{ infer: { outputs: { name: string; strings: string[] | null }[] } }>(
      gateway.url,
      'mutation($input: InferInput!) { infer(input: $input) { outputs { name strings } } }',
      { input: { model: MODEL, inputs: [{ name: 'text', datatype: 'BYTES', shape: [2, 1], dataBase64: lengthPrefixed(['maison', 'gezellig']).toString('base64') }] } },
      authHeaders(key),
    );
    expect(base64.body.data!.infer.outputs.find((o) => o.name === 'language')!.strings).toEqual(['fr', 'nl']);
  });

  it('shows BYTES in the model metadata and TYPE_STRING in its Triton config', async () => {
    const metadata = await oip(`${gateway.url}/v2/models/${MODEL}`, { headers: authHeaders(key) });
    expect(metadata.json).toMatchObject({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [-1, 1] }], outputs: [{ name: 'probabilities', datatype: 'FP32' }, { name: 'language', datatype: 'BYTES' }] });
    const config = await oip(`${gateway.url}/v2/models/${MODEL}/config`, { headers: authHeaders(key) });
    expect(JSON.stringify(config.json)).toContain('"data_type":"TYPE_STRING"');
  });

  it('refuses malformed string tensors on every door with a coded 400 / INVALID_ARGUMENT naming the problem, and keeps serving', async () => {
    const longPrefix = Buffer.concat([lengthPrefixed(['abc']).subarray(0, 4).fill(0), Buffer.from('abc')]);
    longPrefix.writeUInt32LE(1000, 0);
    const notUtf8 = lengthPrefixed([Buffer.from([0x68, 0xff, 0xfe, 0x69])]);
    const rest: [string, { body: Buffer | string; headers: Record<string, string> }, string, RegExp][] = [
      ['a length prefix past the end', binaryBody([{ shape: [1, 1], bytes: longPrefix }]), 'inputs[0].parameters.binary_data_size', /its length 1000 runs past the end/],
      ['a truncated length prefix', binaryBody([{ shape: [2, 1], bytes: Buffer.concat([lengthPrefixed(['abc']), Buffer.from([1, 0])]) }]), 'inputs[0].parameters.binary_data_size', /2 bytes left where a 4-byte length was expected/],
      ['fewer elements than the shape', binaryBody([{ shape: [3, 1], bytes: lengthPrefixed(['a', 'b']) }]), 'inputs[0].parameters.binary_data_size', /2 elements; the shape takes 3/],
      ['more elements than the shape', binaryBody([{ shape: [1, 1], bytes: lengthPrefixed(['a', 'b']) }]), 'inputs[0].parameters.binary_data_size', /bytes after the 1 elements/],
      ['a non-UTF-8 element', binaryBody([{ shape: [1, 1], bytes: notUtf8 }]), 'inputs[0].parameters.binary_data_size', /element 0 is not UTF-8/],
      ['JSON numbers for BYTES', { body: JSON.stringify({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 1], data: [1] }] }), headers: {} }, 'inputs[0].data', /BYTES data must hold strings/],
      ['JSON strings fewer than the shape', { body: JSON.stringify({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [2, 1], data: ['a'] }] }), headers: {} }, 'inputs[0].data', /data has 1 elements; shape \[2,1\] needs 2/],
      ['a lone surrogate in a JSON string', { body: '{"inputs":[{"name":"text","datatype":"BYTES","shape":[1,1],"data":["a\\ud800"]}]}', headers: {} }, 'inputs[0].data', /not well-formed Unicode/],
      ['JSON that is not UTF-8', { body: Buffer.concat([Buffer.from('{"inputs":[{"name":"text","datatype":"BYTES","shape":[1,1],"data":["'), Buffer.from([0xc3, 0x28]), Buffer.from('"]}]}')]), headers: {} }, 'body', /must be UTF-8/],
      ['strings for a numeric model', { body: JSON.stringify({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1, 1, 28, 28], data: ['x'] }] }), headers: {} }, 'inputs[0].datatype', /is FP32, got BYTES/],
    ];
    const seen: Record<string, [number, unknown, unknown]> = {};
    for (const [name, request, , ] of rest) {
      const model = name === 'strings for a numeric model' ? 'fashion-cnn' : MODEL;
      const res = await oip(`${gateway.url}/v2/models/${model}/infer`, { headers: { 'content-type': 'application/json', ...request.headers, ...authHeaders(key) }, body: request.body });
      seen[name] = [res.status, res.json['code'], (res.json['details'] as Record<string, unknown> | undefined)?.['field'] ?? res.json['field']];
      expect([name, res.json['error']]).toEqual([name, expect.stringMatching(rest.find((r) => r[0] === name)![3])]);
    }
    expect(seen).toEqual(Object.fromEntries(rest.map(([name, , field]) => [name, [400, 'BAD_USER_INPUT', field]])));

    const grpc: [string, Record<string, unknown>, RegExp][] = [
      ['raw: a length prefix past the end', { raw_input_contents: [longPrefix], shape: [1, 1] }, /its length 1000 runs past the end/],
      ['raw: truncated', { raw_input_contents: [Buffer.from([3, 0, 0])], shape: [1, 1] }, /3 bytes left where a 4-byte length was expected/],
      ['raw: count disagrees with the shape', { raw_input_contents: [lengthPrefixed(['a'])], shape: [2, 1] }, /1 elements; the shape takes 2/],
      ['raw: non-UTF-8', { raw_input_contents: [notUtf8], shape: [1, 1] }, /element 0 is not UTF-8/],
      ['typed: non-UTF-8', { contents: { bytes_contents: [Buffer.from([0xff])] }, shape: [1, 1] }, /element 0 is not UTF-8/],
      ['typed: count disagrees with the shape', { contents: { bytes_contents: [Buffer.from('a')] }, shape: [3, 1] }, /bytes_contents has 1 values; the shape takes 3/],
      ['typed: numbers for BYTES', { contents: { int_contents: [1] }, shape: [1, 1] }, /BYTES values go in contents.bytes_contents/],
    ];
    for (const [name, edit, message] of grpc) {
      const { raw_input_contents: rawContents, shape, contents } = edit as { raw_input_contents?: Buffer[]; shape: number[]; contents?: Record<string, unknown> };
      const answer = await client.call('ModelInfer', { model_name: MODEL, inputs: [{ name: 'text', datatype: 'BYTES', shape, ...(contents ? { contents } : {}) }], ...(rawContents ? { raw_input_contents: rawContents } : {}) }, key);
      expect([name, answer.status.code, answer.status.details]).toEqual([name, status.INVALID_ARGUMENT, expect.stringMatching(message)]);
    }

    const gql = await graphql(
      gateway.url,
      'mutation($input: InferInput!) { infer(input: $input) { outputs { name } } }',
      { input: { model: MODEL, inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 1], data: [1] }] } },
      authHeaders(key),
    );
    expect(gql.body.errors?.[0]).toMatchObject({ message: expect.stringMatching(/is BYTES: give strings, not numbers/), extensions: { code: 'BAD_USER_INPUT' } });
    const numericData = await graphql(
      gateway.url,
      'mutation($input: InferInput!) { infer(input: $input) { outputs { name data } } }',
      { input: { model: MODEL, inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 1], strings: ['haus'] }] } },
      authHeaders(key),
    );
    expect(numericData.body.errors?.[0]).toMatchObject({ message: expect.stringMatching(/output "language" is BYTES: select strings/) });

    // Still serving, strings and numbers alike.
    const after = await oip(restUrl(), { headers: jsonHeaders(), body: JSON.stringify({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 1], data: ['maison'] }] }) });
    expect(after.status).toBe(200);
    expect(gateway.running).toBe(true);
  });

  it('bounds a string tensor by the body limit (BODY_LIMIT_BYTES) on REST and gRPC', async () => {
    const big = 'x'.repeat(70_000);
    const rest = await oip(restUrl(), { headers: jsonHeaders(), body: JSON.stringify({ inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 1], data: [big] }] }) });
    expect([rest.status, rest.json['code']]).toEqual([413, 'PAYLOAD_TOO_LARGE']);
    const grpc = await client.call('ModelInfer', { model_name: MODEL, inputs: [{ name: 'text', datatype: 'BYTES', shape: [1, 1] }], raw_input_contents: [lengthPrefixed([big])] }, key);
    expect(grpc.status.code).toBe(status.RESOURCE_EXHAUSTED);
  });
});
