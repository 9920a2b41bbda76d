/**
 * The hostile-input fuzzer (issue #12): fast-check generates requests over
 * the schema's inputs (infer, classify, keys, usage, models, raw GraphQL
 * text) and over the HTTP layer (methods, routes, content types, bodies),
 * plus the table as fixed cases, and sends them to a production
 * build with a few in flight at once. Every answer is checked against the
 * error contract; the gateway must stay up and ready.
 *
 * Generated with fc.sample from a seed (printed), not fc.assert: the point is
 * volume and concurrency against one process, and a failing request is
 * reported as it was sent (replay it with the same seed).
 */
import { deflateSync, gzipSync } from 'node:zlib';
import fc from 'fast-check';
import sharp from 'sharp';
import { contractViolations, metricValue } from './helpers';

export interface FuzzTarget {
  url: string;
  port: number;
  running: boolean;
}

export interface FuzzKeys {
  /** inference + usage:read + keys:manage */
  user: string;
  admin: string;
  /** a real key of another tenant, used as hostile text */
  foreign: string;
}

export interface FuzzCase {
  kind: string;
  method: string;
  route: string;
  headers: Record<string, string>;
  body?: string | Buffer;
}

export interface FuzzReport {
  seed: number;
  requests: number;
  /** Requests the gateway did not answer (connection refused or reset) or a gateway that exited. */
  crashes: number;
  /** Bodies over BODY_LIMIT_BYTES whose 413 the client did not read (connection closed while sending). */
  oversizeResets: number;
  /** 5xx other than the documented 503/504. */
  undocumented5xx: number;
  undocumentedCodes: number;
  leaks: number;
  /** Bodies without the contract's shape (no errors on a 4xx, no request id). */
  uncoded: number;
  statuses: Record<string, number>;
  codes: Record<string, number>;
  maxLoopDelaySeconds: number | undefined;
  healthyAfter: boolean;
  examples: string[];
}

const INFER = 'mutation($input: InferInput!) { infer(input: $input) { modelName outputs { name shape data dataBase64 } } }';
const INFER_B64 = 'mutation($input: InferInput!) { infer(input: $input) { outputs { name dataBase64 } batchSize } }';
const CLASSIFY = 'mutation($model: String!, $images: [ImageInput!]!, $topK: Int!) { classify(model: $model, images: $images, topK: $topK) { results { predictions { label probability } attention } } }';

const MODELS = ['fashion-cnn', 'fashion-lstm', 'fashion-attention', 'fashion-hybrid'];
const DATATYPES = ['BOOL', 'UINT8', 'INT8', 'INT16', 'INT32', 'INT64', 'FP16', 'FP32', 'FP64'];

/** Strings a hostile client would try: control characters, surrogates, SQL, paths, huge, keys. */
function hostileString(keys: FuzzKeys): fc.Arbitrary<string> {
  return fc.oneof(
    fc.string({ maxLength: 40 }),
    fc.string({ unit: 'binary', maxLength: 40 }),
    fc.constantFrom('', ' ', 'a\u0000b', '\u0000', 'x\ud800', '\udfff', '\ufffe', "'; DROP TABLE \"UsageRecord\"; --", '../../etc/passwd', '%00', '${jndi:x}', keys.foreign, keys.foreign.slice(0, 16), 'fashion-cnn\u0000', 'ＦＡＳＨＩＯＮ'),
    fc.constantFrom(...MODELS),
    fc.integer({ min: 0, max: 4000 }).map((n) => 'x'.repeat(n)),
  );
}

function numbers(): fc.Arbitrary<number> {
  return fc.oneof(fc.double({ noNaN: true, noDefaultInfinity: true }), fc.integer(), fc.constantFrom(0, 1, -1, 255, 3.4e38, -3.4e38, 1e308, 2 ** 53 + 2, 65504, 1e-45));
}

function base64(): fc.Arbitrary<string> {
  return fc.oneof(
    fc.uint8Array({ maxLength: 8000 }).map((b) => Buffer.from(b).toString('base64')),
    fc.constantFrom(784 * 4, 784 * 8, 784 * 2, 784, 3136 * 2).chain((n) => fc.constant(n)).map((n) => Buffer.alloc(n, 0x3f).toString('base64')),
    fc.integer({ min: 1, max: 64 }).map((n) => {
      const b = Buffer.alloc(n * 784 * 4);
      for (let i = 0; i < n * 784; i += 1) b.writeFloatLE(i % 7 === 0 ? 3.4e38 : -3.4e38, i * 4);
      return b.toString('base64');
    }),
    fc.constantFrom('!!!!', '====', 'A', 'AAA=A', 'AA==AA==', '\u0000', 'ÿÿÿÿ'),
    fc.string({ maxLength: 200 }),
  );
}

