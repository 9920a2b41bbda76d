/**
 * SIGTERM on the production build (`node dist/main.js`, NODE_ENV=production):
 * readiness goes off at once, requests in flight and those arriving during
 * the readiness grace are all answered, queued inference finishes, every
 * answered request has its usage record, and the process exits 0. A second
 * signal exits at once and says what it abandons.
 */
import { ProductionGateway, productionEnv, STARTUP_TEST_TIMEOUT_MS, until, WAIT_TIMEOUT_MS } from '../harness';
import { authHeaders, closeTestKeys, createTestKey, type TestKey } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { INFER, imageTensor } from '../inference/fixtures';
import { storedTotals } from '../usage/helpers';
import { SLOW_MODEL, pendingRequests, slowModelRepository } from './slow-model-repository';

jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const IN_FLIGHT = 64;
let key: TestKey;

beforeAll(async () => {
  key = await createTestKey({ scopes: ['inference'], tenantLimits: { requestsPerMinute: 10_000, computeUnitsPerMinute: 1_000_000 }, keyLimits: { requestsPerMinute: 10_000, computeUnitsPerMinute: 1_000_000 } });
});
afterAll(() => closeTestKeys());

function infer(gateway: ProductionGateway, index: number) {
  return gateway.graphql(INFER, { input: { model: SLOW_MODEL, inputs: [imageTensor([index])] } }, authHeaders(key.key));
}

function waitForPending(gateway: ProductionGateway, count: number): Promise<number> {
  return until(`${count} requests queued (pending gauge)`, async () => pendingRequests((await gateway.request('GET', '/metrics')).text), { accept: (pending) => pending >= count, everyMs: 20 });
}

it('answers every in-flight request, serves through the readiness grace, records usage for each, exits 0', async () => {
  const gateway = await ProductionGateway.start({
    ...productionEnv(),
    MODEL_REPOSITORY: slowModelRepository(2_000),
    // Long enough for the late request below to arrive inside the grace on a busy machine.
    SHUTDOWN_READINESS_GRACE_MS: '5000',
    SHUTDOWN_DRAIN_TIMEOUT_MS: '15000',
  });
  try {
    let answered = 0;
    const inFlight = Array.from({ length: IN_FLIGHT }, (_, i) => infer(gateway, i).finally(() => (answered += 1)));
    // Every request has reached the gateway and some still wait in its queue. On a busy machine the
    // 64 may take longer to arrive than the 2 s queue delay, so an earlier batch may already be answered.
    const atSignal = await until(
      `all ${IN_FLIGHT} requests received, some still queued`,
      async () => ({ pending: pendingRequests((await gateway.request('GET', '/metrics')).text), answered }),
      { accept: (c) => c.pending > 0 && c.pending + c.answered >= IN_FLIGHT, everyMs: 20 },
    );
    process.stdout.write(`graceful shutdown: SIGTERM with ${atSignal.pending} requests queued, ${atSignal.answered} already answered\n`);

    gateway.signal('SIGTERM');
    // Readiness turns off at once so the load balancer stops sending...
    const readyz = await until('/readyz to answer 503 after SIGTERM', () => gateway.request<{ shuttingDown?: boolean }>('GET', '/readyz'), { accept: (r) => r.status !== 200, everyMs: 10 });
    expect({ status: readyz.status, shuttingDown: readyz.body?.shuttingDown }).toEqual({ status: 503, shuttingDown: true });
    // ...but a request it still sends during the grace is served.
    const lateArrival = await infer(gateway, IN_FLIGHT);

    const answers = await Promise.all(inFlight);
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(IN_FLIGHT);
    expect(answers.every((a) => a.body?.errors === undefined)).toBe(true);
    expect(lateArrival.status).toBe(200);
    expect(lateArrival.body?.errors).toBeUndefined();

    const exit = await gateway.waitExit(WAIT_TIMEOUT_MS);
    expect({ exit, log: exit.code === 0 ? '' : gateway.output }).toEqual({ exit: { code: 0, signal: null }, log: '' });
    expect(gateway.output).not.toContain('second signal');
  } finally {
    await gateway.kill();
  }
  const stored = await storedTotals(testEnv.databaseUrl, key.tenantId);
  expect(stored.rows).toBe(IN_FLIGHT + 1);
  expect(stored.byStatus).toEqual({ OK: IN_FLIGHT + 1 });
});

it('stops accepting new connections after the grace and exits 0 when idle', async () => {
  const gateway = await ProductionGateway.start({ ...productionEnv(), SHUTDOWN_READINESS_GRACE_MS: '300' });
  try {
    gateway.signal('SIGTERM');
    const exit = await gateway.waitExit(WAIT_TIMEOUT_MS);
    expect(exit).toEqual({ code: 0, signal: null });
    await expect(fetch(`${gateway.url}/healthz`)).rejects.toThrow();
  } finally {
    await gateway.kill();
  }
});

it('exits at once on a second signal and says what it abandons', async () => {
  const gateway = await ProductionGateway.start({
    ...productionEnv(),
    MODEL_REPOSITORY: slowModelRepository(5_000),
    SHUTDOWN_READINESS_GRACE_MS: '0',
  });
  try {
    const inFlight = Array.from({ length: 8 }, (_, i) => infer(gateway, i).catch((error: unknown) => error));
    await waitForPending(gateway, 8);
    gateway.signal('SIGTERM');
    await gateway.waitForLog('shutting down');
    gateway.signal('SIGTERM');
    const exit = await gateway.waitExit(WAIT_TIMEOUT_MS);
    expect(exit.code).toBe(1);
    const line = gateway.logLines().find((l) => String(l['msg']).startsWith('second signal'));
    expect(line).toMatchObject({ inFlightRequests: 8 });
    expect(String(line?.['msg'])).toContain('abandoning 8 in-flight request(s)');
    await Promise.all(inFlight);
  } finally {
    await gateway.kill();
  }
});
