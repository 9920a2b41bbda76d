#!/usr/bin/env node
'use strict';
/*
 * CPU timing for the ONNX models in models/<name>/1/model.onnx with
 * onnxruntime-node (CPU execution provider, 2 intra-op threads).
 *
 *   node models/measure.js                  # all models: time, check accuracy, write cards
 *   node models/measure.js --only fashion-cnn
 *   node models/measure.js --quick          # fewer rounds (smoke run)
 *   node models/measure.js --cards-only     # only re-render the README cards
 *
 * Writes card.cpu_ms_per_image_batch1 / _batch64 and `cost` (batch-64 time
 * per image relative to fashion-cnn) into models/<name>/config.json, records
 * the onnxruntime accuracy on the full 10k test set in models/<name>/training.json,
 * and renders models/<name>/README.md and the table in models/README.md.
 */
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const os = require('os');

const MODELS_DIR = __dirname;
const ROOT = path.dirname(MODELS_DIR);
const FIXTURE = path.join(ROOT, 'test', 'fixtures', 'fashion-mnist-test-1000.bin');
const TEST_IMAGES_GZ = path.join(process.env.FASHION_MNIST_DIR || '/usr/share/datasets/fashion-mnist', 't10k-images-idx3-ubyte.gz');
const TEST_LABELS_GZ = path.join(process.env.FASHION_MNIST_DIR || '/usr/share/datasets/fashion-mnist', 't10k-labels-idx1-ubyte.gz');
const THREADS = 2;
const BASELINE = 'fashion-cnn';

function parseArgs(argv) {
  const args = { only: [], quick: false, cardsOnly: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--only') args.only.push(...String(argv[++i] || '').split(',').filter(Boolean));
    else if (a === '--quick') args.quick = true;
    else if (a === '--cards-only') args.cardsOnly = true;
    else if (a === '-h' || a === '--help') {
      console.log(fs.readFileSync(__filename, 'utf8').split('*/')[0]);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

function listModels() {
  return fs.readdirSync(MODELS_DIR)
    .filter((d) => fs.existsSync(path.join(MODELS_DIR, d, 'config.json')))
    .sort((a, b) => (a === BASELINE ? -1 : b === BASELINE ? 1 : a.localeCompare(b)));
}

const readJson = (p) => JSON.parse(fs.readFileSync(p, 'utf8'));
const writeJson = (p, v) => fs.writeFileSync(p, JSON.stringify(v, null, 2) + '\n');
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };

function loadFixtureImages() {
  const buf = fs.readFileSync(FIXTURE);
  if (buf.length !== 1000 * 784) throw new Error(`fixture ${FIXTURE} is missing or corrupt: ${buf.length} bytes, expected 784000`);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
}

function loadTestSet() {
  if (!fs.existsSync(TEST_IMAGES_GZ)) return null;
  const img = zlib.gunzipSync(fs.readFileSync(TEST_IMAGES_GZ));
  const lab = zlib.gunzipSync(fs.readFileSync(TEST_LABELS_GZ));
  if (img.readUInt32BE(0) !== 0x803 || lab.readUInt32BE(0) !== 0x801) throw new Error('bad idx magic in the Fashion-MNIST test files');
  const n = img.readUInt32BE(4);
  return { n, images: new Uint8Array(img.buffer, img.byteOffset + 16, n * 784), labels: new Uint8Array(lab.buffer, lab.byteOffset + 8, n) };
}

function toTensor(ort, u8, start, count) {
  const f = new Float32Array(count * 784);
  for (let i = 0; i < f.length; i++) f[i] = u8[start * 784 + i] / 255;
  return new ort.Tensor('float32', f, [count, 1, 28, 28]);
}

async function timeRuns(session, feeds, runs) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < runs; i++) await session.run(feeds);
  return Number(process.hrtime.bigint() - t0) / 1e6 / runs; // ms per run
}

async function createSession(ort, name) {
  return ort.InferenceSession.create(path.join(MODELS_DIR, name, '1', 'model.onnx'), {
    executionProviders: ['cpu'], intraOpNumThreads: THREADS, interOpNumThreads: 1,
    graphOptimizationLevel: 'all', executionMode: 'sequential',
  });
}

async function accuracy(ort, session, testSet) {
  let correct = 0;
  for (let s = 0; s < testSet.n; s += 500) {
    const n = Math.min(500, testSet.n - s);
    const out = await session.run({ image: toTensor(ort, testSet.images, s, n) });
    const p = out.probabilities.data;
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let k = 1; k < 10; k++) if (p[i * 10 + k] > p[i * 10 + best]) best = k;
      if (best === testSet.labels[s + i]) correct++;
    }
  }
  return correct / testSet.n;
}

