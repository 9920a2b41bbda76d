#!/usr/bin/env node
// An OTLP/HTTP trace sink for bench/tracing.mjs, in its own process (the bench blocks on
// wrk, so a receiver in its event loop would stall the exporters): counts the spans of
// every JSON export it receives; GET /count answers {"exports":n,"spans":n}.
import http from 'node:http';

let exports = 0;
let spans = 0;
const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/count') return res.end(JSON.stringify({ exports, spans }));
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    exports += 1;
    for (const rs of body.resourceSpans ?? []) for (const ss of rs.scopeSpans ?? []) spans += ss.spans?.length ?? 0;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => console.log(`listening ${server.address().port}`));
