/**
 * A rolling deploy as Kubernetes does it (maxSurge 1): three production
 * replicas (`node dist/main.js`) behind nginx under steady inference traffic;
 * twice, a new replica starts and joins the balancer once /readyz is 200, and
 * an old one gets SIGTERM while the balancer drops it a moment later (the
 * endpoints update races the signal; the readiness grace covers that lag).
 * Clients see no failed request; every answered request has one usage record.
 */
import { NginxBalancer, ProductionGateway, productionEnv, sleep, STARTUP_TEST_TIMEOUT_MS, WAIT_TIMEOUT_MS } from '../harness';
import { authHeaders, closeTestKeys, createTestKey, type TestKey } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { INFER, imageTensor } from '../inference/fixtures';
import { storedTotals } from '../usage/helpers';
import { SLOW_MODEL, slowModelRepository } from './slow-model-repository';

// Three replicas start together, then each is replaced in turn: four readiness waits in a row.
jest.setTimeout(4 * STARTUP_TEST_TIMEOUT_MS);

const CLIENTS = 6;
let key: TestKey;

beforeAll(async () => {
  const generous = { requestsPerMinute: 1_000_000, computeUnitsPerMinute: 1_000_000 };
  key = await createTestKey({ scopes: ['inference'], tenantLimits: generous, keyLimits: generous });
});
afterAll(() => closeTestKeys());

it('restarts 2 of 3 replicas under load with 0 failed requests and 0 lost usage records', async () => {
  const models = slowModelRepository(2);
  const env = (): Record<string, string> => ({
    ...productionEnv(),
    MODEL_REPOSITORY: models,
    INFERENCE_WORKERS: '1',
    SHUTDOWN_READINESS_GRACE_MS: '500',
  });
  const replicas = await Promise.all([0, 1, 2].map((i) => ProductionGateway.start(env(), { name: `replica-${i}` })));
  const balancer = await NginxBalancer.start(replicas.map((r) => r.port));
  const body = JSON.stringify({ query: INFER, variables: { input: { model: SLOW_MODEL, inputs: [imageTensor([3])] } } });
  const headers = { 'content-type': 'application/json', ...authHeaders(key.key) };
  const failures: string[] = [];
  let answered = 0;
  let running = true;
  const client = async () => {
    while (running) {
      try {
        const res = await fetch(`${balancer.url}/graphql`, { method: 'POST', headers, body });
        const text = await res.text();
        if (res.status === 200 && !text.includes('"errors"')) answered += 1;
        else failures.push(`${res.status} ${text.slice(0, 200)}`);
      } catch (error) {
        failures.push(`${String(error)} ${String((error as { cause?: unknown }).cause)}`);
      }
    }
  };
  const clients = Array.from({ length: CLIENTS }, () => client());
  try {
    await sleep(1_000);
    const beforeRestarts = answered;
    for (const index of [0, 1]) {
      const old = replicas[index]!;
      replicas[index] = await ProductionGateway.start(env(), { name: `replica-${index}-new` });
      await balancer.setUpstreams([...replicas.map((r) => r.port), old.port]);
      old.signal('SIGTERM');
      await sleep(200);
      await balancer.setUpstreams(replicas.map((r) => r.port));
      const exit = await old.waitExit(WAIT_TIMEOUT_MS);
      expect({ replica: index, exit }).toEqual({ replica: index, exit: { code: 0, signal: null } });
    }
    await sleep(1_000);
    running = false;
    await Promise.all(clients);
    expect(failures).toEqual([]);
    expect(answered).toBeGreaterThan(beforeRestarts);
    for (const replica of replicas) expect(await replica.stop(WAIT_TIMEOUT_MS)).toEqual({ code: 0, signal: null });
  } finally {
    running = false;
    await balancer.stop();
    await Promise.all(replicas.map((r) => r.kill()));
  }
  const stored = await storedTotals(testEnv.databaseUrl, key.tenantId);
  process.stdout.write(`rolling restart: ${answered} answered, ${failures.length} failed, ${stored.rows} usage records\n`);
  expect(stored.rows).toBe(answered);
  expect(stored.byStatus).toEqual({ OK: answered });
});
