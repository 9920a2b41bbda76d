/**
 * The response cache's key and byte bound, for what the end-to-end tests
 * (test/inference/response-cache.test.ts) cannot pin down cheaply: which
 * request differences make a different key, which requests are not keyed,
 * and eviction at the byte bound.
 */
import { Registry } from 'prom-client';
import { requestKey, ResponseCache } from './response-cache';
import type { InferencePlan, InferRequest, InferResponse } from './inference.service';

const TENANT_A = '11111111-1111-4111-8111-111111111111';
const TENANT_B = '22222222-2222-4222-8222-222222222222';
const floats = Buffer.from(new Float32Array([0.5, 0.25]).buffer);
const base: InferRequest = { model: 'm', inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], bytes: floats }] };

describe('requestKey', () => {
  const key = (request: InferRequest, tenant = TENANT_A, session = 'm/1/1') => requestKey(tenant, session, request);

  it('is the same for the same request, whatever its id, priority and timeout', () => {
    expect(key({ ...base, id: 'a', parameters: { priority: 5, timeoutMs: 10 } })).toBe(key({ ...base, id: 'b' }));
  });

  it('differs by tenant, loaded session, input bytes, shape, encoding and requested outputs', () => {
    const k = key(base);
    expect(key(base, TENANT_B)).not.toBe(k);
    expect(key(base, TENANT_A, 'm/1/2')).not.toBe(k);
    expect(key({ ...base, inputs: [{ ...base.inputs[0]!, bytes: Buffer.from(new Float32Array([0.5, 0.75]).buffer) }] })).not.toBe(k);
    expect(key({ ...base, inputs: [{ ...base.inputs[0]!, shape: [2, 1] }] })).not.toBe(k);
    expect(key({ ...base, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], dataBase64: floats.toString('base64') }] })).not.toBe(k);
    expect(key({ ...base, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: [0.5, 0.25] }] })).not.toBe(k);
    expect(key({ ...base, outputs: ['y'] })).not.toBe(k);
    expect(key({ ...base, outputs: [] })).not.toBe(k);
  });

  it('keys JSON numbers by value, and does not key anything validation might judge differently', () => {
    const numbers = (data: unknown[]) => key({ ...base, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 2], data: data as number[] }] });
    expect(numbers([0.5, 0.25])).toBe(numbers([0.5, 0.25]));
    expect(numbers([0.5, 0.25])).not.toBe(numbers([0.5, 0.5]));
    expect(numbers(['0.5', 0.25])).toBeNull();
    expect(numbers([true, 0.25])).toBeNull();
    expect(key({ ...base, id: 'x'.repeat(257) })).toBeNull();
    expect(key({ ...base, inputs: [{ ...base.inputs[0]!, data: [0.5, 0.25] }] })).toBeNull();
  });
});

describe('ResponseCache', () => {
  const plan = (responseCache = true, sessionKey = 'm/1/1') => ({ model: 'm', computeUnits: 8, config: { responseCache }, version: { sessionKey } }) as unknown as InferencePlan;
  const response = (bytes: number): InferResponse => ({
    modelName: 'm',
    modelVersion: '1',
    id: 'first',
    outputs: [{ name: 'y', datatype: 'FP32', shape: [1, bytes / 4], bytes: Buffer.alloc(bytes, 1) }],
    queueMs: 1,
    computeMs: 2,
    executionProvider: 'cpu',
    batchSize: 1,
  });
  const request = (v: number): InferRequest => ({ ...base, id: `r${v}`, inputs: [{ name: 'x', datatype: 'FP32', shape: [1, 1], data: [v] }] });

  it('answers a stored request with its own id, and only for a model that opted in', () => {
    const cache = new ResponseCache({ maxBytes: 100_000, billedFraction: 0.1 }, new Registry());
    const probe = cache.probe(TENANT_A, plan(), request(1))!;
    expect(probe.hit).toBeNull();
    cache.store(probe.key, 'm', response(40));
    const hit = cache.probe(TENANT_A, plan(), request(1))!.hit!;
    expect(hit).toMatchObject({ id: 'r1', queueMs: 0, computeMs: 0 });
    expect(hit.outputs[0]!.bytes).toEqual(Buffer.alloc(40, 1));
    expect(cache.probe(TENANT_B, plan(), request(1))!.hit).toBeNull();
    expect(cache.probe(TENANT_A, plan(false), request(1))).toBeNull();
    expect(cache.hitUnits(8)).toBe(1);
    expect(cache.hitUnits(64)).toBe(7);
    expect(cache.hitUnits(0)).toBe(0);
  });

  it('evicts the least recently used answers to stay within its bytes, and a model change drops its answers', async () => {
    const registry = new Registry();
    const cache = new ResponseCache({ maxBytes: 1500, billedFraction: 0.5 }, registry);
    for (let v = 0; v < 4; v += 1) cache.store(cache.probe(TENANT_A, plan(), request(v))!.key, 'm', response(400));
    expect(cache.bytes).toBeLessThanOrEqual(1500);
    const evictions = (await registry.getSingleMetric('modelgate_response_cache_evictions_total')!.get()).values[0]?.value;
    expect(evictions).toBe(2);
    expect(cache.probe(TENANT_A, plan(), request(0))!.hit).toBeNull();
    expect(cache.probe(TENANT_A, plan(), request(3))!.hit).not.toBeNull();
    cache.invalidate('other');
    expect(cache.bytes).toBeGreaterThan(0);
    cache.invalidate('m');
    expect(cache.bytes).toBe(0);
  });
});
