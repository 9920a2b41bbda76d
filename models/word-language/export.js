#!/usr/bin/env node
/**
 * Writes word-language's 1/model.onnx from training.json (see train.py), then
 * scores the ONNX file with onnxruntime-node on the held-out words train.py
 * left in heldout.txt and writes the measured figures into config.json's card.
 * The graph: text BYTES [N, 1] -> one RegexFullMatch per n-gram feature ->
 * Concat -> Cast float -> MatMul + Add -> logits; Softmax -> probabilities
 * FP32 [N, 6]; ArgMax -> ai.onnx.ml LabelEncoder -> language BYTES [N, 1].
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { Root } = require('protobufjs');
const ort = require('onnxruntime-node');

const HERE = __dirname;
const ROOT = path.resolve(HERE, '..', '..');
const FLOAT = 1, INT64 = 7, STRING = 8;
const ATTR = { INT: 2, STRING: 3, INTS: 7, STRINGS: 8 };

const modelType = new Root().loadSync(path.join(ROOT, 'proto', 'onnx', 'onnx.proto'), { keepCase: true }).lookupType('onnx.ModelProto');
const training = JSON.parse(fs.readFileSync(path.join(HERE, 'training.json'), 'utf8'));
const { labels, patterns, weights, bias } = training;
const features = patterns.length;

const valueInfo = (name, elemType, dims) => ({ name, type: { tensor_type: { elem_type: elemType, shape: { dim: dims.map((d) => (typeof d === 'number' ? { dim_value: d } : { dim_param: d })) } } } });
const floats = (name, dims, values) => ({ name, data_type: FLOAT, dims, raw_data: Buffer.from(new Float32Array(values).buffer) });

const nodes = patterns.map((p, j) => ({ op_type: 'RegexFullMatch', name: `has_${j}`, input: ['text'], output: [`has_${j}`], attribute: [{ name: 'pattern', type: ATTR.STRING, s: Buffer.from(p, 'utf8') }] }));
nodes.push(
  { op_type: 'Concat', name: 'features_bool', input: patterns.map((_, j) => `has_${j}`), output: ['features_bool'], attribute: [{ name: 'axis', type: ATTR.INT, i: 1 }] },
  { op_type: 'Cast', name: 'features', input: ['features_bool'], output: ['features'], attribute: [{ name: 'to', type: ATTR.INT, i: FLOAT }] },
  { op_type: 'MatMul', name: 'scores', input: ['features', 'W'], output: ['scores'] },
  { op_type: 'Add', name: 'logits', input: ['scores', 'b'], output: ['logits'] },
  { op_type: 'Softmax', name: 'probabilities', input: ['logits'], output: ['probabilities'], attribute: [{ name: 'axis', type: ATTR.INT, i: 1 }] },
  { op_type: 'ArgMax', name: 'best', input: ['logits'], output: ['best'], attribute: [{ name: 'axis', type: ATTR.INT, i: 1 }, { name: 'keepdims', type: ATTR.INT, i: 1 }] },
  {
    op_type: 'LabelEncoder', domain: 'ai.onnx.ml', name: 'language', input: ['best'], output: ['language'],
    attribute: [
      { name: 'keys_int64s', type: ATTR.INTS, ints: labels.map((_, k) => k) },
      { name: 'values_strings', type: ATTR.STRINGS, strings: labels.map((l) => Buffer.from(l, 'utf8')) },
      { name: 'default_string', type: ATTR.STRING, s: Buffer.from('', 'utf8') },
    ],
  },
);
const message = modelType.fromObject({
  ir_version: 9,
  producer_name: 'modelgate models/word-language/export.js',
  opset_import: [{ domain: '', version: 20 }, { domain: 'ai.onnx.ml', version: 3 }],
  graph: {
    name: 'word_language',
    node: nodes,
    initializer: [floats('W', [features, labels.length], weights.flat()), floats('b', [labels.length], bias)],
    input: [valueInfo('text', STRING, ['batch', 1])],
    output: [valueInfo('probabilities', FLOAT, ['batch', labels.length]), valueInfo('language', STRING, ['batch', 1])],
  },
});
const onnxFile = path.join(HERE, '1', 'model.onnx');
fs.mkdirSync(path.dirname(onnxFile), { recursive: true });
fs.writeFileSync(onnxFile, Buffer.from(modelType.encode(message).finish()));
void INT64;

async function measure() {
  const heldout = fs.readFileSync(path.join(HERE, 'heldout.txt'), 'utf8').trim().split('\n').map((l) => l.split('\t'));
  const session = await ort.InferenceSession.create(onnxFile, { intraOpNumThreads: 2 });
  let correct = 0;
  const perLanguage = Object.fromEntries(labels.map((l) => [l, [0, 0]]));
  for (let at = 0; at < heldout.length; at += 64) {
    const batch = heldout.slice(at, at + 64);
    const out = await session.run({ text: new ort.Tensor('string', batch.map(([, w]) => w), [batch.length, 1]) });
    batch.forEach(([lang], i) => {
      const hit = out.language.data[i] === lang;
      correct += hit ? 1 : 0;
      perLanguage[lang][0] += hit ? 1 : 0;
      perLanguage[lang][1] += 1;
    });
  }
  const timeBatch = async (size) => {
    const words = heldout.slice(0, size).map(([, w]) => w);
    const feeds = { text: new ort.Tensor('string', words, [size, 1]) };
    for (let i = 0; i < 20; i++) await session.run(feeds);
    const rounds = [];
    for (let r = 0; r < 5; r++) {
      const start = process.hrtime.bigint();
      for (let i = 0; i < 50; i++) await session.run(feeds);
      rounds.push(Number(process.hrtime.bigint() - start) / 1e6 / 50 / size);
    }
    return Number(rounds.sort((a, b) => a - b)[2].toFixed(4));
  };
  const accuracy = correct / heldout.length;
  const configFile = path.join(HERE, 'config.json');
  const config = JSON.parse(fs.readFileSync(configFile, 'utf8'));
  config.card = {
    ...config.card,
    heldout_accuracy: Number(accuracy.toFixed(4)),
    heldout_words: heldout.length,
    heldout_accuracy_per_language: Object.fromEntries(Object.entries(perLanguage).map(([l, [c, n]]) => [l, Number((c / n).toFixed(4))])),
    parameters: features * labels.length + labels.length,
    features,
    cpu_ms_per_word_batch1: await timeBatch(1),
    cpu_ms_per_word_batch64: await timeBatch(64),
    onnx_opset: 20,
    size_bytes: fs.statSync(onnxFile).size,
  };
  fs.writeFileSync(configFile, JSON.stringify(config, null, 2) + '\n');
  writeFixture(heldout);
  console.log(JSON.stringify(config.card, null, 1));
}
/** test/fixtures/word-language-heldout-600.tsv: the first 100 held-out words of each language, for test/models/models.test.ts (sha256 in the manifest). */
function writeFixture(heldout) {
  const fixtures = path.join(ROOT, 'test', 'fixtures');
  const name = 'word-language-heldout-600.tsv';
  const rows = labels.flatMap((l) => heldout.filter(([lang]) => lang === l).slice(0, 100));
  const text = Buffer.from(rows.map(([lang, word]) => `${lang}\t${word}\n`).join(''), 'utf8');
  fs.writeFileSync(path.join(fixtures, name), text);
  const manifestFile = path.join(fixtures, 'manifest.json');
  const manifest = JSON.parse(fs.readFileSync(manifestFile, 'utf8'));
  manifest.files[name] = { bytes: text.length, sha256: require('node:crypto').createHash('sha256').update(text).digest('hex') };
  fs.writeFileSync(manifestFile, JSON.stringify(manifest, null, 2) + '\n');
}

measure().catch((e) => { console.error(e); process.exit(1); });
