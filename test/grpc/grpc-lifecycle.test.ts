/**
 * The gRPC door's lifecycle through the production build: a deadline of
 * 1 ms, a stream whose key is revoked midway, and SIGTERM with unary calls
 * and open streams in flight (all answered, streams ended OK, new calls
 * refused, exit 0, one usage record per answer).
 */
import { Pool } from 'pg';
import { Metadata, status } from '@grpc/grpc-js';
import { ProductionGateway, productionEnv } from '../harness';
import { freePort } from '../helpers/capture';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';
import { testEnv } from '../helpers/env';
import { OipGrpcClient, rawInfer } from './client';

let pool: Pool;
beforeAll(() => {
  pool = new Pool({ connectionString: testEnv.databaseUrl, max: 2 });
});
afterAll(async () => {
  await pool.end();
  await closeTestKeys();
});

interface StreamAnswer {
  error_message: string;
  infer_response: { id: string; raw_output_contents: Buffer[] };
}

type ClientStream = NodeJS.EventEmitter & { write(m: unknown): void; end(): void };

/** A ModelStreamInfer stream: answers as they come, and the final status. */
function openStream(client: OipGrpcClient, key: string): { call: ClientStream; answers: StreamAnswer[]; next(): Promise<StreamAnswer | null>; ended: Promise<{ code: number; details: string }> } {
  const metadata = new Metadata();
  metadata.set('authorization', `Bearer ${key}`);
  const call = (client.inference as unknown as { ModelStreamInfer(m: Metadata): ClientStream }).ModelStreamInfer(metadata);
  const answers: StreamAnswer[] = [];
  const waiters: ((a: StreamAnswer | null) => void)[] = [];
  let read = 0;
  call.on('data', (m: StreamAnswer) => {
    answers.push(m);
    waiters.shift()?.(answers[read++] ?? null);
  });
  call.on('error', () => undefined);
  const ended = new Promise<{ code: number; details: string }>((resolve) =>
    call.on('status', (s: { code: number; details: string }) => {
      for (const w of waiters.splice(0)) w(null);
      resolve(s);
    }),
  );
  let done = false;
  void ended.then(() => (done = true));
  return {
    call,
    answers,
    ended,
    next: () => (read < answers.length ? Promise.resolve(answers[read++]!) : done ? Promise.resolve(null) : new Promise((resolve) => waiters.push(resolve))),
  };
}

async function recordCount(tenantId: string, expected: number): Promise<number> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const n = Number((await pool.query<{ n: string }>('SELECT count(*) AS n FROM "UsageRecord" WHERE "tenantId" = $1', [tenantId])).rows[0]!.n);
    if (n >= expected || Date.now() > deadline) return n;
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('gRPC deadlines and revocation', () => {
  let gateway: ProductionGateway;
  let client: OipGrpcClient;
  beforeAll(async () => {
    const grpcPort = await freePort();
    gateway = await ProductionGateway.start({ ...productionEnv(), GRPC_PORT: String(grpcPort) });
    client = new OipGrpcClient(`127.0.0.1:${grpcPort}`);
  }, 60_000);
  afterAll(async () => {
    client?.close();
    await gateway?.stop();
  });

  it('answers a call whose 1 ms deadline passes with DEADLINE_EXCEEDED and keeps serving', async () => {
    const { key } = await createTestKey({ scopes: ['inference'] });
    const late = await client.call('ModelInfer', rawInfer(Array.from({ length: 64 }, (_, i) => i)), key, { deadline: Date.now() + 1 });
    expect(late.status.code).toBe(status.DEADLINE_EXCEEDED);
    expect((await client.call('ModelInfer', rawInfer([0]), key)).ok).toBe(true);
    expect(gateway.running).toBe(true);
  });

  it('ends a stream with UNAUTHENTICATED once its key is revoked, after answering every request made before', async () => {
    const tenantName = `grpc-revoke-${Date.now()}`;
    const caller = await createTestKey({ tenantName, scopes: ['inference'] });
    const admin = await createTestKey({ tenantName, scopes: ['admin'] });
    const stream = openStream(client, caller.key);
    let answered = 0;
    for (let i = 0; i < 5; i += 1) {
      stream.call.write(rawInfer([i], 'fashion-cnn', `before-${i}`));
      const answer = await stream.next();
      if (answer?.error_message === '') answered += 1;
    }
    const revoked = await gateway.graphql('mutation($id: ID!) { revokeApiKey(id: $id) { status } }', { id: caller.apiKeyId }, authHeaders(admin.key));
    expect(revoked.body?.data).toEqual({ revokeApiKey: { status: 'REVOKED' } });
    stream.call.write(rawInfer([9], 'fashion-cnn', 'after'));
    const end = await stream.ended;
    expect(answered).toBe(5);
    expect(end.code).toBe(status.UNAUTHENTICATED);
    expect(stream.answers.map((a) => a.infer_response.id)).toEqual(['before-0', 'before-1', 'before-2', 'before-3', 'before-4']);
    expect(await recordCount(caller.tenantId, 5)).toBe(5);
  });
});

