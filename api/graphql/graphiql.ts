import { existsSync } from 'node:fs';
import path from 'node:path';
import express from 'express';

/**
 * GraphiQL, the in-browser IDE, on GET /graphql for browsers. Its scripts are served from this
 * installation's own packages (no CDN): React, GraphiQL and the graphql-ws browser client.
 *
 * Authentication: put `{"Authorization": "Bearer <ticket>"}` in the Headers tab; the same ticket opens
 * the graphql-ws connection for subscriptions.
 */
const ASSETS: Record<string, { pkg: string; file: string; type: string }> = {
  'react.js': { pkg: 'react', file: 'umd/react.production.min.js', type: 'text/javascript' },
  'react-dom.js': { pkg: 'react-dom', file: 'umd/react-dom.production.min.js', type: 'text/javascript' },
  'graphiql.js': { pkg: 'graphiql', file: 'graphiql.min.js', type: 'text/javascript' },
  'graphiql.css': { pkg: 'graphiql', file: 'graphiql.min.css', type: 'text/css' },
  'graphql-ws.js': { pkg: 'graphql-ws', file: 'umd/graphql-ws.min.js', type: 'text/javascript' },
};

export function graphiqlRouter(graphqlPath: string): express.Router {
  const router = express.Router();
  router.get(graphqlPath, (req, res, next) => {
    // Only browsers asking for a page get the IDE; GraphQL-over-HTTP GETs go on to the handler.
    if (
      req.accepts(['application/json', 'application/graphql-response+json', 'text/html']) !== 'text/html' ||
      req.query.query !== undefined
    )
      return next();
    res.type('html').set('cache-control', 'no-store').send(page(graphqlPath));
  });
  router.get(`${graphqlPath}/assets/:name`, (req, res) => {
    const asset = ASSETS[req.params.name];
    if (!asset) return res.status(404).end();
    res.type(asset.type).set('cache-control', 'public, max-age=86400');
    res.sendFile(path.join(packageRoot(asset.pkg), asset.file));
  });
  return router;
}

/** The installed package's folder; the browser builds are not in the packages' `exports` maps. */
function packageRoot(name: string): string {
  const root = (require.resolve.paths(name) ?? [])
    .map((dir) => path.join(dir, name))
    .find((dir) => existsSync(path.join(dir, 'package.json')));
  if (!root) throw new Error(`package ${name} is not installed`);
  return root;
}

function page(graphqlPath: string): string {
  const assets = `${graphqlPath}/assets`;
  return `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>herald GraphQL</title>
  <link rel="stylesheet" href="${assets}/graphiql.css">
  <style>html, body, #graphiql { height: 100%; margin: 0; }</style>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script src="${assets}/react.js"></script>
  <script src="${assets}/react-dom.js"></script>
  <script src="${assets}/graphql-ws.js"></script>
  <script src="${assets}/graphiql.js"></script>
  <script>
    const url = new URL(${JSON.stringify(graphqlPath)}, location.href).toString();
    const wsUrl = url.replace(/^http/, 'ws');
    const clients = new Map();
    function ticketOf(headers) {
      const value = headers && (headers.Authorization || headers.authorization);
      return typeof value === 'string' ? value.replace(/^Bearer\\s+/i, '') : '';
    }
    // One fetcher per ticket, so subscriptions open their socket with the ticket of the Headers tab.
    function fetcher(params, options) {
      const ticket = ticketOf(options && options.headers);
      if (!clients.has(ticket)) {
        clients.set(ticket, GraphiQL.createFetcher({
          url,
          wsClient: graphqlWs.createClient({ url: wsUrl, connectionParams: { ticket }, lazy: true }),
        }));
      }
      return clients.get(ticket)(params, options);
    }
    ReactDOM.createRoot(document.getElementById('graphiql')).render(React.createElement(GraphiQL, {
      fetcher,
      defaultHeaders: JSON.stringify({ Authorization: 'Bearer <ticket from POST /koala/api/mas/tickets>' }, null, 2),
      defaultQuery: '{\\n  me { appId userId }\\n  notifications(first: 10) {\\n    total\\n    nodes { id seq title content sender sentAt read }\\n  }\\n}\\n',
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
    }));
  </script>
</body>
</html>`;
}
