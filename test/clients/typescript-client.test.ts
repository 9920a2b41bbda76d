/**
 * clients/typescript against the committed schema (the generated types are
 * regenerated here and must equal the committed file; every document
 * validates) and against a live production-build gateway.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { buildSchema, parse, validate } from 'graphql';
import sharp from 'sharp';
import { ALL_OPERATIONS, ERROR_CODES, fromTensor, ModelgateClient, ModelgateError, stringTensor, toTensor, type Tenant } from '../../clients/typescript/src';
import { PUBLIC_ERROR_CODES } from '../../src/errors';
import { GENERATED_FILE } from '../../clients/typescript/codegen';
import { REPO_ROOT, until, STARTUP_TEST_TIMEOUT_MS } from '../harness';
import { startLiveGateway, type LiveGateway } from './live-gateway';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const image0 = readFileSync(path.join(REPO_ROOT, 'test', 'fixtures', 'fashion-mnist-test-1000.bin')).subarray(0, 784);
const reference = (JSON.parse(readFileSync(path.join(REPO_ROOT, 'test', 'fixtures', 'reference', 'fashion-cnn.json'), 'utf8')) as { probabilities: number[][] }).probabilities[0] as number[];

describe('TypeScript client operations', () => {
  it('the committed generated types are what graphql-codegen makes from schema.graphql now (npm run clients:codegen)', () => {
    // The CLI itself (its ESM dependencies do not load under Jest), writing to a temporary file.
    const out = path.join(mkdtempSync(path.join(os.tmpdir(), 'mg-codegen-')), 'graphql.ts');
    execFileSync(process.execPath, [path.join(REPO_ROOT, 'node_modules', '@graphql-codegen', 'cli', 'esm', 'bin.js'), '--config', path.join(REPO_ROOT, 'clients', 'typescript', 'codegen.ts')], {
      cwd: REPO_ROOT,
      env: { ...process.env, MODELGATE_CODEGEN_OUT: out },
      stdio: 'pipe',
    });
    expect(readFileSync(GENERATED_FILE, 'utf8')).toBe(readFileSync(out, 'utf8'));
  });

  it('every document validates against schema.graphql', () => {
    const schema = buildSchema(readFileSync(path.join(REPO_ROOT, 'schema.graphql'), 'utf8'));
    const problems = Object.entries(ALL_OPERATIONS).flatMap(([name, doc]) => validate(schema, parse(doc)).map((e) => `${name}: ${e.message}`));
    expect(problems).toEqual([]);
  });

  it('knows every error code the gateway can answer with', () => {
    expect([...PUBLIC_ERROR_CODES].filter((code) => !(ERROR_CODES as readonly string[]).includes(code))).toEqual([]);
  });

  it('round-trips typed arrays through tensors', () => {
    const t = toTensor('x', new Int32Array([1, -2, 3, 4]), [2, 2]);
    expect(t).toMatchObject({ datatype: 'INT32', shape: [2, 2] });
    expect(Array.from(fromTensor({ datatype: 'INT32', dataBase64: t.dataBase64 ?? '' }) as Int32Array)).toEqual([1, -2, 3, 4]);
    expect(() => toTensor('x', new Float32Array(3), [2, 2])).toThrow(/do not fill/);
  });
});

describe('TypeScript client against a live gateway', () => {
  let live: LiveGateway;
  let client: ModelgateClient;
  beforeAll(async () => {
    live = await startLiveGateway();
    client = new ModelgateClient({ url: live.gw.url, apiKey: live.adminKey });
  });
  afterAll(async () => {
    await live?.gw.stop();
  });

  it('infers from a Float32Array and returns the reference probabilities', async () => {
    const result = await client.infer({ model: 'fashion-cnn', inputs: [toTensor('image', Float32Array.from(image0, (v) => v / 255), [1, 1, 28, 28])] });
    const out = result.outputs.find((o) => o.name === 'probabilities');
    expect(out?.shape).toEqual([1, 10]);
    const probabilities = Array.from(fromTensor(out!) as Float32Array);
    expect(probabilities).toHaveLength(10);
    probabilities.forEach((p, i) => expect(p).toBeCloseTo(reference[i] as number, 4));
  });

  it('infers from strings (BYTES) and reads string outputs', async () => {
    const result = await client.infer({ model: 'word-language', inputs: [stringTensor('text', ['maison', 'gezellig'], [2, 1])] });
    const language = result.outputs.find((o) => o.name === 'language');
    expect(language).toMatchObject({ datatype: 'BYTES', shape: [2, 1], strings: ['fr', 'nl'] });
    expect(() => stringTensor('text', ['a'], [2, 1])).toThrow(/do not fill/);
  });

  it('classifies a PNG Buffer', async () => {
    const png = await sharp(image0, { raw: { width: 28, height: 28, channels: 1 } }).png().toBuffer();
    const result = await client.classify('fashion-cnn', [png], { topK: 2 });
    expect(result.results).toHaveLength(1);
    expect(result.results[0]?.predictions.map((p) => [p.index, p.label])[0]).toEqual([9, 'Ankle boot']);
    expect(result.results[0]?.predictions).toHaveLength(2);
  });

  it('classifies files by path, Blobs and ArrayBuffers (PNG, lossless WebP), in order', async () => {
    const raw = { raw: { width: 28, height: 28, channels: 1 as const } };
    const png = await sharp(image0, raw).png().toBuffer();
    const webp = await sharp(image0, raw).webp({ lossless: true }).toBuffer();
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'mg-client-')), 'boot.webp');
    writeFileSync(file, webp);
    const arrayBuffer = png.buffer.slice(png.byteOffset, png.byteOffset + png.byteLength);
    const result = await client.classify('fashion-cnn', [file, new Blob([png], { type: 'image/png' }), arrayBuffer], { topK: 1 });
    expect(result.results.map((r) => r.predictions[0]?.index)).toEqual([9, 9, 9]);
  });

  it('refetches objects by id with node(): a typed union by __typename', async () => {
    const [tenant] = await (async () => {
      const all: Tenant[] = [];
      for await (const t of client.tenants()) all.push(t);
      return all.filter((t) => t.name === live.tenants[0]);
    })();
    const found = await client.node(tenant!.id);
    expect(found).toEqual({ __typename: 'Tenant', id: tenant!.id, name: live.tenants[0], tenantStatus: 'ACTIVE' });
    expect(await client.node('00000000-0000-4000-8000-000000000000')).toBeNull();
  });

  it('iterates usage records across pages, newest first, each once', async () => {
    for (let i = 0; i < 3; i += 1) await client.infer({ model: 'fashion-cnn', inputs: [toTensor('image', new Float32Array(784), [1, 1, 28, 28])] });
    // Records reach Postgres with the next usage flush (USAGE_FLUSH_INTERVAL_MS), not with the answer: walk again until they are there.
    const walked = await until(
      '3 usage records to walk',
      async () => {
        const records: { id: string; at: number }[] = [];
        for await (const record of client.usageRecords({ model: 'fashion-cnn' }, 2)) records.push({ id: record.id, at: Date.parse(record.createdAt) });
        return records;
      },
      { accept: (records) => records.length >= 3, everyMs: 100 },
    );
    const ids = walked.map((r) => r.id);
    const times = walked.map((r) => r.at);
    expect(times).toEqual([...times].sort((x, y) => y - x));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.length).toBeGreaterThanOrEqual(3);
  });

  it('throws errors typed by the gateway code', async () => {
    const badShape = await client.infer({ model: 'fashion-cnn', inputs: [toTensor('image', new Float32Array(784), [1, 28, 28])] }).catch((e: unknown) => e);
    expect(badShape).toBeInstanceOf(ModelgateError);
    expect(badShape).toMatchObject({ code: 'BAD_USER_INPUT', field: 'inputs[0].shape', requestId: expect.any(String) });
    const anonymous = await new ModelgateClient({ url: live.gw.url, apiKey: `mg_live_${'0'.repeat(49)}` }).me().catch((e: unknown) => e);
    expect(anonymous).toMatchObject({ code: 'UNAUTHENTICATED', status: 401 });
  });

  it('does not wait out a Retry-After longer than maxRetryWaitMs, and reports it', async () => {
    const limited = new ModelgateClient({ url: live.gw.url, apiKey: live.limitedKey, maxRetryWaitMs: 500 });
    await limited.me();
    const refused = await limited.me().catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'RATE_LIMITED', status: 429 });
    expect((refused as ModelgateError).retryAfterSeconds).toBeGreaterThan(0.5);
  });

  it('retries a 429/503 after its Retry-After and returns the answer of the retry', async () => {
    // A load-balancer-like front on a real port that answers the first request 503 Retry-After: 1
    // (the gateway's own Retry-After on a 1/min key is ~60 s), then passes requests to the gateway.
    const seen: number[] = [];
    const front = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        seen.push(seen.length === 0 ? 503 : 200);
        if (seen.length === 1) {
          res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
          res.end(JSON.stringify({ errors: [{ message: 'Service unavailable', extensions: { code: 'UNAVAILABLE', retryAfterSeconds: 1 } }] }));
          return;
        }
        void fetch(`${live.gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: req.headers.authorization ?? '' }, body: Buffer.concat(chunks) })
          .then(async (upstream) => {
            res.writeHead(upstream.status, { 'content-type': 'application/json' });
            res.end(await upstream.text());
          });
      });
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
      const me = await new ModelgateClient({ url, apiKey: live.adminKey }).me();
      expect(me.scopes).toEqual(['ADMIN']);
      expect(seen).toEqual([503, 200]);
      // No retries left: the 503 is thrown as a typed error after the one attempt.
      seen.length = 0;
      const refused = await new ModelgateClient({ url, apiKey: live.adminKey, maxRetries: 0 }).me().catch((e: unknown) => e);
      expect(refused).toMatchObject({ code: 'UNAVAILABLE', status: 503, retryAfterSeconds: 1 });
      expect(seen).toEqual([503]);
    } finally {
      await new Promise((resolve) => front.close(resolve));
    }
  });

  it('retries a 504 without Retry-After and a connection reset with backoff, within maxRetries', async () => {
    // A front that answers the first request 504 (no hint), resets the second connection, then passes requests on.
    const seen: string[] = [];
    let plan: ('504' | 'reset' | 'pass')[] = ['504', 'reset', 'pass'];
    const front = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const step = plan[seen.length] ?? 'pass';
        seen.push(step);
        if (step === '504') {
          res.writeHead(504, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ errors: [{ message: 'deadline', extensions: { code: 'TIMEOUT' } }] }));
          return;
        }
        if (step === 'reset') {
          req.socket.resetAndDestroy();
          return;
        }
        void fetch(`${live.gw.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: req.headers.authorization ?? '' }, body: Buffer.concat(chunks) })
          .then(async (upstream) => {
            res.writeHead(upstream.status, { 'content-type': 'application/json' });
            res.end(await upstream.text());
          });
      });
    });
    await new Promise<void>((resolve) => front.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(front.address() as AddressInfo).port}`;
      const me = await new ModelgateClient({ url, apiKey: live.adminKey, retryBaseMs: 20 }).me();
      expect(me.scopes).toEqual(['ADMIN']);
      expect(seen).toEqual(['504', 'reset', 'pass']);
      // Bounded: with one retry allowed, two resets in a row surface as the connection error.
      seen.length = 0;
      plan = ['reset', 'reset', 'reset'];
      const failed = await new ModelgateClient({ url, apiKey: live.adminKey, retryBaseMs: 20, maxRetries: 1 }).me().catch((e: unknown) => e);
      expect(failed).toMatchObject({ name: 'TypeError', message: 'fetch failed' });
      expect(seen).toEqual(['reset', 'reset']);
      // A 504 with no retries left is the typed error.
      seen.length = 0;
      plan = ['504'];
      const timedOut = await new ModelgateClient({ url, apiKey: live.adminKey, maxRetries: 0 }).me().catch((e: unknown) => e);
      expect(timedOut).toMatchObject({ code: 'TIMEOUT', status: 504 });
    } finally {
      await new Promise((resolve) => front.close(resolve));
    }
  });

  it('iterates a Relay connection page by page, each node once', async () => {
    const seen: Tenant[] = [];
    for await (const t of client.tenants(2)) seen.push(t);
    const names = seen.map((t) => t.name);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toEqual(expect.arrayContaining(live.tenants));
    expect(names.length).toBeGreaterThan(2);
  });

  it('GET queries need the preflight header (the setting urql and Apollo Client need, see clients/typescript/README.md)', async () => {
    const url = `${live.gw.url}/graphql?query=${encodeURIComponent('{ me { scopes } }')}`;
    const auth = { authorization: `Bearer ${live.adminKey}` };
    expect((await fetch(url, { headers: auth })).status).toBe(400);
    const preflighted = await fetch(url, { headers: { ...auth, 'apollo-require-preflight': 'true' } });
    expect(preflighted.status).toBe(200);
    expect(await preflighted.json()).toEqual({ data: { me: { scopes: ['ADMIN'] } } });
  });
});
