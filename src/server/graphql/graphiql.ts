/**
 * The in-browser IDE on GET /graphql. Served entirely from npm packages
 * (graphiql's and React's UMD builds) because these machines are offline and
 * a CDN-hosted page would load nothing.
 */
import { readFile } from 'node:fs/promises';
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
  // Each file is read once, asynchronously, when first asked for (graphiql.js is 3.5 MB: not
  // worth holding in processes no browser visits), and never with a blocking read on a request.
  const cache = new Map<string, Promise<Buffer>>();
  // Resolved at start-up (require.resolve stats files synchronously).
  const paths = new Map(Object.entries(ASSETS).map(([name, asset]) => [name, assetPath(asset.pkg, asset.file)]));
  const load = (name: string, file: string): Promise<Buffer> => {
    let body = cache.get(name);
    if (!body) {
      body = readFile(file);
      // A failed read is not kept: the next request tries again.
      body.catch(() => cache.delete(name));
      cache.set(name, body);
    }
    return body;
  };
  app.get<{ Params: { asset: string } }>('/graphiql/:asset', async (request, reply) => {
    // Own keys only: /graphiql/constructor must not find Object's.
    const asset = Object.hasOwn(ASSETS, request.params.asset) ? ASSETS[request.params.asset] : undefined;
    const file = paths.get(request.params.asset);
    if (!asset || !file) return reply.code(404).send({ error: 'Not Found', message: 'no such GraphiQL asset' });
    const body = await load(request.params.asset, file);
    return reply.type(asset.type).header('cache-control', 'public, max-age=86400').send(body);
  });
}

/** A browser asking for /graphql (HTML accepted, no query) gets the IDE. */
export function wantsGraphiql(method: string, accept: string | undefined, query: unknown): boolean {
  if (method !== 'GET' || !accept?.includes('text/html')) return false;
  return !(query && typeof query === 'object' && 'query' in query);
}
