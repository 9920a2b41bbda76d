/**
 * Issue #28 items 1, 7 and 9 against the production build (`node dist/main.js`,
 * NODE_ENV=production, the run's Postgres and Redis, an OTLP receiver):
 * JSON bombs on the /v2 door, key-shaped request ids and URLs, and the
 * router's own refusals. Each failed on main before the fix (noted per test).
 */
import { deflateSync, gzipSync } from 'node:zlib';
import { ProductionGateway, productionEnv, sleep } from '../harness';
import { authHeaders, closeTestKeys, createTestKey, testKeyService, type TestKey } from '../helpers/auth';
import { OtlpReceiver } from '../observability/otlp-receiver';
import { jsonInfer, oip } from '../oip/helpers';
import { metricValue } from './helpers';

/** 10 million zeros as an OIP JSON tensor: ~20 MB, under BODY_LIMIT_BYTES; ~19.5 KB gzip'd. */
const BOMB_JSON = Buffer.from(`{"inputs":[{"name":"image","datatype":"FP32","shape":[1,1,28,28],"data":[${'0,'.repeat(9_999_999)}0]}]}`);

describe('the /v2 door, request ids and router errors (issue #28), production build', () => {
  let receiver: OtlpReceiver;
  let gw: ProductionGateway;
  let caller: TestKey;
  const infer = () => `${gw.url}/v2/models/fashion-cnn/infer`;

  beforeAll(async () => {
    receiver = await OtlpReceiver.start();
    caller = await createTestKey({ scopes: ['inference'] });
    gw = await ProductionGateway.start({ ...productionEnv(), RATE_LIMITS_ENABLED: 'false', LOG_LEVEL: 'debug', OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY: '600000' });
  }, 120_000);
  afterAll(async () => {
    if (gw.running) await gw.stop();
    await receiver.close();
    await closeTestKeys();
  });

  describe('JSON bombs (item 1)', () => {
    // Main: the 8 bombs were inflated, parsed and walked on the event loop (16.5 s for the health query);
    // each was answered 400 with field inputs[0].data only after walking 10 M values.
    it('refuses 8 concurrent gzip bombs by their value count while a cheap query is still answered', async () => {
      const bomb = gzipSync(BOMB_JSON, { level: 9 });
      console.log(`bomb: ${bomb.length} bytes gzip, ${BOMB_JSON.length} inflated`);
      const headers = { ...authHeaders(caller.key), 'content-type': 'application/json', 'content-encoding': 'gzip' };
      const bombs = Array.from({ length: 8 }, () => oip(infer(), { headers, body: bomb }));
      await sleep(20);
      const started = performance.now();
      const health = await gw.graphql<{ health: { status: string } }>('{ health { status } }');
      const healthMs = performance.now() - started;
      const answers = await Promise.all(bombs);
      const loopMax = metricValue(await (await fetch(`${gw.url}/metrics`)).text(), 'modelgate_event_loop_delay_max_seconds');
      console.log(`health answered in ${healthMs.toFixed(0)} ms under 8 bombs; event-loop delay max ${loopMax} s`);
      expect({ status: health.status, answered: typeof health.body?.data?.health.status }).toEqual({ status: 200, answered: 'string' });
      expect(answers.map((a) => ({ status: a.status, code: a.json['code'], field: a.json['field'], id: a.json['requestId'] === a.headers.get('x-request-id') }))).toEqual(
        Array.from({ length: 8 }, () => ({ status: 400, code: 'BAD_USER_INPUT', field: 'inputs', id: true })),
      );
      expect(answers[0]!.json['error']).toMatch(/more than 26384 JSON values/);
    });

    // Main: deflate went the same way as gzip (inflateSync on the loop).
    it('refuses a deflate bomb the same way', async () => {
      const res = await oip(infer(), { headers: { ...authHeaders(caller.key), 'content-type': 'application/json', 'content-encoding': 'deflate' }, body: deflateSync(BOMB_JSON) });
      expect({ status: res.status, code: res.json['code'], field: res.json['field'] }).toEqual({ status: 400, code: 'BAD_USER_INPUT', field: 'inputs' });
    });

    // Main: 400 BAD_USER_INPUT (field Content-Encoding) after a synchronous gunzip up to the limit.
    it('answers 413 PAYLOAD_TOO_LARGE for a body that inflates past BODY_LIMIT_BYTES', async () => {
      const res = await oip(infer(), { headers: { ...authHeaders(caller.key), 'content-type': 'application/json', 'content-encoding': 'gzip' }, body: gzipSync(Buffer.alloc(21 * 1024 * 1024, 32)) });
      expect({ status: res.status, code: res.json['code'], id: typeof res.json['requestId'] }).toEqual({ status: 413, code: 'PAYLOAD_TOO_LARGE', id: 'string' });
    });

    it('still serves gzip and deflate JSON requests, and refuses data longer than its shape', async () => {
      for (const [encoding, zip] of [['gzip', gzipSync], ['deflate', deflateSync]] as const) {
        const res = await oip(infer(), { headers: { ...authHeaders(caller.key), 'content-type': 'application/json', 'content-encoding': encoding }, body: zip(Buffer.from(jsonInfer([0, 1]))) });
        expect({ encoding, status: res.status, shape: (res.json['outputs'] as { shape: number[] }[] | undefined)?.[0]?.shape }).toEqual({ encoding, status: 200, shape: [2, 10] });
      }
      const long = JSON.stringify({ inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], data: new Array<number>(785).fill(0) }] });
      const res = await oip(infer(), { headers: { ...authHeaders(caller.key), 'content-type': 'application/json' }, body: long });
      expect({ status: res.status, code: res.json['code'], field: res.json['field'] }).toEqual({ status: 400, code: 'BAD_USER_INPUT', field: 'inputs[0].data' });
    });
  });

  describe('router errors in the contract (item 9)', () => {
    const ready = (model: string) => oip(`${gw.url}/v2/models/${model}/ready`, { headers: authHeaders(caller.key) });

    // Main: 414 {"code":"FST_ERR_MAX_PARAM_LENGTH"} from fastify for any name over 100 characters.
    it('reaches model names up to 128 characters over REST', async () => {
      const res = await ready('m'.repeat(128));
      expect({ status: res.status, code: res.json['code'], id: res.json['requestId'] === res.headers.get('x-request-id') }).toEqual({ status: 404, code: 'NOT_FOUND', id: true });
    });

    // Main: fastify's own bodies (FST_ERR_BAD_URL, FST_ERR_MAX_PARAM_LENGTH), no request id, no x-request-id.
    it('answers a bad percent-encoding and an over-long parameter with public codes and the request id', async () => {
      const bad = await ready('%E0%A4%A');
      const long = await ready('m'.repeat(300));
      for (const [res, status, code] of [[bad, 400, 'BAD_REQUEST'], [long, 414, 'URI_TOO_LONG']] as const) {
        expect({ status: res.status, code: res.json['code'], id: typeof res.json['requestId'], header: res.json['requestId'] === res.headers.get('x-request-id') }).toEqual({ status, code, id: 'string', header: true });
        expect(JSON.stringify(res.json)).not.toMatch(/FST_/);
      }
    });
  });

  describe('key-shaped request ids and URLs (item 7)', () => {
    // Main: the key came back in x-request-id and the body, was the usage record's id, and was in the
    // debug log (requestId, url) and the spans (modelgate.request_id, url.path).
    it('never echoes, stores, logs or traces a key sent as x-request-id or in the URL', async () => {
      const secret = caller.key;
      const res = await oip(infer(), { headers: { ...authHeaders(secret), 'content-type': 'application/json', 'x-request-id': secret }, body: jsonInfer([0]) });
      expect(res.status).toBe(200);
      const id = res.headers.get('x-request-id');
      expect(id).not.toBe(secret);
      expect(id).toMatch(/^[0-9a-f-]{36}$/);
      const inUrl = await oip(`${gw.url}/v2/models/${secret}/ready?key=${secret}`, { headers: { ...authHeaders(secret), 'x-request-id': `x${secret}` } });
      expect(inUrl.headers.get('x-request-id')).not.toContain('mg_');
      expect(String(inUrl.json['requestId'])).not.toContain('mg_');
      // An ordinary id is still the caller's.
      const own = await oip(`${gw.url}/v2/models/fashion-cnn/ready`, { headers: { ...authHeaders(secret), 'x-request-id': 'client-id-1' } });
      expect(own.headers.get('x-request-id')).toBe('client-id-1');

      const { db } = await testKeyService();
      let stored = 0;
      for (let i = 0; i < 100 && stored === 0; i += 1) {
        stored = await db.prisma.usageRecord.count({ where: { id: id! } });
        if (stored === 0) await sleep(50);
      }
      expect({ recordUnderNewId: stored, recordUnderKey: await db.prisma.usageRecord.count({ where: { id: secret } }) }).toEqual({ recordUnderNewId: 1, recordUnderKey: 0 });

      await gw.stop();
      expect(gw.logLines().filter((l) => l['msg'] === 'request').length).toBeGreaterThan(2);
      expect(gw.output.includes(secret)).toBe(false);
      const spans = receiver.spans.filter((s) => s.kind === 2);
      expect(spans.length).toBeGreaterThan(2);
      expect(receiver.bodies.some((b) => b.includes(secret))).toBe(false);
      const paths = spans.map((s) => String(s.attributes['url.path']));
      expect(paths).toContain(`/v2/models/${secret.replace(/^(mg_(?:live|test)_).*$/, '$1[REDACTED]')}/ready`);
    });
  });
});
