/**
 * GET /console: the web console, static files built by scripts/build-console.mjs
 * into dist/console-web (npm run build:ts). It is a client of /graphql and of
 * its sign-in routes (console-session.routes.ts).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply } from 'fastify';

// Same folder from src/server/rest (ts-jest) and dist/server/rest (compiled).
export const CONSOLE_ASSET_DIR = path.resolve(__dirname, '..', '..', '..', 'dist', 'console-web');

const TYPES: Record<string, string> = {
  'console.js': 'application/javascript; charset=utf-8',
  'console.css': 'text/css; charset=utf-8',
};

// The session's CSRF token lives in the page's memory: no inline script, no foreign origin, no framing.
const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
};

export function registerConsole(app: FastifyInstance, assetDir = CONSOLE_ASSET_DIR): void {
  const cache = new Map<string, Buffer>();
  const read = (file: string): Buffer | null => {
    let body = cache.get(file);
    if (!body) {
      try {
        body = readFileSync(path.join(assetDir, file));
      } catch {
        return null;
      }
      cache.set(file, body);
    }
    return body;
  };

  const page = async (_request: unknown, reply: FastifyReply) => {
    const html = read('index.html');
    if (!html) {
      return reply.code(503).send({ error: 'Service Unavailable', message: 'console assets are not built (npm run build:ts)' });
    }
    return reply.headers(SECURITY_HEADERS).header('cache-control', 'no-cache').type('text/html; charset=utf-8').send(html);
  };
  app.get('/console', page);
  app.get('/console/', page);
  app.get<{ Params: { asset: string } }>('/console/assets/:asset', async (request, reply) => {
    const type = TYPES[request.params.asset];
    const body = type ? read(request.params.asset) : null;
    if (!type || !body) return reply.code(404).send({ error: 'Not Found', message: 'no such console asset', requestId: request.id });
    return reply.headers(SECURITY_HEADERS).header('cache-control', 'no-cache').type(type).send(body);
  });
}
