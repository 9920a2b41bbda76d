#!/usr/bin/env node
// Row (d) of the inference benchmark: the HTTP limit. A bare node:http server
// that decodes the same GraphQL request body the gateway gets and calls
// onnxruntime-node directly (one request = one run, no batching, no GraphQL).
//   node bench/bare-server.mjs <model.onnx> <port>
import http from 'node:http';
import * as ort from 'onnxruntime-node';
import os from 'node:os';

const [modelPath, port] = process.argv.slice(2);
const session = await ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'], intraOpNumThreads: os.availableParallelism() });
http.createServer((req, res) => {
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', async () => {
    const { variables } = JSON.parse(Buffer.concat(chunks).toString());
    const input = variables.input.inputs[0];
    const bytes = Buffer.from(input.dataBase64, 'base64');
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    const out = await session.run({ [input.name]: new ort.Tensor('float32', data, input.shape) });
    const outputs = Object.entries(out).map(([name, t]) => ({ name, datatype: 'FP32', shape: t.dims, dataBase64: Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64') }));
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ data: { infer: { outputs } } }));
  });
}).listen(Number(port), '127.0.0.1', () => console.log(`bare server on ${port}`));
