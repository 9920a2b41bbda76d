#!/usr/bin/env node
// Explanation benchmark (issue #15): for each shipped model and method, saliency
// maps for BENCH_IMAGES Fashion-MNIST test images from a production gateway
// (GraphQL classify(explain: …), embedded defaults), then the deletion metric
// of Petsiuk et al. 2018: delete (set to 0, the background) the top-k % most
// salient pixels, k = 0, 1, …, 100, record the explained class's probability,
// and take the area under that curve; the same for a seeded random pixel
// order. Lower is more faithful. The deletion curves run in this process on
// onnxruntime-node (one thread), not through the gateway: they measure the
// maps, not the server. Also prints items run per explanation and latency of
// one explanation alone (batch 1) and with BENCH_LOAD concurrent explanations.
// Writes docs/explain/*.png (heatmaps drawn by the gateway) and prints a
// Markdown table for bench/RESULTS.md and the model cards.
// Usage: npm run bench:explain  (BENCH_IMAGES=200, BENCH_LOAD=8, BENCH_MODELS=all four;
// BENCH_WRITE_CARDS=1 also writes the table into each models/<name>/config.json card and re-renders the cards)
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import { ROOT, bootstrapKey, embeddedEnv, fixtureImages, freePort, log, startGateway } from './lib.mjs';

const { areaUnderCurve, deletionSeries, randomOrder } = await import(path.join(ROOT, 'dist/inference/explain-faithfulness.js'));
const { seededRandom } = await import(path.join(ROOT, 'dist/inference/explain.js'));

const IMAGES = Number(process.env.BENCH_IMAGES ?? 200);
const LOAD = Number(process.env.BENCH_LOAD ?? 8);
const MODELS = (process.env.BENCH_MODELS ?? 'fashion-cnn,fashion-lstm,fashion-attention,fashion-hybrid').split(',');
const STEPS = 100;
const GEOMETRY = { layout: 'NCHW', channels: 1, height: 28, width: 28 };
const METHODS = {
  OCCLUSION: { method: 'OCCLUSION' },
  RISE: { method: 'RISE' },
  ATTENTION: { method: 'ATTENTION' },
};
const pixels = fixtureImages();
const imageFloats = (i) => Float32Array.from(pixels.subarray(i * 784, (i + 1) * 784), (v) => v / 255);
const imageInput = (i) => ({ pixels: Array.from(pixels.subarray(i * 784, (i + 1) * 784)), width: 28, height: 28 });

/** Pixel order by decreasing saliency; ties (plateaus of a patch or a grid cell) broken at random, seeded. */
function orderWithTies(map, seed) {
  const random = seededRandom(seed);
  const jitter = Array.from({ length: map.length }, () => random());
  return Array.from({ length: map.length }, (_, i) => i).sort((a, b) => map[b] - map[a] || jitter[a] - jitter[b]);
}

/** A coarse map (attention grid) spread over 28×28: each pixel takes its cell's value. */
function upsample(data, [mh, mw]) {
  const out = new Float32Array(784);
  for (let y = 0; y < 28; y += 1) for (let x = 0; x < 28; x += 1) out[y * 28 + x] = data[Math.floor((y * mh) / 28) * mw + Math.floor((x * mw) / 28)];
  return out;
}

const decode = (b64) => { const b = Buffer.from(b64, 'base64'); return Float32Array.from({ length: b.length / 4 }, (_, i) => b.readFloatLE(i * 4)); };
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

const work = mkdtempSync(path.join(os.tmpdir(), 'modelgate-bench-explain-'));
const port = await freePort();
const env = embeddedEnv(port, path.join(work, 'data'), { DEFAULT_REQUESTS_PER_MINUTE: '100000000', DEFAULT_COMPUTE_UNITS_PER_MINUTE: '100000000' });
const key = bootstrapKey(env);
log(`starting gateway on :${port} (${os.availableParallelism()} cores)`);
const { child: gateway } = await startGateway(env);

const QUERY = `mutation($m: String!, $i: [ImageInput!]!, $e: ExplainInput) { classify(model: $m, images: $i, topK: 1, explain: $e) {
  results { explanation { explainedClass shape dataBase64 heatmapPng items } } } }`;
