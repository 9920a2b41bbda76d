/**
 * What ships for the people who run modelgate (issue #27 item 8): the Grafana
 * dashboard and the Prometheus alert rules use only metrics that a real
 * /metrics scrape of the production build exports; the rules pass `promtool
 * check rules` and their unit tests (`promtool test rules`, one firing and one
 * quiet case per alert); the ServiceMonitor scrapes the Service's named port.
 * Each check is also shown failing on a broken input.
 */
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse, parseAllDocuments } from 'yaml';
import { ProductionGateway, productionEnv } from '../harness';
import { authHeaders, closeTestKeys, createTestKey } from '../helpers/auth';

const ROOT = path.resolve(__dirname, '..', '..');
const MONITORING = path.join(ROOT, 'deploy', 'monitoring');
const RULES = path.join(MONITORING, 'alerts.yaml');
const RULE_TESTS = path.join(MONITORING, 'alerts.test.yaml');
const DASHBOARD = path.join(MONITORING, 'grafana-dashboard.json');
const PROMTOOL = '/usr/bin/promtool';

interface Rule {
  alert: string;
  expr: string;
}
interface RuleTest {
  alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[];
}
interface Panel {
  title: string;
  type: string;
  targets?: { expr: string }[];
}

const rules = (parse(readFileSync(RULES, 'utf8')) as { groups: { rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[]; templating: { list: { query?: string | { query: string } }[] } };

function promtool(...args: string[]): { status: number | null; output: string } {
  const r = spawnSync(PROMTOOL, args, { encoding: 'utf8', cwd: MONITORING });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/** The PromQL of every panel and template variable. */
function dashboardExpressions(): string[] {
  const panels = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
  const variables = dashboard.templating.list.map((v) => (typeof v.query === 'string' ? '' : (v.query?.query ?? ''))).filter(Boolean);
  return [...panels, ...variables];
}

/** Metric families from a scrape: name → type. */
function families(scrape: string): Map<string, string> {
  return new Map([...scrape.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** Metric names used in `expressions` that the scrape does not export (histogram _bucket/_sum/_count resolve to their family). */
function missingMetrics(expressions: string[], exported: Map<string, string>): string[] {
  const used = new Set(expressions.flatMap((e) => [...e.matchAll(/\b((?:modelgate|process|nodejs)_[A-Za-z0-9_]+)/g)].map((m) => m[1]!)));
  return [...used].filter((name) => {
    if (exported.has(name)) return false;
    const base = /^(.*)_(bucket|sum|count)$/.exec(name)?.[1];
    return !(base && ['histogram', 'summary'].includes(exported.get(base) ?? ''));
  });
}

describe('Prometheus alert rules', () => {
  beforeAll(() => expect(existsSync(PROMTOOL)).toBe(true)); // apt-get install prometheus (.ci/run does)

  it('pass promtool check rules', () => {
    const check = promtool('check', 'rules', RULES);
    expect(check).toEqual({ status: 0, output: expect.stringContaining(`SUCCESS: ${rules.length} rules found`) });
    expect(rules.length).toBeGreaterThanOrEqual(12);
  });

  it('pass their promtool unit tests, which cover every alert firing and quiet', () => {
    const run = promtool('test', 'rules', RULE_TESTS);
    expect(run).toEqual({ status: 0, output: expect.stringContaining('SUCCESS') });
    const cases = (parse(readFileSync(RULE_TESTS, 'utf8')) as { tests: RuleTest[] }).tests.flatMap((t) => t.alert_rule_test ?? []);
    for (const { alert } of rules) {
      expect({ alert, fires: cases.some((c) => c.alertname === alert && c.exp_alerts.length > 0) }).toEqual({ alert, fires: true });
      expect({ alert, quiet: cases.some((c) => c.alertname === alert && c.exp_alerts.length === 0) }).toEqual({ alert, quiet: true });
    }
  });

  it('fails both checks on a broken rule or a wrong expectation (the checks can fail)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mg-rules-'));
    writeFileSync(path.join(dir, 'bad.yaml'), 'groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(rate(modelgate_http_requests_in_flight[5m]) > \n');
    expect(promtool('check', 'rules', path.join(dir, 'bad.yaml')).status).not.toBe(0);
    copyFileSync(RULES, path.join(dir, 'alerts.yaml'));
    // The database-down test, expecting the healthy replica instead of the failed one.
    const wrong = readFileSync(RULE_TESTS, 'utf8').replace('exp_labels: { severity: critical, job: mg, instance: "a:4000" }', 'exp_labels: { severity: critical, job: mg, instance: "b:4000" }');
    expect(wrong).not.toBe(readFileSync(RULE_TESTS, 'utf8'));
    writeFileSync(path.join(dir, 'alerts.test.yaml'), wrong);
    const run = promtool('test', 'rules', path.join(dir, 'alerts.test.yaml'));
    expect(run.status).not.toBe(0);
    expect(run.output).toContain('ModelgateDatabaseDown');
  });
});

describe('Grafana dashboard', () => {
  it('is one dashboard with a Prometheus datasource variable and a panel for each thing operators watch', () => {
    const titles = dashboard.panels.filter((p) => p.type !== 'row').map((p) => p.title.toLowerCase());
    for (const topic of ['requests', 'errors by code', 'latency', 'queue depth', 'batch size', 'limit refusals', 'spend', 'wal lag', 'stale serving', 'webhook deliveries']) {
      expect({ topic, panel: titles.some((t) => t.includes(topic)) }).toEqual({ topic, panel: true });
    }
    expect(dashboardExpressions().length).toBeGreaterThan(30);
  });
});

describe('dashboard and alerts against a real /metrics scrape of the production build', () => {
  let gw: ProductionGateway;
  let exported: Map<string, string>;

  beforeAll(async () => {
    gw = await ProductionGateway.start({ ...productionEnv(), WEBHOOK_SECRET_ENCRYPTION_KEY: randomBytes(32).toString('hex') });
    const key = await createTestKey({ scopes: ['inference'] });
    const zeros = Buffer.alloc(784 * 4).toString('base64');
    const ok = await gw.graphql('mutation($input: InferInput!) { infer(input: $input) { modelName } }', { input: { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], dataBase64: zeros }] } }, authHeaders(key.key));
    expect(ok.body?.errors).toBeUndefined();
    const scrape = await gw.request('GET', '/metrics');
    expect(scrape.status).toBe(200);
    exported = families(scrape.text);
  });
  afterAll(async () => {
    await gw?.stop();
    await closeTestKeys();
  });

  it('exports every metric the dashboard queries', () => {
    expect(exported.size).toBeGreaterThan(30);
    expect(missingMetrics(dashboardExpressions(), exported)).toEqual([]);
  });

  it('exports every metric the alert rules query', () => {
    expect(missingMetrics(rules.map((r) => r.expr), exported)).toEqual([]);
  });

  it('reports a metric the gateway does not export (the check can fail)', () => {
    expect(missingMetrics(['sum(rate(modelgate_requests_total[5m]))', 'rate(modelgate_http_request_duration_seconds_bucket[5m])', 'modelgate_usage_wal_lag_seconds_count'], exported)).toEqual([
      'modelgate_requests_total',
      'modelgate_usage_wal_lag_seconds_count',
    ]);
  });
});

