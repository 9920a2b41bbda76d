/**
 * The Kubernetes manifests and docker-compose.yml cannot be applied here (no
 * cluster, no Docker engine), so they are checked offline. Kubernetes: each
 * kustomize overlay is rendered with kubectl's built-in kustomize (client
 * side, no cluster), every document validates against its schema
 * (kubernetes-models), every pod spec passes the Pod Security `restricted`
 * rules (checked by code, each check shown failing on a broken spec), and the
 * pieces point at each other (HPA → StatefulSet, metrics the gateway
 * exports, Ingress → Service port, selectors → pod labels). Compose: the
 * Compose Specification schema and the rules that make `--scale` work. Both:
 * every environment variable is one the config module reads, and the grace
 * periods cover the gateway's own bounded shutdown.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Ajv from 'ajv';
import { parse, parseAllDocuments } from 'yaml';
import { CONFIG_VARIABLES, loadConfig } from '../../src/config';
import { openApiDocument } from '../../src/server/rest/openapi/openapi.document';
import { POD_SECURITY_CHECKS, podSecurityViolations, type PodSecurityCheck, type PodSpec } from './pod-security';

const ROOT = path.resolve(__dirname, '..', '..');
const K8S = path.join(ROOT, 'deploy', 'kubernetes');
const KUBECTL = process.env['KUBECTL'] ?? 'kubectl';
/** main.ts: readiness grace + drain timeout + this margin bounds a shutdown. */
const FLUSH_AND_CLOSE_MARGIN_S = 15;
/** The image's WORKDIR (Dockerfile): DATA_DIR=.data resolves under it. */
const IMAGE_WORKDIR = '/app';
/** Every path the gateway writes in its container (DATA_DIR and the OS temp dir); the rest of the root filesystem is read-only. */
const GATEWAY_WRITABLE = ['/app/.data', '/tmp'];
const MIGRATE_WRITABLE = ['/tmp'];

type Labels = Record<string, string>;
interface EnvVar {
  name: string;
  value?: string;
}
interface Probe {
  httpGet?: { path: string };
}
interface Container {
  name: string;
  image: string;
  env?: EnvVar[];
  ports?: { name?: string; containerPort: number }[];
  resources?: { requests?: Record<string, string>; limits?: Record<string, string | number> };
  volumeMounts?: { name: string; mountPath: string }[];
  readinessProbe?: Probe;
  livenessProbe?: Probe;
  startupProbe?: Probe;
  command?: string[];
}
interface PodTemplate {
  metadata: { labels: Labels };
  spec: PodSpec & {
    containers: Container[];
    terminationGracePeriodSeconds?: number;
    topologySpreadConstraints?: { topologyKey: string; labelSelector: { matchLabels: Labels } }[];
    volumes?: ({ name: string } & Record<string, unknown>)[];
  };
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Labels };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- each kind's spec is read by the test that knows its shape
  spec?: any;
}

type Overlay = 'base' | 'overlays/gpu' | 'overlays/monitoring';

const rendered = new Map<Overlay, { file: string; docs: K8sObject[] }>();
/** `kubectl kustomize DIR`: client-side, no cluster. Cached per overlay. */
function render(overlay: Overlay): { file: string; docs: K8sObject[] } {
  let out = rendered.get(overlay);
  if (!out) {
    const yaml = execFileSync(KUBECTL, ['kustomize', path.join(K8S, overlay)], { encoding: 'utf8' });
    const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'mg-k8s-')), 'rendered.yaml');
    writeFileSync(file, yaml);
    out = { file, docs: parseAllDocuments(yaml).map((d) => d.toJS() as K8sObject) };
    rendered.set(overlay, out);
  }
  return out;
}
function one(overlay: Overlay, kind: string, name?: string): K8sObject {
  const found = render(overlay).docs.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
  if (found.length !== 1) throw new Error(`${overlay}: ${found.length} ${kind} ${name ?? ''}`);
  return found[0]!;
}
const gatewayPod = (overlay: Overlay): PodTemplate => one(overlay, 'StatefulSet', 'modelgate').spec.template as PodTemplate;
const selects = (selector: Labels, labels: Labels): boolean => Object.entries(selector).every(([k, v]) => labels[k] === v);

