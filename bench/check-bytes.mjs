#!/usr/bin/env node
// The NaN/Infinity check on a request's FP32 tensor (src/inference/tensor.ts checkBytes), two builds
// side by side in alternating rounds: 64 items aligned and at an odd offset (where the OIP binary
// protocol puts a tensor after its JSON header), and one item. Microseconds per call, medians of 7.
//   npm run build:ts && node bench/check-bytes.mjs /path/to/base/dist   (e.g. a `git worktree` of the commit before, built)
import { createRequire } from 'node:module';
import path from 'node:path';
import { ROOT } from './lib.mjs';

const require = createRequire(import.meta.url);
const baseDist = process.argv[2];
if (!baseDist) {
  console.error('usage: node bench/check-bytes.mjs <base dist>');
  process.exit(2);
}
const builds = [
  ['base', require(path.resolve(baseDist, 'inference/tensor.js')).checkBytes],
  ['current', require(path.join(ROOT, 'dist/inference/tensor.js')).checkBytes],
];

function tensor(items, offset) {
  const floats = new Float32Array(items * 784);
  for (let i = 0; i < floats.length; i += 1) floats[i] = (i % 255) / 255;
  const backing = Buffer.alloc(floats.byteLength + offset);
  Buffer.from(floats.buffer).copy(backing, offset);
  return backing.subarray(offset);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log('| tensor | base µs/call | current µs/call | current ÷ base |\n|---|---|---|---|');
for (const [name, bytes] of [['64 items, aligned', tensor(64, 0)], ['64 items, offset 1', tensor(64, 1)], ['1 item, offset 3', tensor(1, 3)]]) {
  const calls = bytes.length > 10_000 ? 400 : 40_000;
  const times = new Map(builds.map(([label]) => [label, []]));
  for (const [, check] of builds) for (let i = 0; i < 200; i += 1) check('FP32', bytes); // warm-up (JIT)
  for (let round = 0; round < 7; round += 1) {
    for (const [label, check] of round % 2 ? [...builds].reverse() : builds) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < calls; i += 1) if (check('FP32', bytes) !== null) throw new Error(`${label} flagged a finite tensor`);
      times.get(label).push(Number(process.hrtime.bigint() - start) / calls / 1000);
    }
  }
  const [base, current] = [median(times.get('base')), median(times.get('current'))];
  console.log(`| ${name} | ${base.toFixed(2)} | ${current.toFixed(2)} | ${(current / base).toFixed(2)} |`);
}
