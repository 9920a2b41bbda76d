/**
 * GATEWAY_PROCESSES=2 with the gRPC door, on the production build: every
 * gateway process binds GRPC_PORT (node:cluster shares the listening socket
 * through the primary, as it does for the HTTP port: grpc-js listens through
 * node's net module, so no SO_REUSEPORT is involved), connections are spread
 * over both processes, and SIGTERM to the primary drains both doors (exit 0).
 * Which process answered a call is read from the spans each one exports
 * (resource attribute process.pid).
 */
import { ProductionGateway, productionEnv, STARTUP_TEST_TIMEOUT_MS, until } from '../harness';
import { freePort } from '../helpers/capture';
import { closeTestKeys, createTestKey } from '../helpers/auth';
import { OtlpReceiver } from '../observability/otlp-receiver';
import { OipGrpcClient, rawInfer } from './client';

jest.setTimeout(2 * STARTUP_TEST_TIMEOUT_MS);

const CONNECTIONS = 8;

let receiver: OtlpReceiver;
afterAll(async () => {
  await receiver?.close();
  await closeTestKeys();
});

function grpcListening(gateway: ProductionGateway, port: number): number[] {
  return gateway
    .logLines()
    .filter((l) => String(l['msg']).startsWith('gRPC (Open Inference Protocol) listening') && l['port'] === port)
    .map((l) => Number(l['pid']));
}

it('serves GRPC_PORT from every gateway process and drains them all on SIGTERM', async () => {
  receiver = await OtlpReceiver.start();
  const grpcPort = await freePort();
  const gateway = await ProductionGateway.start({
    ...productionEnv(),
    GATEWAY_PROCESSES: '2',
    INFERENCE_WORKERS: '1',
    GRPC_PORT: String(grpcPort),
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.endpoint,
    OTEL_BSP_SCHEDULE_DELAY: '600000',
    SHUTDOWN_READINESS_GRACE_MS: '200',
  });
  const clients: OipGrpcClient[] = [];
  try {
    await until('both gateway processes listening on the gRPC port', () => grpcListening(gateway, grpcPort), { accept: (pids) => pids.length === 2 });
    const pids = grpcListening(gateway, grpcPort);
    expect(new Set(pids).size).toBe(2);
    expect(pids).not.toContain(gateway.pid);

    const { key } = await createTestKey({ scopes: ['inference'] });
    // One connection per client (no shared subchannel pool), so each is accepted on its own.
    for (let i = 0; i < CONNECTIONS; i += 1) clients.push(new OipGrpcClient(`127.0.0.1:${grpcPort}`, { 'grpc.use_local_subchannel_pool': 1 }));
    const answers = [];
    for (const client of clients) answers.push(await client.call('ModelInfer', rawInfer([0]), key));
    expect(answers.map((a) => a.status.code)).toEqual(Array(CONNECTIONS).fill(0));
    for (const client of clients) client.close();

    const exit = await gateway.stop(30_000);
    expect({ exit, log: exit.code === 0 ? '' : gateway.output }).toEqual({ exit: { code: 0, signal: null }, log: '' });
    // Each process flushed its spans on its own shutdown: the ModelInfer calls were answered by both.
    const served = receiver.spans.filter((s) => s.name === 'inference.GRPCInferenceService/ModelInfer').map((s) => Number(s.resource['process.pid']));
    expect(served).toHaveLength(CONNECTIONS);
    expect(new Set(served)).toEqual(new Set(pids));
  } finally {
    for (const client of clients) client.close();
    await gateway.kill();
    for (const pid of grpcListening(gateway, grpcPort)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
});