function shape(): fc.Arbitrary<number[]> {
  return fc.oneof(
    fc.constant<number[]>([1, 1, 28, 28]),
    fc.integer({ min: 1, max: 300 }).map((n) => [n, 1, 28, 28]),
    fc.array(fc.oneof(fc.integer({ min: -3, max: 40 }), fc.constantFrom(0, 2 ** 31 - 1, 1e9)), { maxLength: 7 }),
  );
}

function tensor(keys: FuzzKeys): fc.Arbitrary<Record<string, unknown>> {
  return fc.record(
    {
      name: fc.oneof(fc.constantFrom('image', 'input', 'x'), hostileString(keys)),
      datatype: fc.oneof({ weight: 5, arbitrary: fc.constantFrom('FP32') }, fc.constantFrom(...DATATYPES)),
      shape: shape(),
      data: fc.oneof(
        fc.array(numbers(), { maxLength: 50 }),
        fc.constantFrom(784, 1568, 16_000, 16_385, 40_000, 70_000).map((n) => new Array<number>(n).fill(0.5)),
      ),
      dataBase64: base64(),
    },
    { requiredKeys: ['name', 'datatype', 'shape'] },
  );
}

function inferInput(keys: FuzzKeys): fc.Arbitrary<Record<string, unknown>> {
  return fc.record(
    {
      model: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...MODELS) }, hostileString(keys)),
      version: fc.oneof(fc.constantFrom('1', '2', '0', '-1', '999', '1.5', 'latest'), hostileString(keys)),
      id: hostileString(keys),
      inputs: fc.array(tensor(keys), { maxLength: 3 }),
      outputs: fc.array(fc.oneof(fc.constantFrom('logits', 'probabilities', 'attention'), hostileString(keys)), { maxLength: 3 }),
      parameters: fc.record({ timeoutMs: fc.integer({ min: -10, max: 100_000 }), priority: fc.integer({ min: -5000, max: 5000 }) }, { requiredKeys: [] }),
    },
    { requiredKeys: ['model', 'inputs'] },
  );
}

function image(keys: FuzzKeys): fc.Arbitrary<Record<string, unknown>> {
  return fc.oneof(
    fc.record({ image: base64() }),
    fc.record({ image: hostileString(keys) }),
    // png: the deprecated old name of image, still accepted; both together are refused.
    fc.record({ png: base64() }),
    fc.record({ png: hostileString(keys) }),
    fc.record({ image: base64(), png: base64() }),
    fc
      .record({ width: fc.integer({ min: -2, max: 1100 }), height: fc.integer({ min: -2, max: 1100 }), channels: fc.constantFrom(1, 2, 3, 4, 5) })
      .chain((d) =>
        fc.record({
          width: fc.constant(d.width),
          height: fc.constant(d.height),
          channels: fc.constant(d.channels),
          pixels: fc.oneof(
            fc.constant(new Array<number>(Math.max(0, Math.min(d.width * d.height * d.channels, 50_000))).fill(128)),
            fc.array(fc.oneof(fc.integer({ min: -5, max: 300 }), fc.double()), { maxLength: 30 }),
          ),
        }),
      ),
    fc.record({ png: base64(), pixels: fc.array(fc.integer(), { maxLength: 5 }) }),
  );
}

function gql(query: string, variables: unknown, headers: Record<string, string>, kind: string): FuzzCase {
  return { kind, method: 'POST', route: '/graphql', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query, variables }) };
}

/**
 * The Open Inference Protocol's JSON door (/v2): the same tensors as OIP JSON,
 * sent plain, gzip'd or deflated (or with a wrong or unknown Content-Encoding),
 * with or without an Inference-Header-Content-Length.
 */
