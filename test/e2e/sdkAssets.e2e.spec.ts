import { readFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { expect } from 'chai';
import { startTestHerald } from '../support/herald';
import { ensureSdkBuilt } from '../support/sdkBundle';

/** A GET with the path sent exactly as written (fetch would resolve `..` and `%2e` before sending). */
function rawRequest(
  baseUrl: string,
  rawPath: string,
  method = 'GET',
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const { hostname, port } = new URL(baseUrl);
  return new Promise((resolve, reject) => {
    const request = http.request({ hostname, port, path: rawPath, method, headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () => resolve({ status: response.statusCode!, headers: response.headers, body }));
    });
    request.on('error', reject);
    request.end();
  });
}

// The SDK's browser bundle and the demo page, served by herald to pages without a ticket (docs/sdk.md).
describe('herald serves the front-end SDK and its demo page', function () {
  this.timeout(60_000);
  let test: Awaited<ReturnType<typeof startTestHerald>>;

  before(async () => {
    await ensureSdkBuilt();
    test = await startTestHerald();
  });
  after(() => test?.stop());

  it('serves the browser bundle at /sdk/message_client.js: JavaScript, cached briefly, revalidated by ETag', async () => {
    const response = await rawRequest(test.url, '/sdk/message_client.js');
    expect(response.status).to.equal(200);
    expect(response.headers['content-type']).to.equal('text/javascript; charset=utf-8');
    expect(response.headers['cache-control']).to.equal('public, max-age=300');
    expect(response.headers['x-content-type-options']).to.equal('nosniff');
    expect(response.body).to.equal(readFileSync(path.join(__dirname, '../../sdk/dist/message_client.js'), 'utf8'));
    // UMD: the AMD module `message_client` (require.js pages), CommonJS, and the global.
    expect(response.body).to.match(/^\(function \(root, factory\) \{\n/);
    expect(response.body).to.contain("define('message_client', [], function () { return api; })");
    expect(response.body).to.contain('"use strict";var message_client=');
    for (const [route, name] of [
      ['/sdk/tce.js', 'tce'],
      ['/sdk/koala.js', 'koala'],
    ] as const) {
      const module = await rawRequest(test.url, route);
      expect(
        [module.status, module.headers['content-type'], module.headers['cross-origin-resource-policy']],
        route,
      ).to.deep.equal([200, 'text/javascript; charset=utf-8', 'cross-origin']);
      expect(module.body, route).to.contain(`define('${name}', `);
    }

    const etag = response.headers.etag!;
    expect(etag).to.be.a('string');
    const again = await rawRequest(test.url, '/sdk/message_client.js', 'GET', { 'if-none-match': etag });
    expect(again.status).to.equal(304);
    const head = await rawRequest(test.url, '/sdk/message_client.js', 'HEAD');
    expect(head.status).to.equal(200);
    expect(head.body).to.equal('');
  });

  it('serves the demo page with a policy that lets it run only its own script and talk only to herald', async () => {
    const page = await rawRequest(test.url, '/demo/terminal.html');
    expect(page.status).to.equal(200);
    expect(page.headers['content-type']).to.equal('text/html; charset=utf-8');
    expect(page.headers['cache-control']).to.equal('no-cache');
    expect(page.headers['content-security-policy'])
      .to.include("script-src 'self'")
      .and.include("connect-src 'self'")
      .and.include("frame-ancestors 'none'");
    expect(page.headers['referrer-policy']).to.equal('no-referrer');
    expect(page.body).to.include('<script src="/sdk/message_client.js" defer></script>');
    for (const [asset, type] of [
      ['/demo/terminal.js', 'text/javascript; charset=utf-8'],
      ['/demo/terminal.css', 'text/css; charset=utf-8'],
    ] as const) {
      const response = await rawRequest(test.url, asset);
      expect(response.status, asset).to.equal(200);
      expect(response.headers['content-type'], asset).to.equal(type);
    }
  });

  const notServed = [
    '/sdk/../package.json',
    '/sdk/%2e%2e/package.json',
    '/sdk/..%2fpackage.json',
    '/sdk/message_client.js/../../package.json',
    '/demo/../../src/herald.ts',
    '/demo/%2e%2e/%2e%2e/src/herald.ts',
    '/sdk/dist/message_client.js',
    '/sdk/message_client.mjs',
    '/sdk/',
    '/demo/',
    '/demo/terminal.html%00',
    '/SDK/message_client.js',
    '/sdk/message_client.js/',
  ];
  for (const rawPath of notServed) {
    it(`serves no file for ${rawPath}`, async () => {
      const response = await rawRequest(test.url, rawPath);
      expect(response.status).to.be.oneOf([404, 400]);
      expect(response.headers['content-type']).to.match(/^application\/json/);
      expect(response.body).not.to.include('"dependencies"').and.not.to.include('import ');
    });
  }

  it('answers only GET and HEAD', async () => {
    const response = await rawRequest(test.url, '/sdk/message_client.js', 'POST');
    expect(response.status).to.equal(404);
  });
});
