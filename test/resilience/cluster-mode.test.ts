/**
 * GATEWAY_PROCESSES=2 on the production build: one port, two gateway
 * processes under a primary. Limits stay exact across them, a killed process
 * is replaced while the other keeps serving, every answered inference has its
 * usage record, and SIGTERM to the primary stops all of them gracefully (exit 0).
 */
import { ProductionGateway, productionEnv, READY_TIMEOUT_MS, STARTUP_TEST_TIMEOUT_MS, until } from '../harness';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { INFER, imageTensor } from '../inference/fixtures';
import { storedTotals } from '../usage/helpers';
import { SLOW_MODEL, slowModelRepository } from './slow-model-repository';

jest.setTimeout(2 * STARTUP_TEST_TIMEOUT_MS);

const ME = '{ me { scopes } }';

afterAll(() => closeTestKeys());

function listeningPids(gateway: ProductionGateway): number[] {
  return gateway
    .logLines()
    .filter((l) => String(l['msg']).startsWith('modelgate listening'))
    .map((l) => Number(l['pid']));
}

it('serves one port from two processes with exact limits, replaces a killed one, stops all on SIGTERM', async () => {
  const gateway = await ProductionGateway.start({
    ...productionEnv(),
    GATEWAY_PROCESSES: '2',
    INFERENCE_WORKERS: '1',
    MODEL_REPOSITORY: slowModelRepository(2),
    SHUTDOWN_READINESS_GRACE_MS: '200',
  });
  try {
    await until('two gateway processes listening', () => listeningPids(gateway), { accept: (pids) => pids.length === 2 });
    const [first, second] = listeningPids(gateway);
    expect(first).not.toBe(second);
    expect([first, second]).not.toContain(gateway.pid);
    // /readyz reaches one process or the other: ready several times in a row means both are.
    for (let streak = 0; streak < 10; ) streak = (await gateway.request('GET', '/readyz')).status === 200 ? streak + 1 : 0;

    const limited = await createTestKey({ scopes: ['inference'], keyLimits: { requestsPerMinute: 25 } });
    const responses = await Promise.all(Array.from({ length: 80 }, () => gateway.graphql(ME, {}, authHeaders(limited.key))));
    expect(responses.filter((r) => r.status === 200 && !r.body?.errors)).toHaveLength(25);
    expect(responses.filter((r) => r.status === 429)).toHaveLength(55);

    const generous = { requestsPerMinute: 100_000, computeUnitsPerMinute: 1_000_000 };
    const busy = await createTestKey({ scopes: ['inference'], keyLimits: generous, tenantLimits: generous });
    const infer = () => gateway.graphql(INFER, { input: { model: SLOW_MODEL, inputs: [imageTensor([1])] } }, authHeaders(busy.key));
    const before = await Promise.all(Array.from({ length: 20 }, infer));
    expect(before.map((r) => r.status)).toEqual(Array(20).fill(200));

    process.kill(first!, 'SIGKILL');
    // The replacement takes connections only once its models are loaded, so no request meets a loading process.
    await until('a replacement process listening (3 listening lines in all)', () => listeningPids(gateway), { accept: (pids) => pids.length === 3, timeoutMs: READY_TIMEOUT_MS });
    const after = await Promise.all(Array.from({ length: 20 }, infer));
    expect(after.map((r) => r.status)).toEqual(Array(20).fill(200));

    const exit = await gateway.stop(30_000);
    expect({ exit, log: exit.code === 0 ? '' : gateway.output }).toEqual({ exit: { code: 0, signal: null }, log: '' });
    expect(gateway.logLines().find((l) => l['msg'] === 'all gateway processes stopped')).toMatchObject({ failedExits: 0 });
    for (const pid of [second, listeningPids(gateway)[2]]) expect(() => process.kill(pid!, 0)).toThrow();
    const stored = await storedTotals(testEnv.databaseUrl, busy.tenantId);
    expect(stored.rows).toBe(40);
  } finally {
    await gateway.kill();
    for (const pid of listeningPids(gateway)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});
