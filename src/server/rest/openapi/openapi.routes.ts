/**
 * GET /openapi.json: the document, serialized once at start-up, with a strong
 * ETag (its SHA-256) so clients and caches revalidate with If-None-Match.
 */
import { createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { openApiDocument } from './openapi.document';

export function registerOpenApi(app: FastifyInstance): void {
  const body = JSON.stringify(openApiDocument());
  const etag = `"${createHash('sha256').update(body).digest('hex').slice(0, 32)}"`;
  app.get('/openapi.json', async (request, reply) => {
    void reply.header('etag', etag).header('cache-control', 'public, max-age=300');
    const match = request.headers['if-none-match'];
    if (match !== undefined && match.split(',').some((tag) => tag.trim() === etag || tag.trim() === '*')) return reply.code(304).send();
    return reply.type('application/json; charset=utf-8').send(body);
  });
}