describe('gRPC graceful drain on SIGTERM', () => {
  it('answers every unary call and stream request in flight, ends the streams OK, serves the open streams until their clients close them, refuses new calls and exits 0', async () => {
    const grpcPort = await freePort();
    const gateway = await ProductionGateway.start({ ...productionEnv(), GRPC_PORT: String(grpcPort), SHUTDOWN_READINESS_GRACE_MS: '0', INFERENCE_WORKERS: '1' });
    const client = new OipGrpcClient(`127.0.0.1:${grpcPort}`);
    try {
      const { key, tenantId } = await createTestKey({ scopes: ['inference'] });
      const images = Array.from({ length: 64 }, (_, i) => i);
      const streams = Array.from({ length: 4 }, () => openStream(client, key));
      // One answer per stream first: each stream is open and served before the signal.
      for (const [s, stream] of streams.entries()) {
        stream.call.write(rawInfer([s], 'fashion-cnn', `warm-${s}`));
        expect((await stream.next())?.error_message).toBe('');
      }
      let signalled = false;
      let afterSignal = 0;
      const unary = Array.from({ length: 32 }, () =>
        client.call('ModelInfer', rawInfer(images), key).then((answer) => {
          if (signalled) afterSignal += 1;
          return answer;
        }),
      );
      for (const [s, stream] of streams.entries()) for (let i = 0; i < 4; i += 1) stream.call.write(rawInfer(images, 'fashion-cnn', `s${s}-${i}`));
      const first = await Promise.race(unary);
      expect(first.ok).toBe(true);
      gateway.signal('SIGTERM');
      signalled = true;
      await gateway.waitForLog('gRPC door draining');
      // Open streams are served until their clients close them (gRPC's graceful stop).
      for (const stream of streams) stream.call.end();
      const refused = new OipGrpcClient(`127.0.0.1:${grpcPort}`);
      const late = await refused.call('ServerLive', {});
      refused.close();
      const answers = await Promise.all(unary);
      const ends = await Promise.all(streams.map((s) => s.ended));
      const exit = await gateway.waitExit(60_000);

      expect(late.status.code).toBe(status.UNAVAILABLE);
      expect(answers.filter((a) => a.ok)).toHaveLength(32);
      expect(ends.map((e) => e.code)).toEqual([0, 0, 0, 0]);
      expect(streams.map((s) => s.answers.filter((a) => a.error_message === '').length)).toEqual([5, 5, 5, 5]);
      expect(exit).toEqual({ code: 0, signal: null });
      // Records = answers: 32 unary calls and 20 stream requests.
      expect(await recordCount(tenantId, 52)).toBe(52);
      process.stdout.write(`gRPC drain: ${afterSignal} of 32 unary calls answered after SIGTERM\n`);
    } finally {
      client.close();
      if (gateway.running) await gateway.kill();
    }
  }, 120_000);
});