/**
 * Times all models round-robin (each round times every model once), so load
 * changes on a shared machine hit all models alike; reports per-model medians.
 * Only one session is alive at a time: idle sessions' intra-op threads spin
 * for a while after each run and would steal the 2 cores from the one timed.
 */
async function measureModels(ort, names, images, testSet, quick) {
  const rounds = quick ? 3 : 15;
  const runs1 = quick ? 50 : 300;
  const runs64 = quick ? 5 : 30;
  const feeds1 = { image: toTensor(ort, images, 0, 1) };
  const feeds64 = { image: toTensor(ort, images, 0, 64) };
  const res = {};
  for (const n of names) res[n] = { b1_rounds: [], b64_rounds: [] };
  for (let r = 0; r < rounds; r++) {
    const parts = [];
    for (const n of names) {
      const session = await createSession(ort, n);
      await timeRuns(session, feeds1, runs1 / 3); // warm-up
      await timeRuns(session, feeds64, Math.max(2, runs64 / 5));
      const b1 = await timeRuns(session, feeds1, runs1);
      const b64 = (await timeRuns(session, feeds64, runs64)) / 64;
      res[n].b1_rounds.push(b1);
      res[n].b64_rounds.push(b64);
      parts.push(`${n} ${b1.toFixed(4)}/${b64.toFixed(4)}`);
      if (r === rounds - 1 && testSet) res[n].accuracy = await accuracy(ort, session, testSet);
      await session.release();
    }
    console.log(`  round ${String(r + 1).padStart(2)}/${rounds} (ms/img batch1/batch64): ${parts.join('  ')}`);
  }
  for (const n of names) {
    res[n].batch1 = median(res[n].b1_rounds);
    res[n].batch64 = median(res[n].b64_rounds);
  }
  return res;
}

// ---------------------------------------------------------------- cards
const fmtInt = (n) => n.toLocaleString('en-US');
const pct = (x) => (x * 100).toFixed(2) + '%';

