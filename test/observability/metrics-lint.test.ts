/**
 * /metrics and the logs of the production build, checked by the tools that
 * consume them: `promtool check metrics` (Debian's prometheus package, which
 * .ci/run installs; this test requires it rather than skipping) and a strict
 * reading of every log line (no key twice).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProductionGateway, REPO_ROOT, STARTUP_TEST_TIMEOUT_MS } from '../harness';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

const PROMTOOL = '/usr/bin/promtool';
const zeros = Buffer.alloc(784 * 4).toString('base64');
const INFER = 'mutation($input: InferInput!) { infer(input: $input) { modelName } }';

describe('observability output of the production build', () => {
  let gw: ProductionGateway;
  let key: string;

  beforeAll(async () => {
    gw = await ProductionGateway.start({
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      LOG_PRETTY: 'false',
      LOG_LEVEL: 'debug',
      MODEL_REPOSITORY: path.join(REPO_ROOT, 'models'),
      DATA_DIR: mkdtempSync(path.join(os.tmpdir(), 'mg-observability-')),
    });
    key = /^ {3}(mg_live_[0-9A-Za-z]{49})$/m.exec(gw.output)?.[1] ?? '';
    expect(key).not.toBe('');
    const auth = { authorization: `Bearer ${key}` };
    // One success and one refusal, so the labelled counters and histograms have series.
    const ok = await gw.graphql(INFER, { input: { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 1, 28, 28], dataBase64: zeros }] } }, auth);
    expect(ok.body?.errors).toBeUndefined();
    const bad = await gw.graphql(INFER, { input: { model: 'fashion-cnn', inputs: [{ name: 'image', datatype: 'FP32', shape: [1, 28, 28], dataBase64: zeros }] } }, auth);
    expect(bad.body?.errors?.[0]?.extensions?.['code']).toBe('BAD_USER_INPUT');
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('serves metrics that pass promtool check metrics', async () => {
    expect(existsSync(PROMTOOL)).toBe(true); // apt-get install prometheus (.ci/run does)
    const scrape = await gw.request('GET', '/metrics');
    expect(scrape.status).toBe(200);
    expect(scrape.text).toContain('modelgate_inference_request_success_total{model="fashion-cnn",version="1"} 1');
    expect(scrape.text).toMatch(/modelgate_inference_request_failure_total\{model="fashion-cnn",version="1",reason="BAD_INPUT"\} 1/);
    const lint = spawnSync(PROMTOOL, ['check', 'metrics'], { input: scrape.text, encoding: 'utf8' });
    expect({ status: lint.status, problems: `${lint.stdout}${lint.stderr}`.trim() }).toEqual({ status: 0, problems: '' });
  });

  it('follows one prefix policy: modelgate_* besides the process defaults, no Triton look-alikes', async () => {
    const scrape = await gw.request('GET', '/metrics');
    const families = [...scrape.text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string);
    expect(families.length).toBeGreaterThan(20);
    expect(families.filter((f) => !/^(modelgate_|process_|nodejs_)/.test(f))).toEqual([]);
  });

  it('writes no key twice in any log line', async () => {
    await gw.request('GET', '/readyz');
    const lines = gw.output.split('\n').filter((l) => l.startsWith('{'));
    expect(lines.length).toBeGreaterThan(5);
    const duplicated = lines.filter((line) => {
      const top = Object.keys(JSON.parse(line) as object);
      // JSON.parse keeps the last of repeated keys: a line with repeats has more "key": pairs at top level than keys.
      const pairs = [...line.matchAll(/[{,]"([^"]+)":/g)].map((m) => m[1] as string).filter((k) => top.includes(k));
      return pairs.length !== new Set(pairs).size;
    });
    expect(duplicated).toEqual([]);
  });
});