describe('ServiceMonitor', () => {
  it("selects the gateway Service and scrapes its named port's /metrics", () => {
    const [monitor] = parseAllDocuments(readFileSync(path.join(ROOT, 'deploy', 'kubernetes', 'overlays', 'monitoring', 'servicemonitor.yaml'), 'utf8')).map((d) => d.toJS() as Record<string, any>); // eslint-disable-line @typescript-eslint/no-explicit-any -- a CRD kubernetes-models has no schema for
    const services = parseAllDocuments(readFileSync(path.join(ROOT, 'deploy', 'kubernetes', 'base', 'modelgate.yaml'), 'utf8'))
      .map((d) => d.toJS() as { kind: string; metadata: { labels?: Record<string, string> }; spec: { ports: { name: string }[] } })
      .filter((d) => d.kind === 'Service');
    expect(monitor).toMatchObject({ apiVersion: 'monitoring.coreos.com/v1', kind: 'ServiceMonitor' });
    const selector = monitor!['spec']['selector']['matchLabels'] as Record<string, string>;
    const selected = services.filter((s) => Object.entries(selector).every(([k, v]) => s.metadata.labels?.[k] === v));
    expect(selected).toHaveLength(1);
    const endpoints = monitor!['spec']['endpoints'] as { port: string; path: string }[];
    expect(endpoints.length).toBeGreaterThan(0);
    for (const e of endpoints) {
      expect(selected[0]!.spec.ports.map((p) => p.name)).toContain(e.port);
      expect(e.path).toBe('/metrics');
    }
  });
});