function renderCard(cfg, tr) {
  const c = cfg.card;
  const outs = cfg.outputs.map((o) => `\`${o.name}\` FP32 [batch, ${o.dims.join(', ')}]`).join(', ');
  const hist = (tr && tr.history) || [];
  const lines = [
    `# ${cfg.name}`,
    '',
    `${cfg.description}.`,
    '',
    '_Generated by `node models/measure.js` from `config.json` and `training.json`; edit those (or the scripts), not this file._',
    '',
    '| | |',
    '|---|---|',
    `| Test accuracy (full 10,000-image test set, PyTorch) | **${c.test_accuracy.toFixed(4)}** |`,
    tr && tr.onnxruntime_cpu && tr.onnxruntime_cpu.accuracy_full_10000 != null
      ? `| Test accuracy (same set, exported ONNX on onnxruntime-node CPU) | ${tr.onnxruntime_cpu.accuracy_full_10000.toFixed(4)} |` : null,
    tr && tr.test_accuracy_first_1000 != null ? `| Accuracy on the first 1,000 test images (the test fixture) | ${tr.test_accuracy_first_1000.toFixed(4)} |` : null,
    `| Target accuracy | ${c.target_accuracy} (${c.test_accuracy >= c.target_accuracy ? 'met' : 'NOT met'}) |`,
    `| Published reference | ${c.published_reference} |`,
    `| Parameters | ${fmtInt(c.parameters)} |`,
    `| FLOPs per image | ${(c.flops_per_image / 1e6).toFixed(2)} M (2 x MACs of Conv/Dense/LSTM/attention matmuls, counted with forward hooks; element-wise ops excluded) |`,
    `| CPU ms per image, batch 1 | ${c.cpu_ms_per_image_batch1} |`,
    `| CPU ms per image, batch 64 | ${c.cpu_ms_per_image_batch64} |`,
    `| Cost (batch-64 CPU time per image relative to fashion-cnn) | ${cfg.cost.toFixed(2)} |`,
    `| ONNX opset / file size | ${c.onnx_opset} / ${fmtInt(c.size_bytes)} bytes |`,
    '',
    '## Contract',
    '',
    `- Input \`image\`: FP32 [batch, 1, 28, 28], NCHW, grey, pixel / 255 (scale ${cfg.preprocessing.scale}), not inverted (Fashion-MNIST: light garment on black). Any mean/std normalisation happens inside the graph.`,
    `- Outputs: ${outs}. \`probabilities\` is softmax'ed inside the graph; class order: ${cfg.labels.map((l, i) => `${i} ${l}`).join(', ')}.`,
    '- Batch axis is dynamic on every input and output; the gateway batches up to `max_batch_size` = ' + cfg.max_batch_size + '.',
    '',
    '## Architecture',
    '',
    c.architecture,
    '',
    '## Training',
    '',
    c.training + '.',
    '',
  ];
  if (hist.length) {
    lines.push('| epoch | train loss | train acc | test acc | epoch s |', '|---:|---:|---:|---:|---:|');
    for (const h of hist) lines.push(`| ${h.epoch} | ${h.loss.toFixed(4)} | ${h.train_acc.toFixed(4)} | ${h.test_acc.toFixed(4)} | ${h.epoch_s.toFixed(0)} |`);
    lines.push('', 'Test accuracy per epoch is printed for monitoring only; the shipped weights are the final epoch\'s.', '');
  }
  lines.push(
    '## Timing',
    '',
    `onnxruntime-node ${tr && tr.onnxruntime_cpu ? tr.onnxruntime_cpu.version : ''}, CPU execution provider, ${THREADS} intra-op threads, graph optimisation "all"; ` +
      'median of 15 rounds, all models timed round-robin with a fresh session and warm-up each round and one session alive at a time (batch 1: 300 runs per round; batch 64: 30 runs per round, divided by 64). ' +
      (tr && tr.onnxruntime_cpu ? `Machine: ${tr.onnxruntime_cpu.cpu}, measured ${tr.onnxruntime_cpu.date}, ` : '') +
      'a shared 2-core VM, so expect some noise.',
    '',
    '## CUDA execution provider',
    '',
    c.cuda_ops_check,
    '',
  );
  if (tr && tr.onnx_op_counts) {
    lines.push('Op counts in the exported graph: ' + Object.entries(tr.onnx_op_counts).sort().map(([k, v]) => `${k} x${v}`).join(', ') + '.', '');
  }
  if (c.explanations) {
    // Written by `npm run bench:explain` (bench/explain.mjs), which measures them through the gateway.
    const e = c.explanations;
    lines.push(
      '## Explanations',
      '',
      `Saliency maps through \`classify(explain: …)\` and \`POST /v2/models/${cfg.name}/explain\`. Faithfulness by the deletion metric (Petsiuk et al. 2018): the top-k % most salient pixels set to 0 for k = 0..100, area under the explained class's probability; lower is better, against a seeded random pixel order. ${e.images} test images, default parameters, measured ${e.date}.`,
      '',
      '| method | deletion AUC | random order AUC | ratio | images where saliency < random | items per explanation |',
      '|---|---:|---:|---:|---:|---:|',
      ...e.rows.map((r) => `| ${r.method} | ${r.auc.toFixed(3)} | ${r.aucRandom.toFixed(3)} | ${(r.auc / r.aucRandom).toFixed(2)} | ${r.wins}/${e.images} | ${r.items} |`),
      '',
      '```sh',
      'npm run bench:explain   # BENCH_WRITE_CARDS=1 writes this table into config.json and re-renders the cards',
      '```',
      '',
    );
  }
  lines.push('## Reproduce', '', '```sh', `/usr/bin/python3 models/train.py --only ${cfg.name}   # trains, exports, then runs measure.js`, `node models/measure.js --only ${cfg.name}`, '```', '');
  return lines.filter((l) => l !== null).join('\n');
}

function renderTable(names) {
  const rows = [
    '| model | test acc | target | published reference | params | MFLOPs/img | ONNX size | CPU ms/img b1 | CPU ms/img b64 | cost |',
    '|---|---:|---:|---|---:|---:|---:|---:|---:|---:|',
  ];
  for (const n of names) {
    const cfg = readJson(path.join(MODELS_DIR, n, 'config.json'));
    const c = cfg.card;
    rows.push(`| [${n}](${n}/README.md) | ${c.test_accuracy.toFixed(4)} | ${c.target_accuracy} ${c.test_accuracy >= c.target_accuracy ? '(met)' : '(**missed**)'} | ${c.published_reference} | ${fmtInt(c.parameters)} | ${(c.flops_per_image / 1e6).toFixed(2)} | ${(c.size_bytes / 1024).toFixed(0)} KiB | ${c.cpu_ms_per_image_batch1} | ${c.cpu_ms_per_image_batch64} | ${cfg.cost.toFixed(2)} |`);
  }
  return rows.join('\n');
}

