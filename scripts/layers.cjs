/**
 * The layers of src/, lowest first. A file may import its own layer's files
 * (other than across a circle) and lower layers' files, never a higher layer's.
 * Read by the import-boundary lint (.dependency-cruiser.cjs) and by
 * scripts/import-graph.mjs, so the rule and the count agree.
 */
const LAYERS = [
  // Ground: infrastructure and primitives every domain may use; imports no domain.
  { name: 'ground', folders: ['db', 'redis', 'config', 'errors', 'log', 'metrics', 'ids', 'version.ts'] },
  // Core: the domains. They receive collaborators as interfaces and never import a door.
  { name: 'core', folders: ['inference', 'ratelimit', 'usage', 'keys', 'auth', 'billing', 'webhooks', 'tracing', 'health'] },
  // Doors: protocol adapters (GraphQL, REST) over the core.
  { name: 'doors', folders: ['server'] },
  // Composition root: builds the services and the doors, owns the process lifecycle.
  { name: 'root', folders: ['app', 'main.ts'] },
  // Clients of the whole: the CLI and the browser console.
  { name: 'clients', folders: ['cli', 'console'] },
];

/** Folders of the layout before issue #22's move, so the counts can be taken on an older commit. */
const LEGACY = { graphql: 'doors', openapi: 'doors' };

/** The first path segment under src/ ('inference', 'server', 'main.ts'). */
function folderOf(srcRelativePath) {
  return srcRelativePath.split('/')[0];
}

function layerOf(srcRelativePath) {
  const folder = folderOf(srcRelativePath);
  const index = LAYERS.findIndex((layer) => layer.folders.includes(folder));
  if (index >= 0) return { name: LAYERS[index].name, rank: index };
  const legacy = LEGACY[folder];
  if (legacy) return { name: legacy, rank: LAYERS.findIndex((layer) => layer.name === legacy) };
  return undefined;
}

/** A path regex (dependency-cruiser's syntax) matching every file of the given layers. */
function pathsOf(...names) {
  const parts = LAYERS.filter((layer) => names.includes(layer.name)).flatMap((layer) =>
    layer.folders.map((folder) => (folder.endsWith('.ts') ? `${folder.replace('.', '\\.')}$` : `${folder}/`)),
  );
  return `^src/(${parts.join('|')})`;
}

module.exports = { LAYERS, LEGACY, folderOf, layerOf, pathsOf };