async function explain(model, indices, params) {
  const res = await fetch(`http://127.0.0.1:${port}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: QUERY, variables: { m: model, i: indices.map(imageInput), e: params } }),
  });
  const body = await res.json();
  if (body.errors) throw new Error(JSON.stringify(body.errors));
  return body.data.classify.results.map((r) => r.explanation);
}

const rows = [];
try {
  mkdirSync(path.join(ROOT, 'docs/explain'), { recursive: true });
  for (const model of MODELS) {
    const config = JSON.parse(readFileSync(path.join(ROOT, 'models', model, 'config.json'), 'utf8'));
    const session = await ort.InferenceSession.create(path.join(ROOT, 'models', model, '1/model.onnx'), { intraOpNumThreads: 1, interOpNumThreads: 1 });
    /** Probability of `target` along the deletion series of one image. */
    const curve = async (image, order, target) => {
      const series = deletionSeries(image, GEOMETRY, order, STEPS);
      const out = await session.run({ image: new ort.Tensor('float32', series, [STEPS + 1, 1, 28, 28]) }, ['probabilities']);
      const p = out.probabilities.data;
      return Array.from({ length: STEPS + 1 }, (_, k) => p[k * 10 + target]);
    };
    const methods = Object.keys(METHODS).filter((m) => m !== 'ATTENTION' || config.outputs.some((o) => o.name === 'attention'));
    for (const method of methods) {
      const params = METHODS[method];
      const indices = Array.from({ length: IMAGES }, (_, i) => i);
      const maps = [];
      // 4 images per request: RISE's 4 × 501 items stay under the request bounds.
      for (let i = 0; i < indices.length; i += 4) maps.push(...(await explain(model, indices.slice(i, i + 4), params)));
      let auc = 0;
      let aucRandom = 0;
      let wins = 0;
      for (const [n, index] of indices.entries()) {
        const e = maps[n];
        const data = decode(e.dataBase64);
        const map = e.shape[0] === 28 && e.shape[1] === 28 ? data : upsample(data, e.shape);
        const image = imageFloats(index);
        const a = areaUnderCurve(await curve(image, orderWithTies(map, 7 + index), e.explainedClass));
        const r = areaUnderCurve(await curve(image, randomOrder(784, 1000 + index), e.explainedClass));
        auc += a;
        aucRandom += r;
        if (a < r) wins += 1;
      }
      // Latency: one explanation of one image alone, then BENCH_LOAD at once.
      const alone = [];
      for (let i = 0; i < 5; i += 1) { const t = performance.now(); await explain(model, [i], params); alone.push(performance.now() - t); }
      const loaded = await Promise.all(Array.from({ length: LOAD }, async (_, i) => { const t = performance.now(); await explain(model, [i], params); return performance.now() - t; }));
      const [png] = await explain(model, [0], { ...params, heatmap: true });
      writeFileSync(path.join(ROOT, 'docs/explain', `${model}-${method.toLowerCase()}.png`), Buffer.from(png.heatmapPng, 'base64'));
      const row = {
        model, method, images: IMAGES, auc: auc / IMAGES, aucRandom: aucRandom / IMAGES, wins, items: maps[0].items,
        aloneMs: median(alone), loadedMs: median(loaded),
      };
      rows.push(row);
      log(JSON.stringify(row));
    }
    await session.release();
  }
} finally {
  gateway.kill('SIGTERM');
  await new Promise((r) => gateway.once('exit', r));
  rmSync(work, { recursive: true, force: true });
}

if (process.env.BENCH_WRITE_CARDS === '1') {
  // The table per model into config.json's card, then the cards re-rendered from it.
  for (const model of MODELS) {
    const file = path.join(ROOT, 'models', model, 'config.json');
    const config = JSON.parse(readFileSync(file, 'utf8'));
    config.card.explanations = {
      images: IMAGES,
      date: new Date().toISOString().slice(0, 10),
      rows: rows.filter((r) => r.model === model).map(({ method, auc, aucRandom, wins, items }) => ({ method, auc: Number(auc.toFixed(4)), aucRandom: Number(aucRandom.toFixed(4)), wins, items })),
    };
    writeFileSync(file, `${JSON.stringify(config, null, 2)}\n`);
  }
  spawnSync(process.execPath, [path.join(ROOT, 'models/measure.js'), '--cards-only'], { stdio: 'inherit' });
}

const f = (x, d = 3) => x.toFixed(d);
console.log(`| model | method | deletion AUC (saliency) | deletion AUC (random order) | ratio | images where saliency < random | items per explanation | latency alone ms (median of 5) | latency with ${LOAD} concurrent ms (median) |`);
console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.model} | ${r.method} | ${f(r.auc)} | ${f(r.aucRandom)} | ${f(r.auc / r.aucRandom, 2)} | ${r.wins}/${r.images} | ${r.items} | ${f(r.aloneMs, 1)} | ${f(r.loadedMs, 1)} |`);
}