function writeCards(names) {
  for (const n of names) {
    const cfg = readJson(path.join(MODELS_DIR, n, 'config.json'));
    const trPath = path.join(MODELS_DIR, n, 'training.json');
    const tr = fs.existsSync(trPath) ? readJson(trPath) : null;
    fs.writeFileSync(path.join(MODELS_DIR, n, 'README.md'), renderCard(cfg, tr));
  }
  const readme = path.join(MODELS_DIR, 'README.md');
  if (fs.existsSync(readme)) {
    const text = fs.readFileSync(readme, 'utf8');
    const re = /(<!-- models-table:start -->)[\s\S]*?(<!-- models-table:end -->)/;
    if (re.test(text)) fs.writeFileSync(readme, text.replace(re, (_m, a, b) => `${a}\n${renderTable(listModels())}\n${b}`));
  }
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const all = listModels();
  const names = args.only.length ? args.only : all;
  for (const n of names) if (!all.includes(n)) throw new Error(`no models/${n}/config.json`);
  if (args.cardsOnly) { writeCards(names); console.log(`cards written for ${names.join(', ')}`); return; }

  let ort;
  try { ort = require('onnxruntime-node'); } catch (e) {
    throw new Error(`cannot load onnxruntime-node (run npm install in ${ROOT}): ${e.message}`);
  }
  const ortVersion = require('onnxruntime-node/package.json').version;
  const images = loadFixtureImages();
  const testSet = loadTestSet();
  if (!testSet) console.log(`note: ${TEST_IMAGES_GZ} not found; skipping the full-test-set accuracy check`);
  console.log(`onnxruntime-node ${ortVersion}, CPU EP, ${THREADS} intra-op threads, ${os.cpus()[0].model}`);

  // cost is relative to the baseline's batch-64 time: always time the baseline alongside
  const timed = names.includes(BASELINE) ? names : [BASELINE, ...names];
  console.log(`timing ${timed.join(', ')} round-robin ...`);
  const results = await measureModels(ort, timed, images, testSet, args.quick);
  const base = results[BASELINE];
  const round = (x, d) => Number(x.toPrecision(3)) === 0 ? 0 : Number(x.toFixed(d));
  const summary = [];
  for (const [n, r] of Object.entries(results)) {
    const cfgPath = path.join(MODELS_DIR, n, 'config.json');
    const cfg = readJson(cfgPath);
    cfg.card.cpu_ms_per_image_batch1 = round(r.batch1, 4);
    cfg.card.cpu_ms_per_image_batch64 = round(r.batch64, 4);
    cfg.cost = n === BASELINE ? 1.0 : Math.max(0.01, Number((r.batch64 / base.batch64).toFixed(2)));
    writeJson(cfgPath, cfg);
    const trPath = path.join(MODELS_DIR, n, 'training.json');
    if (fs.existsSync(trPath)) {
      const tr = readJson(trPath);
      tr.onnxruntime_cpu = {
        version: ortVersion, threads: THREADS, cpu: os.cpus()[0].model, date: new Date().toISOString().slice(0, 10),
        ms_per_image_batch1_rounds: r.b1_rounds.map((x) => round(x, 5)), ms_per_image_batch64_rounds: r.b64_rounds.map((x) => round(x, 5)),
        accuracy_full_10000: r.accuracy ?? null,
      };
      fs.writeFileSync(trPath, JSON.stringify(tr, null, 1) + '\n');
    }
    summary.push({ n, r, cfg });
  }
  writeCards(all);
  console.log('\nmodel               b1 ms/img  b64 ms/img   cost  ORT acc(10k)  PyTorch acc');
  for (const { n, r, cfg } of summary) {
    const ok = r.accuracy == null ? '' : Math.abs(r.accuracy - cfg.card.test_accuracy) <= 0.0011 ? '' : '  <-- differs from PyTorch!';
    console.log(`${n.padEnd(18)} ${r.batch1.toFixed(4).padStart(10)} ${r.batch64.toFixed(4).padStart(11)} ${cfg.cost.toFixed(2).padStart(6)}  ${r.accuracy == null ? '      n/a' : r.accuracy.toFixed(4).padStart(12)}  ${cfg.card.test_accuracy.toFixed(4).padStart(11)}${ok}`);
  }
}

main().catch((e) => { console.error(`error: ${e.message}`); process.exit(1); });