function oipCase(keys: FuzzKeys): fc.Arbitrary<FuzzCase> {
  const input = fc.record(
    {
      name: fc.oneof(fc.constantFrom('image'), hostileString(keys)),
      datatype: fc.oneof({ weight: 5, arbitrary: fc.constantFrom('FP32') }, fc.constantFrom(...DATATYPES, 'BYTES', 'x')),
      shape: shape(),
      data: fc.oneof(
        fc.array(numbers(), { maxLength: 50 }),
        fc.constantFrom(784, 1568, 16_000, 30_000, 70_000).map((n) => new Array<number>(n).fill(0)),
        fc.constant([[[['x']]]]),
      ),
      parameters: fc.record({ binary_data_size: fc.integer({ min: -4, max: 5000 }) }, { requiredKeys: [] }),
    },
    { requiredKeys: ['name', 'datatype', 'shape'] },
  );
  const request = fc.record(
    { id: hostileString(keys), inputs: fc.array(input, { maxLength: 3 }), parameters: fc.record({ binary_data_output: fc.boolean(), timeout: fc.integer({ min: -5, max: 10_000_000 }) }, { requiredKeys: [] }) },
    { requiredKeys: ['inputs'] },
  );
  const body = fc.oneof({ weight: 6, arbitrary: request.map((b) => JSON.stringify(b)) }, { weight: 1, arbitrary: fc.string({ maxLength: 200 }) });
  return fc
    .record({
      model: fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...MODELS) }, hostileString(keys).map((m) => [...Buffer.from(m)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')), fc.constantFrom('%E0%A4%A', 'm'.repeat(128), 'm'.repeat(300))),
      route: fc.constantFrom('infer', 'explain'),
      body,
      encoding: fc.constantFrom('', '', 'gzip', 'deflate', 'gzip-wrong', 'br'),
      header: fc.oneof(fc.constant(null), fc.constantFrom('0', '5', '-1', 'x', '999999999')),
    })
    .map(({ model, route, body, encoding, header }): FuzzCase => {
      const bytes = Buffer.from(body);
      const encoded = encoding === 'gzip' ? gzipSync(bytes) : encoding === 'deflate' ? deflateSync(bytes) : bytes;
      return {
        kind: `oip-${encoding || 'plain'}`,
        method: 'POST',
        route: `/v2/models/${model}/${route}`,
        headers: {
          'content-type': 'application/json',
          ...(encoding ? { 'content-encoding': encoding === 'gzip-wrong' ? 'gzip' : encoding } : {}),
          ...(header !== null ? { 'inference-header-content-length': header } : {}),
        },
        body: encoded,
      };
    });
}

/** The issue #28 bombs: 10 M zeros as OIP JSON (~20 MB) gzip'd and deflated, a body inflating past the limit, and 2 M values plain. */
function oipBombs(keys: FuzzKeys): FuzzCase[] {
  const values = (n: number) => Buffer.from(`{"inputs":[{"name":"image","datatype":"FP32","shape":[1,1,28,28],"data":[${'0,'.repeat(n - 1)}0]}]}`);
  const json = values(10_000_000);
  const headers = (encoding: string) => ({ authorization: `Bearer ${keys.user}`, 'content-type': 'application/json', 'content-encoding': encoding });
  const route = '/v2/models/fashion-cnn/infer';
  return [
    { kind: 'fixed:oip-gzip-bomb', method: 'POST', route, headers: headers('gzip'), body: gzipSync(json, { level: 9 }) },
    { kind: 'fixed:oip-deflate-bomb', method: 'POST', route, headers: headers('deflate'), body: deflateSync(json, { level: 9 }) },
    { kind: 'fixed:oip-inflates-past-limit', method: 'POST', route, headers: headers('gzip'), body: gzipSync(Buffer.alloc(21 * 1024 * 1024, 32)) },
    { kind: 'fixed:oip-plain-values', method: 'POST', route, headers: headers('identity'), body: values(2_000_000) },
  ];
}

