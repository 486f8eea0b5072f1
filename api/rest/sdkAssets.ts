import path from 'node:path';
import express from 'express';
import type { Logger } from '../../src/runtime/logger';

/**
 * The front-end SDK's browser bundle at a stable URL, so a legacy page loads it with one script tag, as
 * it loaded Koala's message_client.js (shared/seeds/000_83e3b79cc88886e5.txt, section 4); and a demo page
 * that shows pushes live. Public, like any page's scripts: they hold nothing secret and are the same for
 * everyone, and a page needs them before it has a ticket; the socket they open asks for the ticket.
 *
 * Fixed files only: each route names one file, no part of a request reaches a path. The files sit
 * beside this module's folder, in the source tree and in dist/ alike (`npm run build` copies them).
 */
interface Asset {
  readonly file: string;
  readonly type: string;
  readonly cacheControl: string;
  readonly headers?: Readonly<Record<string, string>>;
}

// The page runs only its own script and style, talks only to its own origin, and is framed by nobody;
// it sends no Referer, though its ticket is in the fragment, which browsers never send anyway.
const DEMO_PAGE_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'referrer-policy': 'no-referrer',
};

const ASSETS: Readonly<Record<string, Asset>> = {
  // The URL stays while its content changes with herald: cached briefly, then revalidated by ETag.
  '/sdk/message_client.js': {
    file: path.join(__dirname, '../../sdk/dist/message_client.js'),
    type: 'text/javascript; charset=utf-8',
    cacheControl: 'public, max-age=300',
    headers: { 'cross-origin-resource-policy': 'cross-origin' }, // pages of other origins load it too
  },
  // Koala's other two scripts (sdk/amd/): tiny modules, so a page's require(['tce', 'koala', 'message_client']) loads.
  '/sdk/tce.js': {
    file: path.join(__dirname, '../../sdk/dist/tce.js'),
    type: 'text/javascript; charset=utf-8',
    cacheControl: 'public, max-age=300',
    headers: { 'cross-origin-resource-policy': 'cross-origin' },
  },
  '/sdk/koala.js': {
    file: path.join(__dirname, '../../sdk/dist/koala.js'),
    type: 'text/javascript; charset=utf-8',
    cacheControl: 'public, max-age=300',
    headers: { 'cross-origin-resource-policy': 'cross-origin' },
  },
  '/demo/terminal.html': {
    file: path.join(__dirname, '../demo/terminal.html'),
    type: 'text/html; charset=utf-8',
    cacheControl: 'no-cache',
    headers: DEMO_PAGE_HEADERS,
  },
  '/demo/terminal.js': {
    file: path.join(__dirname, '../demo/terminal.js'),
    type: 'text/javascript; charset=utf-8',
    cacheControl: 'no-cache',
  },
  // The demo's service worker (Web Push): served from /demo/, so its scope is the demo page's.
  '/demo/webpush-sw.js': {
    file: path.join(__dirname, '../demo/webpush-sw.js'),
    type: 'text/javascript; charset=utf-8',
    cacheControl: 'no-cache',
  },
  '/demo/terminal.css': {
    file: path.join(__dirname, '../demo/terminal.css'),
    type: 'text/css; charset=utf-8',
    cacheControl: 'no-cache',
  },
};

export function sdkAssetsRouter(deps: { readonly log?: Logger } = {}): express.Router {
  const router = express.Router({ caseSensitive: true, strict: true });
  for (const [route, asset] of Object.entries(ASSETS)) {
    router.get(route, (_req, res) => {
      res.set({
        'content-type': asset.type,
        'cache-control': asset.cacheControl,
        'x-content-type-options': 'nosniff',
        ...asset.headers,
      });
      res.sendFile(asset.file, (error?: NodeJS.ErrnoException) => {
        if (!error || res.headersSent || error.code === 'ECONNABORTED') return;
        // Missing only where herald runs without having been built (the SDK bundle is a build output).
        deps.log?.warn({ file: asset.file, err: error }, 'sdk assets: file not available');
        for (const name of ['content-type', ...Object.keys(asset.headers ?? {})]) res.removeHeader(name);
        res
          .status(404)
          .set('cache-control', 'no-store')
          .json({ error: { code: 'NOT_FOUND', message: `${route} is not built here: run npm run build` } });
      });
    });
  }
  return router;
}
