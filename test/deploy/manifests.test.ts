/**
 * The Kubernetes manifests and docker-compose.yml cannot be applied here (no
 * cluster, no Docker engine), so they are checked offline: every Kubernetes
 * document validates against its schema, every environment variable they set
 * is one the config module reads, the grace periods cover the gateway's own
 * bounded shutdown, and the probes point at routes that exist.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../../src/config';

const ROOT = path.resolve(__dirname, '..', '..');
const K8S = path.join(ROOT, 'deploy', 'kubernetes', 'modelgate.yaml');
/** main.ts: readiness grace + drain timeout + this margin bounds a shutdown. */
const FLUSH_AND_CLOSE_MARGIN_S = 15;

interface K8sObject {
  kind: string;
  metadata: { name: string };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  spec?: Record<string, unknown>;
}
type Container = { env?: { name: string; value?: string }[]; readinessProbe?: Probe; livenessProbe?: Probe; startupProbe?: Probe; command?: string[] };
type Probe = { httpGet?: { path: string } };

const docs = parseAllDocuments(readFileSync(K8S, 'utf8')).map((d) => d.toJS() as K8sObject);
const byKind = (kind: string) => docs.filter((d) => d.kind === kind);

it('validates every Kubernetes document against its schema', () => {
  const out = execFileSync(process.execPath, [path.join(__dirname, 'validate-manifests.mjs'), K8S], { cwd: ROOT, encoding: 'utf8' });
  const results = JSON.parse(out) as { kind: string; name: string; error?: string }[];
  expect(results.map((r) => r.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'Job', 'PodDisruptionBudget', 'Secret', 'Service']);
  expect(results.filter((r) => r.error)).toEqual([]);
});

it('rejects a document that breaks its schema (the check can fail)', () => {
  const broken = path.join(mkdtempSync(path.join(os.tmpdir(), 'mg-k8s-')), 'broken.yaml');
  writeFileSync(broken, 'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: x }\nspec: { replicas: three, selector: {}, template: { spec: { containers: [ { image: x } ] } } }\n');
  const out = execFileSync(process.execPath, [path.join(__dirname, 'validate-manifests.mjs'), broken], { cwd: ROOT, encoding: 'utf8' });
  const [result] = JSON.parse(out) as { error?: string }[];
  expect(result?.error).toMatch(/replicas|name/);
});

/** The example's key is a placeholder (never an all-zero key a careless copy would run with): production refuses it, naming it. */
function expectRefusedPlaceholderKey(env: Record<string, string>): void {
  expect(env['WEBHOOK_SECRET_ENCRYPTION_KEY']).toMatch(/^CHANGE-ME/);
  expect(() => loadConfig({ ...env, NODE_ENV: 'production' } as NodeJS.ProcessEnv)).toThrow(/WEBHOOK_SECRET_ENCRYPTION_KEY: /);
}

it('sets only variables the config module reads, with values it accepts', () => {
  const configMap = byKind('ConfigMap')[0]!.data ?? {};
  const secret = byKind('Secret')[0]!.stringData ?? {};
  const deployment = byKind('Deployment')[0]!;
  const container = ((deployment.spec!['template'] as { spec: { containers: Container[] } }).spec.containers)[0]!;
  const env: Record<string, string> = { ...secret, ...configMap };
  for (const e of container.env ?? []) env[e.name] = e.value ?? '';
  expect(Object.keys(env).filter((name) => !CONFIG_VARIABLES.includes(name))).toEqual([]);
  expectRefusedPlaceholderKey(env);
  const config = loadConfig({ ...env, WEBHOOK_SECRET_ENCRYPTION_KEY: randomBytes(32).toString('hex') } as NodeJS.ProcessEnv);
  expect(config.processes).toBe(2);

  const grace = (deployment.spec!['template'] as { spec: { terminationGracePeriodSeconds: number } }).spec.terminationGracePeriodSeconds;
  const needed = (config.shutdownReadinessGraceMs + config.shutdownDrainTimeoutMs) / 1000 + FLUSH_AND_CLOSE_MARGIN_S;
  expect(grace).toBeGreaterThanOrEqual(needed);
  expect(container.readinessProbe?.httpGet?.path).toBe('/readyz');
  expect(container.livenessProbe?.httpGet?.path).toBe('/healthz');
  expect(container.startupProbe?.httpGet?.path).toBe('/healthz');
});

it('keeps docker-compose.yml on variables the config module reads and a stop grace covering shutdown', () => {
  const compose = parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as {
    services: Record<string, { environment?: Record<string, string>; stop_grace_period?: string; command?: string[] }>;
  };
  const gateway = compose.services['gateway']!;
  const env = gateway.environment ?? {};
  expect(Object.keys(env).filter((name) => !CONFIG_VARIABLES.includes(name))).toEqual([]);
  // Compose substitutes ${WEBHOOK_SECRET_ENCRYPTION_KEY:-placeholder}: unset, the gateway gets the placeholder.
  const key = /^\$\{WEBHOOK_SECRET_ENCRYPTION_KEY:-([^}]+)\}$/.exec(env['WEBHOOK_SECRET_ENCRYPTION_KEY'] ?? '')?.[1];
  expectRefusedPlaceholderKey({ ...env, WEBHOOK_SECRET_ENCRYPTION_KEY: key ?? '(not the documented substitution)' });
  const config = loadConfig({ ...env, WEBHOOK_SECRET_ENCRYPTION_KEY: randomBytes(32).toString('hex') } as NodeJS.ProcessEnv);
  const grace = Number(/^(\d+)s$/.exec(gateway.stop_grace_period ?? '')?.[1]);
  expect(grace).toBeGreaterThanOrEqual((config.shutdownReadinessGraceMs + config.shutdownDrainTimeoutMs) / 1000 + FLUSH_AND_CLOSE_MARGIN_S);
  expect(compose.services['migrate']?.command).toEqual(['node', 'dist/db/migrate-cli.js', 'deploy']);
});