/** Every generated request, weighted towards the inference inputs. */
export function fuzzCase(keys: FuzzKeys): fc.Arbitrary<FuzzCase> {
  const auth = fc.oneof(
    { weight: 6, arbitrary: fc.constant({ authorization: `Bearer ${keys.user}` }) },
    { weight: 1, arbitrary: fc.constant({ authorization: `Bearer ${keys.admin}` }) },
    { weight: 1, arbitrary: fc.constant<Record<string, string>>({}) },
    { weight: 1, arbitrary: fc.string({ maxLength: 60 }).map((s) => ({ 'x-api-key': s.replace(/[^\x20-\x7e]/g, '') })) },
    { weight: 1, arbitrary: fc.constant({ authorization: `Bearer ${keys.user.slice(0, -1)}x` }) },
  );
  const requestId = fc.oneof(fc.constant<Record<string, string>>({}), fc.string({ maxLength: 140 }).map((s) => ({ 'x-request-id': s.replace(/[^\x20-\x7e]/g, '') })));
  const headers = fc.tuple(auth, requestId).map(([a, r]) => ({ ...a, ...r }));
  const s = hostileString(keys);
  return fc.oneof(
    { weight: 8, arbitrary: fc.tuple(inferInput(keys), headers, fc.boolean()).map(([input, h, b64]) => gql(b64 ? INFER_B64 : INFER, { input }, h, 'infer')) },
    {
      weight: 5,
      arbitrary: fc
        .tuple(fc.oneof(fc.constantFrom(...MODELS), s), fc.array(image(keys), { maxLength: 4 }), fc.integer({ min: -2, max: 12 }), headers)
        .map(([model, images, topK, h]) => gql(CLASSIFY, { model, images, topK }, h, 'classify')),
    },
    {
      weight: 3,
      arbitrary: fc.tuple(s, fc.boolean(), fc.integer({ min: -5, max: 2000 }), headers).map(([t, revoked, first, h]) =>
        gql('query($t: String, $r: Boolean, $f: Int) { apiKeys(tenant: $t, revoked: $r, first: $f) { edges { node { id prefix tenantId } } } }', { t, r: revoked, f: first }, h, 'apiKeys'),
      ),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(s, s, s, fc.integer({ min: -5, max: 2000 }), headers).map(([model, status, after, first, h]) =>
        gql('query($f: UsageRecordFilter, $a: String, $n: Int!) { usageRecords(filter: $f, after: $a, first: $n) { edges { node { id model } } } }', { f: { model }, a: after, n: first }, { ...h, 'x-probe': status.length > 3 ? 'y' : 'n' }, 'usageRecords'),
      ),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(fc.oneof(s, fc.date({ noInvalidDate: true }).map((d) => d.toISOString())), fc.oneof(s, fc.date({ noInvalidDate: true }).map((d) => d.toISOString())), s, headers).map(([from, to, tenantId, h]) =>
        gql('query($from: DateTimeISO!, $to: DateTimeISO!, $t: String) { usageSummary(from: $from, to: $to, tenantId: $t, groupBy: [DAY, MODEL]) { requests computeUnits } }', { from, to, t: tenantId }, h, 'usageSummary'),
      ),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(s, fc.oneof(s, fc.constant(null)), headers).map(([name, version, h]) => gql('query($n: String!, $v: String) { model(name: $n, version: $v) { name status stats { requests } } }', { n: name, v: version }, h, 'model')),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(s, headers).map(([t, h]) =>
        gql('mutation($t: String, $n: String!) { createApiKey(input: { tenant: $t, name: $n, scopes: [INFERENCE] }) { apiKey { id } } }', { t, n: t }, h, 'createApiKey'),
      ),
    },
    {
      weight: 2,
      arbitrary: fc.tuple(fc.oneof(fc.string({ maxLength: 300 }), fc.constantFrom('subscription { x }', '{ __schema { types { name } } }', '{ me { tenant { name } } }', '{ health { status } }', 'query { '.repeat(50), '{ a: health { status } b: health { status } }', `{ ${'health { status } '.repeat(3)}}`, '{ models { name stats { requests } } }', 'mutation { loadModel(name: "no-such-model") { name } }', '{ tenants { edges { cursor } } }', '{ auditEvents { edges { cursor } } }')), headers).map(([query, h]) => gql(query, {}, h, 'graphql-text')),
    },
    { weight: 4, arbitrary: fc.tuple(oipCase(keys), headers).map(([c, h]) => ({ ...c, headers: { ...c.headers, ...h } })) },
    {
          weight: 2,
          arbitrary: fc
            .record({
              method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
              route: fc.oneof(
                fc.constantFrom('/graphql', '/healthz', '/readyz', '/metrics', '/usage.csv', '/usage.csv?from=x&to=y', '/graphiql/graphiql.js', '/graphiql/..%2f..%2fpackage.json', '/nope', '/graphql?query=%7B%20health%20%7B%20status%20%7D%20%7D'),
                fc.webPath(),
              ),
              contentType: fc.constantFrom('application/json', 'text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/json; charset=latin1', 'application/graphql', ''),
              body: fc.oneof(
                fc.string({ maxLength: 200 }),
                fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
                fc.constantFrom('{"query":', '[]', '[{"query":"{ health { status } }"},{"query":"{ health { status } }"}]', '{"query":{"a":1}}', '{"__proto__":{"x":1},"query":"{ health { status } }"}', '{"query":"{ health { status } }","variables":"x"}'),
              ),
              h: headers,
            })
            .map(({ method, route, contentType, body, h }): FuzzCase => ({
              kind: 'http',
              method,
              route: route.startsWith('/') ? route : `/${route}`,
              headers: { ...(contentType ? { 'content-type': contentType } : {}), ...h },
              body: method === 'GET' ? undefined : body,
            })),
        },
  );
}

