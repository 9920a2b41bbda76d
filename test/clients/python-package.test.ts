/**
 * clients/python installs the way apps install libraries (issue #27 item 9):
 * pyproject.toml builds a wheel with the setuptools and wheel Debian ships
 * (`pip wheel --no-build-isolation --no-index`: PyPI is unreachable here),
 * which pip installs (`--no-index`) into a fresh virtualenv without the
 * system's site-packages (the client has no run-time dependencies). The
 * client's own unittest suite then runs from a directory without the source,
 * so it imports the installed copy, against a live production-build gateway.
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../harness';
import { startLiveGateway, type LiveGateway } from './live-gateway';

const PYTHON = '/usr/bin/python3';

describe('Python client package (wheel into a fresh virtualenv)', () => {
  let work: string;
  let venvPython: string;
  let wheel: string;

  beforeAll(async () => {
    work = mkdtempSync(path.join(os.tmpdir(), 'mg-py-client-'));
    // Built from a copy: setuptools writes build/ and *.egg-info beside the sources.
    cpSync(path.join(REPO_ROOT, 'clients', 'python'), path.join(work, 'src'), { recursive: true, filter: (p) => !p.includes('__pycache__') });
    execFileSync(PYTHON, ['-m', 'pip', 'wheel', '--no-build-isolation', '--no-deps', '--no-index', '-w', path.join(work, 'dist'), path.join(work, 'src')], { cwd: work, stdio: 'pipe' });
    const wheels = readdirSync(path.join(work, 'dist'));
    expect(wheels).toEqual([expect.stringMatching(/^modelgate_client-\d+\.\d+\.\d+-py3-none-any\.whl$/)]);
    wheel = path.join(work, 'dist', wheels[0]!);
    execFileSync(PYTHON, ['-m', 'venv', path.join(work, 'venv')], { stdio: 'pipe' });
    venvPython = path.join(work, 'venv', 'bin', 'python');
    execFileSync(venvPython, ['-m', 'pip', 'install', '--no-index', '--no-deps', wheel], { cwd: work, stdio: 'pipe' });
  }, 240_000);

  it('installs the wheel into the virtualenv with its metadata and type marker, isolated from the system packages', () => {
    const script = [
      'import json, sys, importlib.metadata as md, importlib.util',
      'import modelgate_client as m',
      'from modelgate_client import Tensor',
      't = Tensor.fp32([1, 3], [0.5, -1.0, 2.0])',
      'files = sorted(str(f) for f in md.files("modelgate-client") if not str(f).endswith(".pyc"))',
      'print(json.dumps({"file": m.__file__, "prefix": sys.prefix, "version": md.version("modelgate-client"), "module_version": m.__version__, "requires": md.requires("modelgate-client"), "files": files, "values": t.values(), "numpy": importlib.util.find_spec("numpy") is not None}))',
    ].join('\n');
    const out = JSON.parse(execFileSync(venvPython, ['-c', script], { cwd: work, encoding: 'utf8' })) as Record<string, unknown>;
    const prefix = path.join(work, 'venv');
    expect(out).toEqual({
      file: expect.stringMatching(new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/lib/python3\\.\\d+/site-packages/modelgate_client/__init__\\.py$`)),
      prefix,
      version: '0.1.0',
      module_version: '0.1.0',
      requires: [expect.stringMatching(/^numpy ; extra == ["']numpy["']$/)],
      files: expect.arrayContaining(['modelgate_client/__init__.py', 'modelgate_client/py.typed']),
      values: [0.5, -1, 2],
      // Debian's numpy is installed system-wide; the virtualenv does not see it.
      numpy: false,
    });
  });

  describe('against a live gateway', () => {
    let live: LiveGateway;
    beforeAll(async () => {
      live = await startLiveGateway();
    }, 120_000);
    afterAll(async () => {
      await live?.gw.stop();
    });

    it('passes the client unittest suite, importing the installed copy', async () => {
      // Only the tests, away from the sources: their sys.path entry (clients/python) then holds no
      // modelgate_client. The tree mirrors the repository's so they find test/fixtures as they expect.
      const mirror = path.join(work, 'mirror');
      const testsOnly = path.join(mirror, 'clients', 'python');
      cpSync(path.join(REPO_ROOT, 'clients', 'python', 'tests'), path.join(testsOnly, 'tests'), { recursive: true, filter: (p) => !p.includes('__pycache__') });
      symlinkSync(path.join(REPO_ROOT, 'test'), path.join(mirror, 'test'));
      const run = await new Promise<{ code: number | null; output: string }>((resolve) => {
        const child = spawn(venvPython, ['-c', `import modelgate_client, sys; print("client from", modelgate_client.__file__, file=sys.stderr); import unittest; unittest.main(module=None, argv=["x", "discover", "-v", "-s", "tests"])`], {
          cwd: testsOnly,
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
      expect(run.output).toContain(`client from ${path.join(work, 'venv')}`);
      expect(run.output).not.toMatch(/skipped/);
      expect(run.output).toMatch(/^Ran 11 tests/m);
      expect({ code: run.code, output: run.output }).toEqual({ code: 0, output: expect.stringMatching(/^OK$/m) });
    });
  });
});
