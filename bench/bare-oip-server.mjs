#!/usr/bin/env node
// The floor for a lone OIP binary request (bench/lone-ablation.mjs): node:http, the binary extension's
// framing (JSON header + raw tensor bytes, both ways) and onnxruntime-node — no auth, limits, usage,
// validation, batching or logging. `worker` runs the model in one worker thread as the gateway does
// (one postMessage each way), `inline` on the event loop.
// `threads` is onnxruntime's intra-op thread count (default 1; the batch ceiling uses every core).
//   node bench/bare-oip-server.mjs <model.onnx> <port> worker|inline [threads=1]
import http from 'node:http';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';

async function session(modelPath, threads) {
  return ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'], intraOpNumThreads: threads });
}

async function run(s, name, bytes, shape) {
  // The tensor follows a JSON header of any length: copy when it does not start on a 4-byte boundary.
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : new Uint8Array(bytes);
  const data = new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
  const out = await s.run({ [name]: new ort.Tensor('float32', data, shape) });
  const [outName, tensor] = Object.entries(out)[0];
  return { name: outName, shape: tensor.dims, data: tensor.data };
}

if (!isMainThread) {
  const s = await session(workerData.modelPath, workerData.threads);
  parentPort.on('message', async ({ id, name, bytes, shape }) => {
    const r = await run(s, name, bytes, shape);
    const copy = new Float32Array(r.data);
    parentPort.postMessage({ id, name: r.name, shape: r.shape, data: copy }, [copy.buffer]);
  });
} else {
  const [modelPath, port, mode = 'worker', threadArg = '1'] = process.argv.slice(2);
  const threads = Number(threadArg);
  let infer;
  if (mode === 'inline') {
    const s = await session(modelPath, threads);
    infer = (name, bytes, shape) => run(s, name, bytes, shape);
  } else {
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: { modelPath, threads } });
    const pending = new Map();
    let next = 0;
    worker.on('message', (m) => { pending.get(m.id)(m); pending.delete(m.id); });
    infer = (name, bytes, shape) => new Promise((resolve) => {
      const id = next++;
      pending.set(id, resolve);
      const copy = new Uint8Array(bytes);
      worker.postMessage({ id, name, bytes: copy, shape }, [copy.buffer]);
    });
  }
  http.createServer((req, res) => {
    if (req.url === '/v2/health/ready') return void res.writeHead(200).end();
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const all = Buffer.concat(chunks);
      const headerLength = Number(req.headers['inference-header-content-length']);
      const request = JSON.parse(all.subarray(0, headerLength).toString('utf8'));
      const input = request.inputs[0];
      const out = await infer(input.name, all.subarray(headerLength), input.shape);
      const bytes = Buffer.from(out.data.buffer, out.data.byteOffset, out.data.byteLength);
      const head = Buffer.from(JSON.stringify({ model_name: 'bare', outputs: [{ name: out.name, datatype: 'FP32', shape: out.shape, parameters: { binary_data_size: bytes.length } }] }));
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'inference-header-content-length': String(head.length), 'content-length': String(head.length + bytes.length) });
      res.end(Buffer.concat([head, bytes]));
    });
  }).listen(Number(port), '127.0.0.1', () => console.error(`bare OIP server (${mode}) on ${port}`));
}