/** The table, sent as they were reported. */
export async function fixedCases(keys: FuzzKeys, tenantOfOther: string): Promise<FuzzCase[]> {
  const user = { authorization: `Bearer ${keys.user}` };
  const huge = Buffer.alloc(784 * 4);
  for (let i = 0; i < 784; i += 1) huge.writeFloatLE(3.4e38, i * 4);
  // A JPEG whose Huffman table is overwritten: libvips says "Bogus Huffman table definition".
  const jpeg = Buffer.from(await sharp({ create: { width: 28, height: 28, channels: 3, background: '#808080' } }).jpeg().toBuffer());
  const dht = jpeg.indexOf(Buffer.from([0xff, 0xc4]));
  for (let k = dht + 5; k < dht + 21; k += 1) jpeg[k] = 0xff;
  return [
    gql(CLASSIFY, { model: 'fashion-cnn', images: [{ pixels: new Array<number>(1024 * 1024 * 4).fill(7), width: 1024, height: 1024, channels: 4 }], topK: 3 }, user, 'fixed:stall-pixels'),
    gql(INFER, { input: { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [2551, 1, 28, 28], data: new Array<number>(2_000_000).fill(0.1) }] } }, user, 'fixed:stall-data'),
    gql('mutation($input: InferInput!) { infer(input: $input) { outputs { data } } }', { input: { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], dataBase64: huge.toString('base64') }] } }, user, 'fixed:nan-output'),
    gql('{ apiKeys(tenant: "a\\u0000b") { edges { cursor } } }', {}, user, 'fixed:nul-literal'),
    gql('query($f: UsageRecordFilter) { usageRecords(filter: $f) { edges { cursor } } }', { f: { model: 'a\u0000' } }, user, 'fixed:nul-variable'),
    gql(INFER, { input: { model: keys.foreign, inputs: [] } }, user, 'fixed:key-as-model'),
    gql('subscription { x }', {}, user, 'fixed:subscription'),
    { kind: 'fixed:413', method: 'POST', route: '/graphql', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ health { status } }', pad: 'x'.repeat(21 * 1024 * 1024) }) },
    { kind: 'fixed:404', method: 'GET', route: '/no/such/route', headers: {} },
    { kind: 'fixed:405', method: 'PUT', route: '/graphql', headers: { 'content-type': 'application/json' }, body: '{}' },
    { kind: 'fixed:415', method: 'POST', route: '/graphql', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'query=1' },
    { kind: 'fixed:400-json', method: 'POST', route: '/graphql', headers: { 'content-type': 'application/json' }, body: '{"query": "{ health' },
    gql(CLASSIFY, { model: 'fashion-cnn', images: [{ png: jpeg.toString('base64') }], topK: 3 }, user, 'fixed:corrupt-jpeg'),
    gql('query($t: String) { apiKeys(tenant: $t) { edges { cursor } } }', { t: tenantOfOther }, user, 'fixed:foreign-tenant'),
    gql('query($t: String) { apiKeys(tenant: $t) { edges { cursor } } }', { t: 'no-such-tenant' }, user, 'fixed:unknown-tenant'),
    ...oipBombs(keys),
  ];
}

async function send(target: FuzzTarget, c: FuzzCase): Promise<{ status: number; text: string; requestId: string | null } | { error: string }> {
  try {
    const res = await fetch(`${target.url}${c.route}`, { method: c.method, headers: c.headers, body: c.body, signal: AbortSignal.timeout(60_000) });
    return { status: res.status, text: c.method === 'HEAD' ? '' : await res.text(), requestId: res.headers.get('x-request-id') };
  } catch (error) {
    return { error: error instanceof Error ? `${error.name}: ${error.message} ${String((error as { cause?: unknown }).cause ?? '')}` : String(error) };
  }
}

