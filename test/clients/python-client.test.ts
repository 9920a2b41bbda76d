/** clients/python's unittest suite, run with Debian's /usr/bin/python3 against a live production-build gateway. */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT, STARTUP_TEST_TIMEOUT_MS } from '../harness';
import { startLiveGateway, type LiveGateway } from './live-gateway';

// Gateway starts wait up to READY_TIMEOUT_MS (a first start on a busy machine).
jest.setTimeout(STARTUP_TEST_TIMEOUT_MS);

describe('Python client (clients/python)', () => {
  let live: LiveGateway;
  beforeAll(async () => {
    live = await startLiveGateway();
  });
  afterAll(async () => {
    await live?.gw.stop();
  });

  it('passes its unittest suite against the gateway', async () => {
    const run = await new Promise<{ code: number | null; output: string }>((resolve) => {
      const child = spawn('/usr/bin/python3', ['-m', 'unittest', 'discover', '-v', '-s', path.join('clients', 'python', 'tests')], {
        cwd: REPO_ROOT,
        env: {
          PATH: process.env['PATH'] ?? '',
          MODELGATE_URL: live.gw.url,
          MODELGATE_API_KEY: live.adminKey,
          MODELGATE_LIMITED_KEY: live.limitedKey,
          MODELGATE_TEST_TENANTS: live.tenants.join(','),
        },
      });
      let output = '';
      child.stdout.on('data', (d: Buffer) => (output += d.toString()));
      child.stderr.on('data', (d: Buffer) => (output += d.toString()));
      child.on('exit', (code) => resolve({ code, output }));
    });
    expect(run.output).not.toMatch(/skipped/);
    expect(run.output).toMatch(/^Ran 11 tests/m);
    expect({ code: run.code, output: run.output }).toEqual({ code: 0, output: expect.stringMatching(/^OK$/m) });
  });
});
