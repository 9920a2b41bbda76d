/**
 * clients/typescript installs the way apps install libraries (issue #27 item
 * 9): `npm pack` builds it (prepack) into a tarball, which installs offline
 * into a fresh project (its one dependency, a types-only package, and that
 * package's graphql peer, packed from this checkout's node_modules, since no
 * registry is reachable); the app then imports it as an ES module and
 * requires it from CommonJS, getting the same classes, and TypeScript resolves
 * its types both ways (and reports a misuse, so the types are not `any`).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { REPO_ROOT } from '../harness';

const CLIENT = path.join(REPO_ROOT, 'clients', 'typescript');
const TSC = path.join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
const NPM_ENV = { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' };

function npm(args: string[], cwd: string): string {
  return execFileSync('npm', args, { cwd, env: NPM_ENV, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Packs a directory into `dest`, returning the tarball's path. */
function pack(dir: string, dest: string, ignoreScripts = false): string {
  const out = JSON.parse(npm(['pack', '--json', '--pack-destination', dest, ...(ignoreScripts ? ['--ignore-scripts'] : []), dir], REPO_ROOT)) as { filename: string; files: { path: string }[] }[];
  return path.join(dest, out[0]!.filename);
}

describe('TypeScript client package (npm pack, install from the tarball)', () => {
  let app: string;
  let packed: { filename: string; files: { path: string }[] };

  beforeAll(() => {
    const work = mkdtempSync(path.join(os.tmpdir(), 'mg-ts-client-'));
    const tarballs = path.join(work, 'tarballs');
    mkdirSync(tarballs);
    // The client's own pack runs its prepack build; the dependencies are packed as they are installed here.
    packed = (JSON.parse(npm(['pack', '--json', '--pack-destination', tarballs], CLIENT)) as (typeof packed)[])[0]!;
    const deps = ['@graphql-typed-document-node/core', 'graphql'].map((name) => pack(path.join(REPO_ROOT, 'node_modules', name), tarballs, true));
    app = path.join(work, 'app');
    mkdirSync(app);
    writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'mg-client-app', version: '1.0.0', private: true }));
    npm(['install', '--offline', '--no-package-lock', ...deps, path.join(tarballs, packed.filename)], app);
  }, 240_000);

  it('packs the built CommonJS and ES module entry points with their types (prepack built them)', () => {
    const files = packed.files.map((f) => f.path).sort();
    expect(files).toEqual(
      expect.arrayContaining(['package.json', 'README.md', 'dist/cjs/index.js', 'dist/cjs/index.d.ts', 'dist/cjs/generated/graphql.js', 'dist/esm/index.mjs', 'dist/esm/index.d.mts']),
    );
    expect(files.filter((f) => f.startsWith('src/') || f.startsWith('scripts/'))).toEqual([]);
    expect(readdirSync(path.join(app, 'node_modules', '@modelgate', 'client', 'dist')).sort()).toEqual(['cjs', 'esm']);
  });

  it('imports from an ES module and requires from CommonJS, the same objects both ways, and they work', () => {
    writeFileSync(
      path.join(app, 'esm.mjs'),
      `import { createRequire } from 'node:module';
import { ModelgateClient, ModelgateError, ERROR_CODES, toTensor, fromTensor } from '@modelgate/client';
const cjs = createRequire(import.meta.url)('@modelgate/client');
const t = toTensor('image', new Float32Array([0.5, -1, 2]), [1, 3]);
const back = fromTensor({ name: 'image', datatype: 'FP32', shape: [1, 3], dataBase64: t.dataBase64 });
const client = new ModelgateClient({ url: 'http://127.0.0.1:1', apiKey: 'mg_test_x' });
console.log(JSON.stringify({ client: typeof client.infer, error: new ModelgateError('m', 'RATE_LIMITED', 429) instanceof Error, codes: ERROR_CODES.includes('UNAVAILABLE'), same: cjs.ModelgateClient === ModelgateClient && cjs.ModelgateError === ModelgateError, back: Array.from(back), from: import.meta.resolve('@modelgate/client') }));
`,
    );
    writeFileSync(
      path.join(app, 'cjs.cjs'),
      `const { ModelgateClient, toTensor } = require('@modelgate/client');
console.log(JSON.stringify({ client: typeof new ModelgateClient({ url: 'http://127.0.0.1:1' }).infer, tensor: toTensor('x', new Int32Array([7]), [1]).dataBase64, from: require.resolve('@modelgate/client') }));
`,
    );
    const esm = JSON.parse(execFileSync(process.execPath, ['esm.mjs'], { cwd: app, encoding: 'utf8' })) as Record<string, unknown>;
    expect(esm).toEqual({ client: 'function', error: true, codes: true, same: true, back: [0.5, -1, 2], from: expect.stringMatching(/\/node_modules\/@modelgate\/client\/dist\/esm\/index\.mjs$/) });
    const cjs = JSON.parse(execFileSync(process.execPath, ['cjs.cjs'], { cwd: app, encoding: 'utf8' })) as Record<string, unknown>;
    expect(cjs).toEqual({ client: 'function', tensor: Buffer.from(new Int32Array([7]).buffer).toString('base64'), from: expect.stringMatching(/\/node_modules\/@modelgate\/client\/dist\/cjs\/index\.js$/) });
  });

  it('gives TypeScript its types from both entry points, and they catch a misuse', () => {
    const typeRoots = path.join(REPO_ROOT, 'node_modules', '@types');
    const tsc = (...files: string[]) =>
      spawnSync(process.execPath, [TSC, '--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--lib', 'es2022,dom', '--typeRoots', typeRoots, '--types', 'node', ...files], { cwd: app, encoding: 'utf8' });
    const good = `import { ModelgateClient, ModelgateError, type Model } from '@modelgate/client';
const client = new ModelgateClient({ url: 'http://127.0.0.1:1' });
const models: Promise<Model[]> = client.models();
const err: ModelgateError = new ModelgateError('m', 'TIMEOUT', 504);
export { models, err };
`;
    writeFileSync(path.join(app, 'ok.mts'), good);
    writeFileSync(path.join(app, 'ok.cts'), good);
    // ok.mts resolves the "import" condition (dist/esm/index.d.mts), ok.cts the "require" one (dist/cjs/index.d.ts).
    expect(pick(tsc('ok.mts', 'ok.cts'))).toEqual({ status: 0, out: '' });
    writeFileSync(path.join(app, 'bad.mts'), `import { ModelgateClient } from '@modelgate/client';\nconst n: number = new ModelgateClient({ url: 'http://x' }).models();\nexport { n };\n`);
    const bad = pick(tsc('bad.mts'));
    expect(bad.status).not.toBe(0);
    expect(bad.out).toMatch(/bad\.mts\(2,7\): error TS2322: Type 'Promise<.*>' is not assignable to type 'number'/);
  });
});

function pick(r: ReturnType<typeof spawnSync>): { status: number | null; out: string } {
  return { status: r.status, out: `${String(r.stdout)}${String(r.stderr)}`.trim() };
}