function validate(file: string): { kind: string; name: string; error?: string; skipped?: string }[] {
  const out = execFileSync(process.execPath, [path.join(__dirname, 'validate-manifests.mjs'), file], { cwd: ROOT, encoding: 'utf8' });
  return JSON.parse(out) as { kind: string; name: string; error?: string; skipped?: string }[];
}

/** The example's key is a placeholder (never an all-zero key a careless copy would run with): production refuses it, naming it. */
function expectRefusedPlaceholderKey(env: Record<string, string>): void {
  expect(env['WEBHOOK_SECRET_ENCRYPTION_KEY']).toMatch(/^CHANGE-ME/);
  expect(() => loadConfig({ ...env, NODE_ENV: 'production' } as NodeJS.ProcessEnv)).toThrow(/WEBHOOK_SECRET_ENCRYPTION_KEY: /);
}

/** Metric names the gateway registers (prom-client `name: '...'` in src). */
function exportedMetricNames(): Set<string> {
  const names = new Set<string>();
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir)) {
      const full = path.join(dir, entry);
      if (statSync(full).isDirectory()) walk(full);
      else if (full.endsWith('.ts')) for (const m of readFileSync(full, 'utf8').matchAll(/name: '(modelgate_[a-z_]+)'/g)) names.add(m[1]!);
    }
  };
  walk(path.join(ROOT, 'src'));
  return names;
}

const BASE_KINDS = ['ConfigMap', 'HorizontalPodAutoscaler', 'Ingress', 'Job', 'NetworkPolicy', 'PodDisruptionBudget', 'Secret', 'Service', 'Service', 'StatefulSet'];

describe('Kubernetes: schemas', () => {
  it.each([
    ['base', BASE_KINDS],
    ['overlays/gpu', BASE_KINDS],
    ['overlays/monitoring', [...BASE_KINDS, 'ServiceMonitor'].sort()],
  ] as const)('renders %s with kustomize and validates every document against its schema', (overlay, kinds) => {
    const results = validate(render(overlay).file);
    expect(results.map((r) => r.kind).sort()).toEqual(kinds);
    expect(results.filter((r) => r.error)).toEqual([]);
    // Only the ServiceMonitor (a CRD, checked by monitoring.test.ts) goes without a schema.
    expect(results.filter((r) => r.skipped).map((r) => r.kind)).toEqual(overlay === 'overlays/monitoring' ? ['ServiceMonitor'] : []);
  });

  it('rejects a document that breaks its schema (the check can fail)', () => {
    const broken = path.join(mkdtempSync(path.join(os.tmpdir(), 'mg-k8s-')), 'broken.yaml');
    writeFileSync(
      broken,
      'apiVersion: apps/v1\nkind: Deployment\nmetadata: { name: x }\nspec: { replicas: three, selector: {}, template: { spec: { containers: [ { image: x } ] } } }\n' +
        '---\napiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata: { name: y }\nspec: { maxReplicas: 3, scaleTargetRef: { kind: StatefulSet, name: y }, metrics: [ { type: Pods, pods: { target: { type: AverageValue } } } ] }\n',
    );
    const [deployment, hpa] = validate(broken);
    expect(deployment?.error).toMatch(/replicas|name/);
    expect(hpa?.error).toMatch(/metric/);
  });
});

