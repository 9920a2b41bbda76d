/**
 * docker-compose.yml's topology without Docker: two production gateways
 * (`node dist/main.js`, NODE_ENV=production) behind Debian's nginx started
 * from the same deploy/compose/nginx.conf the compose `lb` service mounts,
 * with only its upstream line (Docker's `gateway` name → these gateways'
 * ports) and its listen port replaced. Requests through nginx succeed and
 * are spread over both replicas; while one replica stops (SIGTERM, as
 * `docker compose up --scale gateway=1` or a recreate does), clients see no
 * failure.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { NginxBalancer, ProductionGateway, productionEnv, REPO_ROOT, type SiteConfig } from '../harness';
import { authHeaders, closeTestKeys, createTestKey, type TestKey } from '../helpers/auth';
import { INFER, imageTensor } from '../inference/fixtures';

jest.setTimeout(120_000);

const COMPOSE_NGINX = path.join(REPO_ROOT, 'deploy', 'compose', 'nginx.conf');
const UPSTREAM_LINE = /^(\s*)server gateway:4000 resolve max_fails=0;$/m;
const LISTEN_LINE = /^(\s*)listen 80;$/m;

/** The compose nginx.conf with Docker's service name and port swapped for local ones; throws if either line moved. */
const composeSite: SiteConfig = (upstreamPorts, listenPort) => {
  const conf = readFileSync(COMPOSE_NGINX, 'utf8');
  if (!UPSTREAM_LINE.test(conf) || !LISTEN_LINE.test(conf)) throw new Error(`${COMPOSE_NGINX}: upstream or listen line not found`);
  return conf
    .replace(UPSTREAM_LINE, (_m, indent: string) => upstreamPorts.map((p) => `${indent}server 127.0.0.1:${p} max_fails=0;`).join('\n'))
    .replace(LISTEN_LINE, (_m, indent: string) => `${indent}listen 127.0.0.1:${listenPort};`);
};

let key: TestKey;
beforeAll(async () => {
  const generous = { requestsPerMinute: 1_000_000, computeUnitsPerMinute: 1_000_000 };
  key = await createTestKey({ scopes: ['inference'], tenantLimits: generous, keyLimits: generous });
});
afterAll(() => closeTestKeys());

/** Inference requests this replica answered successfully, from its own /metrics. */
async function succeeded(gateway: ProductionGateway): Promise<number> {
  const text = await (await fetch(`${gateway.url}/metrics`)).text();
  let total = 0;
  for (const match of text.matchAll(/^modelgate_inference_request_success_total\{[^}]*\} (\d+)$/gm)) total += Number(match[1]);
  return total;
}

it('serves through the compose nginx.conf, round robin over 2 production gateways, with no failure while one stops', async () => {
  const env = (): Record<string, string> => ({ ...productionEnv(), SHUTDOWN_READINESS_GRACE_MS: '500' });
  const replicas = await Promise.all([0, 1].map((i) => ProductionGateway.start(env(), { name: `replica-${i}` })));
  let balancer: NginxBalancer | null = null;
  try {
    balancer = await NginxBalancer.start(replicas.map((r) => r.port), { site: composeSite });
    const url = `${balancer.url}/graphql`;
    const headers = { 'content-type': 'application/json', ...authHeaders(key.key) };
    const body = JSON.stringify({ query: INFER, variables: { input: { model: 'fashion-cnn', inputs: [imageTensor([0])] } } });
    const infer = async (): Promise<string | null> => {
      try {
        const res = await fetch(url, { method: 'POST', headers, body });
        const text = await res.text();
        return res.status === 200 && !text.includes('"errors"') ? null : `${res.status} ${text.slice(0, 200)}`;
      } catch (error) {
        return `${String(error)} ${String((error as { cause?: unknown }).cause)}`;
      }
    };

    const before = await Promise.all(replicas.map(succeeded));
    const failures: string[] = [];
    for (let i = 0; i < 40; i += 1) {
      const failure = await infer();
      if (failure) failures.push(failure);
    }
    const after = await Promise.all(replicas.map(succeeded));
    expect(failures).toEqual([]);
    // One nginx worker, sequential requests, no failures: strict alternation.
    expect(after.map((n, i) => n - before[i]!)).toEqual([20, 20]);

    // A coded error passes through nginx unchanged (not an nginx error page).
    const unauthenticated = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(unauthenticated.headers.get('content-type')).toMatch(/json/);
    expect(await unauthenticated.text()).toMatch(/"code":"UNAUTHENTICATED"/);

    // Replica 1 stops as compose stops a container; nginx (no reload: Docker's DNS would drop it) skips its refused connections.
    const stopping = replicas[1]!;
    stopping.signal('SIGTERM');
    let duringStop = 0;
    while (stopping.running) {
      const failure = await infer();
      if (failure) failures.push(failure);
      duringStop += 1;
    }
    expect(await stopping.waitExit(30_000)).toEqual({ code: 0, signal: null });
    const survivorBefore = await succeeded(replicas[0]!);
    for (let i = 0; i < 10; i += 1) {
      const failure = await infer();
      if (failure) failures.push(failure);
    }
    if (failures.length > 0) failures.push(`nginx error.log: ${readFileSync(path.join(balancer.dir, 'error.log'), 'utf8')}`);
    expect(failures).toEqual([]);
    expect(await succeeded(replicas[0]!)).toBe(survivorBefore + 10);
    process.stdout.write(`compose topology: 40 requests split ${after.map((n, i) => n - before[i]!).join('/')}, ${duringStop} during a replica's stop, 10 after, 0 failed\n`);
  } finally {
    await balancer?.stop();
    await Promise.all(replicas.map((r) => r.kill()));
  }
});
