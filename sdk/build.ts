import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

/**
 * Builds the SDK: `dist/message_client.mjs` (ESM, for bundlers and `import`; graphql-ws stays an import,
 * the package's one dependency) and `dist/message_client.js` (IIFE with graphql-ws inside, the global
 * `message_client`; what herald serves at /sdk/message_client.js). Run as a script it also writes the
 * type declarations and prints the sizes.
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
    }),
  ]);
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
    .map((s) => `${s.file.padEnd(20)} ${kb(s.minifiedBytes).padStart(9)} min ${kb(s.gzippedBytes).padStart(8)} min+gzip${s.file.endsWith('.mjs') ? '  (graphql-ws imported, not included)' : '  (graphql-ws included)'}`)
    .join('\n');
}

async function main(): Promise<void> {
  const sizes = await buildBundles();
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(SDK_DIR, 'tsconfig.json')], { stdio: 'inherit' });
  console.log(`sdk: built ${path.relative(process.cwd(), DIST_DIR) || '.'}/\n${describeSizes(sizes)}`);
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
