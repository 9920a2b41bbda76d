/**
 * The import-boundary lint (issue #22): .dependency-cruiser.cjs, layers from
 * scripts/layers.cjs. It must pass on src/ and fail on a fixture that breaks
 * each rule once (ground -> domain, core -> door, a circle).
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../..');
const CLI = path.join(ROOT, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs');
const CONFIG = path.join(ROOT, '.dependency-cruiser.cjs');

interface Violation {
  rule: { name: string };
  from: string;
  to: string;
}

function depcruise(cwd: string, outputType: 'json' | 'err') {
  return spawnSync(process.execPath, [CLI, '--config', CONFIG, '--output-type', outputType, 'src'], { cwd, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
}

/** The violations (from the JSON report) and the exit status of the command `npm run lint:boundaries` runs. */
function cruise(cwd: string): { status: number | null; violations: Violation[]; modules: number } {
  const report = JSON.parse(depcruise(cwd, 'json').stdout) as { summary: { violations: Violation[]; totalCruised: number } };
  return { status: depcruise(cwd, 'err').status, violations: report.summary.violations, modules: report.summary.totalCruised };
}

describe('import boundaries', () => {
  it('fails on a fixture with one ground -> domain import, one core -> door import and one circle', () => {
    const result = cruise(path.join(__dirname, 'fixtures/boundaries'));
    const found = result.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`).sort();
    expect(found).toEqual([
      'core-imports-no-higher-layer: src/inference/plan.ts -> src/server/door.ts',
      'ground-imports-no-higher-layer: src/errors/index.ts -> src/inference/plan.ts',
      'no-circular: src/health/a.ts -> src/health/b.ts',
    ]);
    // The ground import of src/ids from a domain is allowed, so 6 modules and 3 violations, not 4.
    expect(result.modules).toBe(6);
    expect(result.status).not.toBe(0);
  });

  it('passes on src/', () => {
    const result = cruise(ROOT);
    expect(result.violations).toEqual([]);
    expect(result.modules).toBeGreaterThan(100);
    expect(result.status).toBe(0);
  });
});