describe('Kubernetes: Pod Security `restricted`', () => {
  it.each(['base', 'overlays/gpu'] as const)('%s: the gateway and migration pods pass every check, with their writable paths mounted', (overlay) => {
    expect(podSecurityViolations(gatewayPod(overlay).spec, GATEWAY_WRITABLE, ['data'])).toEqual([]);
    expect(podSecurityViolations((one(overlay, 'Job').spec.template as PodTemplate).spec, MIGRATE_WRITABLE)).toEqual([]);
  });

  /** One way to break each check, applied to the real gateway pod spec. */
  const breakers: Record<PodSecurityCheck, (pod: PodSpec) => void> = {
    hostNamespaces: (pod) => (pod.hostNetwork = true),
    privileged: (pod) => (pod.containers[0]!.securityContext = { ...pod.containers[0]!.securityContext, privileged: true }),
    hostPorts: (pod) => (pod.containers[0]!.ports = [{ containerPort: 4000, hostPort: 4000 }]),
    hostPathVolumes: (pod) => pod.volumes!.push({ name: 'host', hostPath: { path: '/var/run' } }),
    volumeTypes: (pod) => pod.volumes!.push({ name: 'nfs', nfs: { server: 'x', path: '/' } }),
    allowPrivilegeEscalation: (pod) => delete pod.containers[0]!.securityContext!.allowPrivilegeEscalation,
    runAsNonRoot: (pod) => delete pod.securityContext!.runAsNonRoot,
    runAsUser: (pod) => (pod.containers[0]!.securityContext!.runAsUser = 0),
    seccompProfile: (pod) => (pod.securityContext!.seccompProfile = { type: 'Unconfined' }),
    capabilities: (pod) => (pod.containers[0]!.securityContext!.capabilities = { drop: ['ALL'], add: ['NET_ADMIN'] }),
    readOnlyRootFilesystem: (pod) => (pod.containers[0]!.securityContext!.readOnlyRootFilesystem = false),
    writablePathsMounted: (pod) => (pod.containers[0]!.volumeMounts = pod.containers[0]!.volumeMounts!.filter((m) => m.mountPath !== '/tmp')),
  };

  it.each(POD_SECURITY_CHECKS)('reports %s on a pod spec broken for it (the check can fail)', (check) => {
    const pod = structuredClone(gatewayPod('base').spec);
    breakers[check](pod);
    const violations = podSecurityViolations(pod, GATEWAY_WRITABLE, ['data']);
    expect(violations.map((v) => v.check)).toContain(check);
  });

  it('reports a container that sets no security context at all, on each container rule', () => {
    const pod: PodSpec = { containers: [{ name: 'bare' }] };
    expect([...new Set(podSecurityViolations(pod, ['/tmp']).map((v) => v.check))].sort()).toEqual(
      ['allowPrivilegeEscalation', 'capabilities', 'readOnlyRootFilesystem', 'runAsNonRoot', 'seccompProfile', 'writablePathsMounted'].sort(),
    );
  });
});

