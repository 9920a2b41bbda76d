// Builds the web console (src/console/web) into dist/console-web with esbuild:
// one JS bundle, one CSS file, index.html. Fails when the gzipped first load
// exceeds the stated budget, so the budget cannot drift unnoticed.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BUDGET_GZIP_BYTES = 100 * 1024;
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const src = path.join(root, 'src', 'console', 'web');
const out = path.join(root, 'dist', 'console-web');

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { console: path.join(src, 'main.tsx') },
  bundle: true,
  minify: true,
  format: 'esm',
  target: ['es2022'],
  outdir: out,
  jsx: 'automatic',
  jsxImportSource: 'preact',
  loader: { '.css': 'css' },
  legalComments: 'none',
  logLevel: 'warning',
});
copyFileSync(path.join(src, 'index.html'), path.join(out, 'index.html'));

const files = ['index.html', 'console.js', 'console.css'];
const sizes = Object.fromEntries(files.map((f) => {
  const body = readFileSync(path.join(out, f));
  return [f, { bytes: body.length, gzipBytes: gzipSync(body, { level: 9 }).length }];
}));
const total = Object.values(sizes).reduce((sum, s) => sum + s.gzipBytes, 0);
writeFileSync(path.join(out, 'size.json'), JSON.stringify({ budgetGzipBytes: BUDGET_GZIP_BYTES, firstLoadGzipBytes: total, files: sizes }, null, 2));
if (total > BUDGET_GZIP_BYTES) {
  console.error(`console bundle ${total} B gzipped exceeds the ${BUDGET_GZIP_BYTES} B budget`);
  process.exit(1);
}
