import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

/**
 * GraphiQL served entirely from installed packages (graphiql 3's UMD bundle with React 18), so the
 * playground works on machines without internet. Nothing is loaded from a CDN.
 */
const require = createRequire(import.meta.url);
const packageDir = (name: string) => path.dirname(require.resolve(`${name}/package.json`));

export const PLAYGROUND_ASSET_PREFIX = '/graphql/assets/';

interface Asset {
  file: string;
  type: string;
}

const ASSETS: Record<string, Asset> = {
  'react.js': { file: path.join(packageDir('react'), 'umd/react.production.min.js'), type: 'text/javascript' },
  'react-dom.js': {
    file: path.join(packageDir('react-dom'), 'umd/react-dom.production.min.js'),
    type: 'text/javascript',
  },
  'graphiql.js': { file: path.join(packageDir('graphiql'), 'graphiql.min.js'), type: 'text/javascript' },
  'graphiql.css': { file: path.join(packageDir('graphiql'), 'graphiql.min.css'), type: 'text/css' },
};

const BOOT_SCRIPT = `(() => {
  const params = new URLSearchParams(location.search);
  const token = params.get('token');
  const headers = token ? JSON.stringify({ authorization: 'Bearer ' + token }, null, 2) : undefined;
  const fetcher = GraphiQL.createFetcher({ url: location.pathname });
  const root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, {
    fetcher,
    defaultHeaders: headers,
    headerEditorEnabled: true,
    shouldPersistHeaders: true,
    defaultQuery: '# Quota Manager. Put your token in the Headers tab: {"authorization": "Bearer <token>"}\\n{\\n  health { status database gateway version }\\n}\\n',
  }));
})();
`;

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Quota Manager · GraphiQL</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="${PLAYGROUND_ASSET_PREFIX}graphiql.css">
  <style>html, body, #graphiql { height: 100%; margin: 0; }</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="${PLAYGROUND_ASSET_PREFIX}react.js"></script>
  <script src="${PLAYGROUND_ASSET_PREFIX}react-dom.js"></script>
  <script src="${PLAYGROUND_ASSET_PREFIX}graphiql.js"></script>
  <script src="${PLAYGROUND_ASSET_PREFIX}boot.js"></script>
</body>
</html>
`;

/** Scripts only from this server; GraphiQL injects its own styles, hence inline styles. */
export const PLAYGROUND_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'";

export function playgroundPage(): string {
  return PAGE;
}

const cache = new Map<string, Buffer>();

/** An asset by name, or null when there is no such asset. */
export function playgroundAsset(name: string): { body: Buffer; type: string } | null {
  if (name === 'boot.js') return { body: Buffer.from(BOOT_SCRIPT), type: 'text/javascript' };
  const asset = ASSETS[name];
  if (!asset) return null;
  let body = cache.get(name);
  if (!body) {
    body = readFileSync(asset.file);
    cache.set(name, body);
  }
  return { body, type: asset.type };
}