describe('Kubernetes: the pieces fit', () => {
  it('sets only variables the config module reads, with values it accepts, and grace covering shutdown', () => {
    for (const overlay of ['base', 'overlays/gpu'] as const) {
      const configMap = one(overlay, 'ConfigMap').data ?? {};
      const secret = one(overlay, 'Secret').stringData ?? {};
      const pod = gatewayPod(overlay);
      const container = pod.spec.containers[0]!;
      const env: Record<string, string> = { ...secret, ...configMap };
      for (const e of container.env ?? []) env[e.name] = e.value ?? '';
      expect(Object.keys(env).filter((name) => !CONFIG_VARIABLES.includes(name))).toEqual([]);
      expectRefusedPlaceholderKey(env);
      const config = loadConfig({ ...env, WEBHOOK_SECRET_ENCRYPTION_KEY: randomBytes(32).toString('hex') } as NodeJS.ProcessEnv, IMAGE_WORKDIR);
      expect(config.processes).toBe(overlay === 'base' ? 2 : 1);
      // The spool lies on the claim: data mounted at DATA_DIR.
      expect(config.usage.spoolDir.startsWith(`${GATEWAY_WRITABLE[0]}/`)).toBe(true);

      const needed = (config.shutdownReadinessGraceMs + config.shutdownDrainTimeoutMs) / 1000 + FLUSH_AND_CLOSE_MARGIN_S;
      expect(pod.spec.terminationGracePeriodSeconds).toBeGreaterThanOrEqual(needed);
      expect(container.readinessProbe?.httpGet?.path).toBe('/readyz');
      expect(container.livenessProbe?.httpGet?.path).toBe('/healthz');
      expect(container.startupProbe?.httpGet?.path).toBe('/healthz');
    }
  });

  it('keeps the usage spool on a per-pod PersistentVolumeClaim, never an emptyDir', () => {
    const sts = one('base', 'StatefulSet', 'modelgate');
    const claims = (sts.spec.volumeClaimTemplates as { metadata: { name: string }; spec: { accessModes: string[] } }[]).map((c) => [c.metadata.name, c.spec.accessModes]);
    expect(claims).toEqual([['data', ['ReadWriteOnce']]]);
    const pod = gatewayPod('base');
    expect(pod.spec.containers[0]!.volumeMounts).toContainEqual({ name: 'data', mountPath: '/app/.data' });
    expect((pod.spec.volumes ?? []).map((v) => v.name)).not.toContain('data');
    expect(sts.spec.persistentVolumeClaimRetentionPolicy).toEqual({ whenDeleted: 'Retain', whenScaled: 'Retain' });
  });

  it('autoscales the StatefulSet on CPU and on in-flight and queued requests the gateway exports, served by the adapter rules', () => {
    const hpa = one('base', 'HorizontalPodAutoscaler');
    expect(hpa.spec.scaleTargetRef).toEqual({ apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'modelgate' });
    type Metric = { type: string; resource?: { name: string }; pods?: { metric: { name: string } } };
    const metrics = hpa.spec.metrics as Metric[];
    expect(metrics.filter((m) => m.type === 'Resource').map((m) => m.resource?.name)).toEqual(['cpu']);
    const podMetrics = metrics.filter((m) => m.type === 'Pods').map((m) => m.pods!.metric.name);
    expect(podMetrics).toEqual(['modelgate_http_requests_in_flight', 'modelgate_inference_pending_requests']);
    const exported = exportedMetricNames();
    expect(podMetrics.filter((name) => !exported.has(name))).toEqual([]);
    const adapter = parse(readFileSync(path.join(K8S, 'prometheus-adapter-rules.yaml'), 'utf8')) as { rules: { custom: { name: { as: string }; seriesQuery: string }[] } };
    expect(adapter.rules.custom.map((r) => r.name.as)).toEqual(podMetrics);
    for (const rule of adapter.rules.custom) expect(rule.seriesQuery.startsWith(`${rule.name.as}{`)).toBe(true);
    // A drain or a rolling update takes one pod at a time; the floor keeps 2 serving.
    expect(hpa.spec.minReplicas).toBeGreaterThanOrEqual(3);
    expect(one('base', 'PodDisruptionBudget').spec.maxUnavailable).toBe(1);
    // The GPU overlay scales on the queue only.
    expect((one('overlays/gpu', 'HorizontalPodAutoscaler').spec.metrics as Metric[]).map((m) => m.type)).toEqual(['Pods', 'Pods']);
  });

  it('a metric the gateway does not export would be reported (the check can fail)', () => {
    expect(exportedMetricNames().has('modelgate_requests_in_flight')).toBe(false);
    expect(exportedMetricNames().has('modelgate_http_requests_in_flight')).toBe(true);
  });

  it('selects the gateway pods from the Services, PDB, NetworkPolicy and spread constraints', () => {
    const labels = gatewayPod('base').metadata.labels;
    const sts = one('base', 'StatefulSet', 'modelgate');
    expect(selects(sts.spec.selector.matchLabels as Labels, labels)).toBe(true);
    expect(one('base', 'Service', 'modelgate-pods').spec.clusterIP).toBe('None');
    expect(sts.spec.serviceName).toBe('modelgate-pods');
    for (const name of ['modelgate', 'modelgate-pods']) expect(selects(one('base', 'Service', name).spec.selector as Labels, labels)).toBe(true);
    expect(selects(one('base', 'PodDisruptionBudget').spec.selector.matchLabels as Labels, labels)).toBe(true);
    const policy = one('base', 'NetworkPolicy');
    expect(selects(policy.spec.podSelector.matchLabels as Labels, labels)).toBe(true);
    expect(selects(policy.spec.podSelector.matchLabels as Labels, (one('base', 'Job').spec.template as PodTemplate).metadata.labels)).toBe(true);
    const spread = gatewayPod('base').spec.topologySpreadConstraints ?? [];
    expect(spread.map((c) => c.topologyKey).sort()).toEqual(['kubernetes.io/hostname', 'topology.kubernetes.io/zone']);
    for (const c of spread) expect(selects(c.labelSelector.matchLabels, labels)).toBe(true);
    // A selector with a label the pods lack selects nothing (the check can fail).
    expect(selects({ ...labels, 'app.kubernetes.io/component': 'other' }, labels)).toBe(false);
  });

  it('lets in only the gateway port, and out only DNS, Postgres, Redis and public webhook targets', () => {
    const policy = one('base', 'NetworkPolicy').spec as {
      policyTypes: string[];
      ingress: { ports: { port: number }[] }[];
      egress: { ports: { protocol: string; port: number }[]; to?: { ipBlock?: { cidr: string; except: string[] } }[] }[];
    };
    expect(policy.policyTypes).toEqual(['Ingress', 'Egress']);
    // The gateway's own ports (HTTP and gRPC), nothing else.
    const containerPorts = gatewayPod('base').spec.containers[0]!.ports!.map((p) => p.containerPort);
    expect(containerPorts).toEqual([4000, 8001]);
    expect(policy.ingress.flatMap((r) => r.ports.map((p) => p.port))).toEqual(containerPorts);
    expect(policy.egress.flatMap((r) => r.ports.map((p) => `${p.protocol}/${p.port}`)).sort()).toEqual(['TCP/443', 'TCP/53', 'TCP/5432', 'TCP/6379', 'TCP/80', 'UDP/53'].sort());
    const webhook = policy.egress.find((r) => r.to?.some((t) => t.ipBlock))!;
    expect(webhook.to![0]!.ipBlock!.except).toEqual(expect.arrayContaining(['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '169.254.0.0/16']));
  });

  it('routes every client-facing route through the Ingress to the Service port, and keeps /metrics and /readyz inside', () => {
    const ingress = one('base', 'Ingress').spec as {
      rules: { http: { paths: { path: string; pathType: string; backend: { service: { name: string; port: { name: string } } } }[] } }[];
    };
    const paths = ingress.rules.flatMap((r) => r.http.paths);
    const service = one('base', 'Service', 'modelgate');
    for (const p of paths) {
      expect(p.backend.service.name).toBe('modelgate');
      expect((service.spec.ports as { name: string }[]).map((port) => port.name)).toContain(p.backend.service.port.name);
    }
    const routed = (route: string): boolean =>
      paths.some((p) => (p.pathType === 'Exact' ? route === p.path : route === p.path || route.startsWith(`${p.path}/`)));
    const documented = [...Object.keys((openApiDocument() as { paths: Record<string, unknown> }).paths), '/graphql'];
    const internal = ['/healthz', '/readyz', '/metrics'];
    expect(documented.filter((r) => !internal.includes(r) && !routed(r))).toEqual([]);
    expect(internal.filter(routed)).toEqual([]);
  });

  it('runs the GPU overlay on the CUDA image with a GPU per pod and the CUDA provider first', () => {
    const container = gatewayPod('overlays/gpu').spec.containers[0]!;
    expect(container.image).toBe('modelgate:latest-cuda');
    expect(container.resources?.limits?.['nvidia.com/gpu']).toBe(1);
    expect(one('overlays/gpu', 'ConfigMap').data?.['EXECUTION_PROVIDERS']).toBe('cuda,cpu');
    expect(gatewayPod('overlays/gpu').spec).toMatchObject({ tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }] });
    expect(gatewayPod('base').spec.containers[0]!.resources?.limits?.['nvidia.com/gpu']).toBeUndefined();
  });
});

interface ComposeService {
  image?: string;
  build?: unknown;
  environment?: Record<string, string>;
  stop_grace_period?: string;
  command?: string[];
  ports?: string[];
  expose?: string[];
  container_name?: string;
  volumes?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
}
interface ComposeFile {
  services: Record<string, ComposeService>;
}
const loadCompose = (): ComposeFile => parse(readFileSync(path.join(ROOT, 'docker-compose.yml'), 'utf8')) as ComposeFile;

/** What breaks `docker compose up --scale gateway=N` (or loses the spool) in this file. */
function scaleProblems(compose: ComposeFile): string[] {
  const problems: string[] = [];
  const gateway = compose.services['gateway'];
  const lb = compose.services['lb'];
  if (!gateway || !lb) return ['gateway or lb service missing'];
  if (gateway.ports?.length) problems.push('gateway publishes a host port (a second replica cannot bind it)');
  if (gateway.container_name) problems.push('gateway has a container_name (replicas need their own)');
  if (!gateway.healthcheck) problems.push('gateway has no health check');
  const dataVolume = (gateway.volumes ?? []).find((v) => v.split(':').at(-1) === '/app/.data' || v.split(':')[1] === '/app/.data');
  if (dataVolume !== '/app/.data') problems.push(`gateway spool is not an anonymous per-replica volume: ${String(dataVolume)}`);
  if (!(lb.ports ?? []).some((p) => /:80$/.test(p))) problems.push('lb publishes no port to nginx');
  if (!(lb.volumes ?? []).includes('./deploy/compose/nginx.conf:/etc/nginx/conf.d/default.conf:ro')) problems.push('lb does not mount deploy/compose/nginx.conf');
  if (lb.depends_on?.['gateway']?.condition !== 'service_healthy') problems.push('lb does not wait for a healthy gateway');
  return problems;
}

describe('docker-compose.yml', () => {
  // Draft 7 (Ajv's default); the file names the meta-schema by an https URL Ajv does not register, so that one key is dropped.
  const { $schema: _draft7, ...schema } = JSON.parse(readFileSync(path.join(ROOT, 'deploy', 'compose', 'compose-spec.json'), 'utf8')) as { $schema: string };
  const validateCompose = new Ajv({ allErrors: true, strict: false }).compile(schema);

  it('validates against the Compose Specification schema', () => {
    expect(validateCompose(loadCompose())).toBe(true);
    expect(validateCompose.errors ?? []).toEqual([]);
  });

  it('rejects a compose file that breaks the schema (the check can fail)', () => {
    const broken = loadCompose() as unknown as { services: Record<string, Record<string, unknown>> };
    broken.services['gateway']!['stop_grace_priod'] = '35s';
    broken.services['lb']!['ports'] = { http: 4000 };
    expect(validateCompose(broken)).toBe(false);
    expect((validateCompose.errors ?? []).map((e) => e.instancePath).sort()).toEqual(expect.arrayContaining(['/services/gateway', '/services/lb/ports']));
  });

  it('scales: gateways with no host port, a per-replica spool volume, health checks, and nginx on the published port', () => {
    expect(scaleProblems(loadCompose())).toEqual([]);
    const conf = readFileSync(path.join(ROOT, 'deploy', 'compose', 'nginx.conf'), 'utf8');
    // nginx re-resolves the service name, so replicas added by --scale join without a reload.
    expect(conf).toMatch(/^resolver 127\.0\.0\.11 /m);
    expect(conf).toMatch(/^\s*server gateway:4000 resolve /m);
  });

  it('reports each way to break scaling (the check can fail)', () => {
    const broken = (edit: (c: ComposeFile) => void): string[] => {
      const c = loadCompose();
      edit(c);
      return scaleProblems(c);
    };
    expect(broken((c) => (c.services['gateway']!.ports = ['4000:4000']))).toEqual(['gateway publishes a host port (a second replica cannot bind it)']);
    expect(broken((c) => (c.services['gateway']!.container_name = 'gateway'))).toEqual(['gateway has a container_name (replicas need their own)']);
    expect(broken((c) => delete c.services['gateway']!.healthcheck)).toEqual(['gateway has no health check']);
    expect(broken((c) => (c.services['gateway']!.volumes = ['spool:/app/.data']))).toEqual(['gateway spool is not an anonymous per-replica volume: spool:/app/.data']);
    expect(broken((c) => delete c.services['lb']!.depends_on)).toEqual(['lb does not wait for a healthy gateway']);
  });

  it('keeps the gateway on variables the config module reads and a stop grace covering shutdown', () => {
    const compose = loadCompose();
    const gateway = compose.services['gateway']!;
    const env = gateway.environment ?? {};
    expect(Object.keys(env).filter((name) => !CONFIG_VARIABLES.includes(name))).toEqual([]);
    // Compose substitutes ${WEBHOOK_SECRET_ENCRYPTION_KEY:-placeholder}: unset, the gateway gets the placeholder.
    const key = /^\$\{WEBHOOK_SECRET_ENCRYPTION_KEY:-([^}]+)\}$/.exec(env['WEBHOOK_SECRET_ENCRYPTION_KEY'] ?? '')?.[1];
    expectRefusedPlaceholderKey({ ...env, WEBHOOK_SECRET_ENCRYPTION_KEY: key ?? '(not the documented substitution)' });
    const config = loadConfig({ ...env, WEBHOOK_SECRET_ENCRYPTION_KEY: randomBytes(32).toString('hex') } as NodeJS.ProcessEnv, IMAGE_WORKDIR);
    expect(config.usage.spoolDir.startsWith('/app/.data/')).toBe(true);
    const grace = Number(/^(\d+)s$/.exec(gateway.stop_grace_period ?? '')?.[1]);
    expect(grace).toBeGreaterThanOrEqual((config.shutdownReadinessGraceMs + config.shutdownDrainTimeoutMs) / 1000 + FLUSH_AND_CLOSE_MARGIN_S);
    expect(compose.services['migrate']?.command).toEqual(['node', 'dist/db/migrate-cli.js', 'deploy']);
  });
});
