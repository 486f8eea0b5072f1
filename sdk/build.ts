import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

/**
 * Builds the SDK: `dist/message_client.mjs` (ESM, for bundlers and `import`; graphql-ws stays an import,
 * the package's one dependency) and `dist/message_client.js` (UMD with graphql-ws inside; what herald
 * serves at /sdk/message_client.js), beside `dist/tce.js` and `dist/koala.js` (sdk/amd/, copied). Run as
 * a script it also writes the type declarations and prints the sizes.
 */

export const SDK_DIR = __dirname;
export const DIST_DIR = path.join(SDK_DIR, 'dist');

export interface BundleSize {
  readonly file: string;
  readonly minifiedBytes: number;
  readonly gzippedBytes: number;
}

// Browsers of the last years: optional chaining and class fields are lowered, nothing needs a polyfill.
const TARGET = ['es2018'];

/**
 * The script-tag build is UMD, as pages load it: Koala's pages load require.js and ask for
 * `require(['message_client'], function (client) { … })` (the seed's section 4; Koala's own
 * message_client.js was `define('message_client', …)`), older pages use the global, bundlers and Node
 * `require()` it. The bundle (an IIFE assigning `var message_client`) runs inside the factory. The AMD
 * module is named, as Koala's was: a named define also works when the file comes by a plain script tag
 * on a page that has require.js (an anonymous one would be require.js's "mismatched anonymous define").
 * The global is set in a browser in every case (pages that load it by script tag and call the global).
 */
const UMD_BANNER = `(function (root, factory) {
  var api = factory();
  if (typeof define === 'function' && define.amd) define('message_client', [], function () { return api; });
  if (typeof module === 'object' && module.exports) module.exports = api;
  else if (root) root.message_client = api;
})(typeof self !== 'undefined' ? self : this, function () {`;
const UMD_FOOTER = `return message_client;
});`;

/** Koala's other two scripts a page loads (sdk/amd/): tiny modules, so `require(['tce', 'koala', 'message_client'])` loads. */
export const AMD_MODULES = ['tce.js', 'koala.js'] as const;

export async function buildBundles(outdir: string = DIST_DIR): Promise<BundleSize[]> {
  mkdirSync(outdir, { recursive: true });
  const common = { bundle: true, minify: true, target: TARGET, legalComments: 'eof', logLevel: 'warning' } as const;
  await Promise.all([
    build({
      ...common,
      entryPoints: [path.join(SDK_DIR, 'src/index.ts')],
      outfile: path.join(outdir, 'message_client.mjs'),
      format: 'esm',
      platform: 'neutral',
      external: ['graphql-ws', 'graphql-ws/*'],
      sourcemap: true,
    }),
    build({
      ...common,
      entryPoints: [path.join(SDK_DIR, 'src/browser.ts')],
      outfile: path.join(outdir, 'message_client.js'),
      format: 'iife',
      globalName: 'message_client',
      platform: 'browser',
      banner: { js: UMD_BANNER },
      footer: { js: UMD_FOOTER },
    }),
  ]);
  for (const file of AMD_MODULES) copyFileSync(path.join(SDK_DIR, 'amd', file), path.join(outdir, file));
  // The declarations (and the .mjs) are ES modules: they say so to TypeScript and Node by this scope.
  writeFileSync(path.join(outdir, 'package.json'), '{ "type": "module" }\n');
  return ['message_client.mjs', 'message_client.js'].map((file) => {
    const bytes = readFileSync(path.join(outdir, file));
    return { file, minifiedBytes: bytes.length, gzippedBytes: gzipSync(bytes, { level: 9 }).length };
  });
}

export function describeSizes(sizes: readonly BundleSize[]): string {
  const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
  return sizes
    .map(
      (s) =>
        `${s.file.padEnd(20)} ${kb(s.minifiedBytes).padStart(9)} min ${kb(s.gzippedBytes).padStart(8)} min+gzip${s.file.endsWith('.mjs') ? '  (graphql-ws imported, not included)' : '  (graphql-ws included)'}`,
    )
    .join('\n');
}

async function main(): Promise<void> {
  const sizes = await buildBundles();
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(SDK_DIR, 'tsconfig.json')], {
    stdio: 'inherit',
  });
  console.log(`sdk: built ${path.relative(process.cwd(), DIST_DIR) || '.'}/\n${describeSizes(sizes)}`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