function describeCase(c: FuzzCase): string {
  const body = c.body === undefined ? '' : Buffer.isBuffer(c.body) ? `<${c.body.length} bytes>` : c.body.length > 300 ? `${c.body.slice(0, 300)}…(${c.body.length})` : c.body;
  return `${c.kind} ${c.method} ${c.route} ${JSON.stringify(c.headers)} ${body}`;
}

/** BODY_LIMIT_BYTES's default. */
const OVERSIZE_BYTES = 20 * 1024 * 1024;

export interface FuzzOptions {
  requests: number;
  seed: number;
  concurrency: number;
  fixed: FuzzCase[];
  /** Scrape the loop-delay maximum after every request and report the ones that raised it. */
  traceLoop?: boolean;
}

export async function runFuzz(target: FuzzTarget, keys: FuzzKeys, options: FuzzOptions): Promise<FuzzReport> {
  const generated = fc.sample(fuzzCase(keys), { numRuns: Math.max(0, options.requests - options.fixed.length), seed: options.seed });
  const cases = [...options.fixed, ...generated];
  const report: FuzzReport = {
    seed: options.seed,
    requests: 0,
    crashes: 0,
    oversizeResets: 0,
    undocumented5xx: 0,
    undocumentedCodes: 0,
    leaks: 0,
    uncoded: 0,
    statuses: {},
    codes: {},
    maxLoopDelaySeconds: undefined,
    healthyAfter: false,
    examples: [],
  };
  let next = 0;
  let traced = 0;
  const worker = async (): Promise<void> => {
    while (next < cases.length) {
      const c = cases[next]!;
      next += 1;
      const result = await send(target, c);
      report.requests += 1;
      if ('error' in result) {
        // The gateway answers 413 before reading a body over BODY_LIMIT_BYTES and closes the
        // socket; a client still sending may see the reset instead of the answer. Not a crash.
        if (c.body !== undefined && c.body.length > OVERSIZE_BYTES && target.running) {
          report.oversizeResets += 1;
          continue;
        }
        report.crashes += 1;
        if (report.examples.length < 20) report.examples.push(`no answer (${result.error}): ${describeCase(c)}`);
        continue;
      }
      if (options.traceLoop) {
        // Diagnosis: which request raised the loop-delay maximum (run with concurrency 1).
        const max = metricValue(await (await fetch(`${target.url}/metrics`)).text(), 'modelgate_event_loop_delay_max_seconds') ?? 0;
        if (max > traced + 0.05) report.examples.push(`loop max ${traced.toFixed(3)} → ${max.toFixed(3)} s after ${result.status}: ${describeCase(c)}`);
        traced = Math.max(traced, max);
      }
      report.statuses[result.status] = (report.statuses[result.status] ?? 0) + 1;
      const isMetricsOrPage = result.status < 400 && !result.text.startsWith('{');
      if (isMetricsOrPage) continue;
      // /readyz's 503 is its own report (documented), not an error body.
      if (c.route.startsWith('/readyz')) continue;
      const problems = contractViolations(result.status, result.text, result.requestId);
      for (const code of codesIn(result.text)) report.codes[code] = (report.codes[code] ?? 0) + 1;
      for (const p of problems) {
        if (p.startsWith('internals')) report.leaks += 1;
        else if (p.startsWith('undocumented code')) report.undocumentedCodes += 1;
        else if (p.startsWith('undocumented 5xx')) report.undocumented5xx += 1;
        else report.uncoded += 1;
      }
      if (problems.length > 0 && report.examples.length < 20) report.examples.push(`${problems.join('; ')} → ${result.status} ${result.text.slice(0, 300)} ← ${describeCase(c)}`);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, worker));
  if (!target.running) report.crashes += 1;
  try {
    const metrics = await (await fetch(`${target.url}/metrics`)).text();
    report.maxLoopDelaySeconds = metricValue(metrics, 'modelgate_event_loop_delay_max_seconds');
    const ready = await fetch(`${target.url}/readyz`);
    const health = await fetch(`${target.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ health { status } }' }) });
    report.healthyAfter = ready.status === 200 && health.status === 200 && target.running;
  } catch {
    report.healthyAfter = false;
  }
  return report;
}

function codesIn(text: string): string[] {
  try {
    const body = JSON.parse(text) as { errors?: { extensions?: { code?: unknown } }[]; error?: unknown; code?: unknown };
    if (typeof body.error === 'string') return [String(body.code)];
    return (body.errors ?? []).map((e) => String(e.extensions?.code));
  } catch {
    return [];
  }
}
