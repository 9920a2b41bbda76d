// Counts the shape of src/ from its imports (issue #22): upward folder imports
// (a lower layer importing a higher one, layers from scripts/layers.cjs), file
// circles, folder knots, functions over 80 lines and files over 500 lines.
// Usage: node scripts/import-graph.mjs [--list] [root]   (root defaults to cwd)
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const ts = require('typescript');
const args = process.argv.slice(2);
const list = args.includes('--list');
const root = path.resolve(args.find((a) => !a.startsWith('--')) ?? '.');
const { layerOf, folderOf } = require(path.join(root, 'scripts/layers.cjs'));
const src = path.join(root, 'src');
const IGNORED = ['db/generated/'];
const FUNCTION_LINES = 80;
const FILE_LINES = 500;

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return walk(full);
    return /\.tsx?$/.test(entry.name) && !/\.(test|d)\.tsx?$/.test(entry.name) ? [full] : [];
  });
}

const files = walk(src)
  .map((f) => path.relative(src, f).split(path.sep).join('/'))
  .filter((f) => !IGNORED.some((prefix) => f.startsWith(prefix)));
const known = new Set(files);

function resolve(from, specifier) {
  if (!specifier.startsWith('.')) return undefined;
  const base = path.posix.normalize(path.posix.join(path.posix.dirname(from), specifier)).replace(/\.js$/, '');
  for (const candidate of [`${base}.ts`, `${base}.tsx`, `${base}/index.ts`, `${base}/index.tsx`]) {
    if (known.has(candidate)) return candidate;
  }
  return undefined;
}

const edges = new Map(); // file -> Set(file)
const longFunctions = [];
const longFiles = [];
for (const file of files) {
  const text = fs.readFileSync(path.join(src, file), 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.ES2022, true, file.endsWith('.tsx') ? ts.ScriptKind.TSX : ts.ScriptKind.TS);
  const lines = source.getLineAndCharacterOfPosition(text.length).line + 1;
  if (lines > FILE_LINES) longFiles.push({ file, lines });
  const targets = new Set();
  const visit = (node) => {
    if ((ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) && node.moduleSpecifier && ts.isStringLiteral(node.moduleSpecifier)) {
      const target = resolve(file, node.moduleSpecifier.text);
      if (target) targets.add(target);
    }
    if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0] && ts.isStringLiteral(node.arguments[0])) {
      const target = resolve(file, node.arguments[0].text);
      if (target) targets.add(target);
    }
    if (ts.isFunctionLike(node) && 'body' in node && node.body) {
      const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
      const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
      const count = end - start + 1;
      if (count > FUNCTION_LINES) {
        const name = node.name && 'text' in node.name ? node.name.text : '(anonymous)';
        // A function left long says why in the comment right above it ("Why over 80 lines: …").
        const why = /why over 80 lines/i.test(text.slice(node.getFullStart(), node.getStart(source)));
        longFunctions.push({ file, line: start + 1, name, lines: count, why });
      }
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  targets.delete(file);
  edges.set(file, targets);
}

// Upward folder imports: the importing file's layer is below the imported file's layer.
const upward = [];
const folderEdges = new Map();
for (const [from, targets] of edges) {
  for (const to of targets) {
    const a = folderOf(from);
    const b = folderOf(to);
    if (a === b) continue;
    if (!folderEdges.has(a)) folderEdges.set(a, new Set());
    folderEdges.get(a).add(b);
    const la = layerOf(from);
    const lb = layerOf(to);
    if (la && lb && la.rank < lb.rank) upward.push({ from, to, pair: `${a} -> ${b}` });
  }
}

// Tarjan's strongly connected components.
function components(graph) {
  let index = 0;
  const stack = [];
  const state = new Map();
  const result = [];
  const strong = (v) => {
    state.set(v, { index, low: index, onStack: true });
    index += 1;
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!state.has(w)) {
        strong(w);
        state.get(v).low = Math.min(state.get(v).low, state.get(w).low);
      } else if (state.get(w).onStack) {
        state.get(v).low = Math.min(state.get(v).low, state.get(w).index);
      }
    }
    if (state.get(v).low === state.get(v).index) {
      const component = [];
      let w;
      do {
        w = stack.pop();
        state.get(w).onStack = false;
        component.push(w);
      } while (w !== v);
      if (component.length > 1) result.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!state.has(v)) strong(v);
  return result;
}

const circles = components(edges);
const knots = components(folderEdges);
const folders = new Set(files.map((f) => (f.includes('/') ? path.posix.dirname(f) : '.')));
const pairs = new Set(upward.map((u) => u.pair));

console.log(`source files:            ${files.length} (in ${folders.size} folders)`);
console.log(`upward folder imports:   ${upward.length} import lines over ${pairs.size} folder pairs`);
console.log(`file circles:            ${circles.length}`);
console.log(`folder knots:            ${knots.length}${knots.length ? ` (largest ties ${Math.max(...knots.map((k) => k.length))} top-level folders)` : ''}`);
console.log(`functions > ${FUNCTION_LINES} lines:     ${longFunctions.length} (${longFunctions.filter((f) => !f.why).length} without a "why over 80 lines" comment)`);
console.log(`files > ${FILE_LINES} lines:        ${longFiles.length}`);
if (list) {
  for (const u of upward) console.log(`  upward  ${u.from} -> ${u.to}`);
  for (const c of circles) console.log(`  circle  ${c.join(' <-> ')}`);
  for (const k of knots) console.log(`  knot    ${k.join(', ')}`);
  for (const f of longFunctions.sort((x, y) => y.lines - x.lines)) console.log(`  long fn ${f.file}:${f.line} ${f.name} (${f.lines})${f.why ? ' [why given]' : ''}`);
  for (const f of longFiles.sort((x, y) => y.lines - x.lines)) console.log(`  long    ${f.file} (${f.lines})`);
}
