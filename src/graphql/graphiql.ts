/**
 * The in-browser IDE on GET /graphql. Served entirely from npm packages
 * (graphiql's and React's UMD builds) because these machines are offline and
 * a CDN-hosted page would load nothing.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';

const ASSETS: Record<string, { pkg: string; file: string; type: string }> = {
  'react.js': { pkg: 'react', file: 'umd/react.production.min.js', type: 'application/javascript' },
  'react-dom.js': { pkg: 'react-dom', file: 'umd/react-dom.production.min.js', type: 'application/javascript' },
  'graphiql.js': { pkg: 'graphiql', file: 'graphiql.min.js', type: 'application/javascript' },
  'graphiql.css': { pkg: 'graphiql', file: 'graphiql.min.css', type: 'text/css' },
};

function assetPath(pkg: string, file: string): string {
  return path.join(path.dirname(require.resolve(`${pkg}/package.json`)), file);
}

export const GRAPHIQL_HTML = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8" />
  <title>modelgate · GraphiQL</title>
  <link rel="stylesheet" href="/graphiql/graphiql.css" />
  <style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
</head>
<body>
  <div id="graphiql">Loading…</div>
  <script src="/graphiql/react.js"></script>
  <script src="/graphiql/react-dom.js"></script>
  <script src="/graphiql/graphiql.js"></script>
  <script>
    const fetcher = GraphiQL.createFetcher({ url: '/graphql' });
    ReactDOM.createRoot(document.getElementById('graphiql')).render(
      React.createElement(GraphiQL, {
        fetcher,
        defaultQuery: '{\\n  health {\\n    status\\n    version\\n    database\\n    redis\\n  }\\n}\\n',
        headerEditorEnabled: true,
        shouldPersistHeaders: false,
      }),
    );
  </script>
</body>
</html>
`;

export function registerGraphiql(app: FastifyInstance): void {
  const cache = new Map<string, Buffer>();
  app.get<{ Params: { asset: string } }>('/graphiql/:asset', async (request, reply) => {
    const asset = ASSETS[request.params.asset];
    if (!asset) return reply.code(404).send({ error: 'Not Found', message: 'no such GraphiQL asset' });
    let body = cache.get(request.params.asset);
    if (!body) {
      body = readFileSync(assetPath(asset.pkg, asset.file));
      cache.set(request.params.asset, body);
    }
    return reply.type(asset.type).header('cache-control', 'public, max-age=86400').send(body);
  });
}

/** A browser asking for /graphql (HTML accepted, no query) gets the IDE. */
export function wantsGraphiql(method: string, accept: string | undefined, query: unknown): boolean {
  if (method !== 'GET' || !accept?.includes('text/html')) return false;
  return !(query && typeof query === 'object' && 'query' in query);
}
