import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import ts from 'typescript';

// The import graph docs/architecture.md draws, held as a test. eslint's import-x/no-cycle skips type-only
// imports, so this reads every import (types included) with TypeScript's own pre-processor.

const ROOT = path.resolve(__dirname, '../..');
const LAYERS = ['domain', 'src', 'projections', 'api'];

function sourceFiles(): string[] {
  const listed = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', ...LAYERS], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return listed.split('\n').filter((file) => file.endsWith('.ts'));
}

function importGraph(): Map<string, Set<string>> {
  const files = sourceFiles();
  const known = new Set(files);
  const graph = new Map<string, Set<string>>();
  for (const file of files) {
    const { importedFiles } = ts.preProcessFile(readFileSync(path.join(ROOT, file), 'utf8'), true, true);
    const targets = new Set<string>();
    for (const { fileName } of importedFiles) {
      if (!fileName.startsWith('.')) continue;
      const bare = path.posix.normalize(path.posix.join(path.posix.dirname(file), fileName)).replace(/\.js$/, '');
      const target = [`${bare}.ts`, `${bare}/index.ts`].find((candidate) => known.has(candidate));
      if (target) targets.add(target);
    }
    graph.set(file, targets);
  }
  return graph;
}

/** Tarjan's strongly connected components of more than one file: each is an import cycle. */
function cycles(graph: Map<string, Set<string>>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (file: string): void => {
    index.set(file, index.size);
    low.set(file, index.get(file)!);
    stack.push(file);
    onStack.add(file);
    for (const target of graph.get(file) ?? []) {
      if (!index.has(target)) {
        visit(target);
        low.set(file, Math.min(low.get(file)!, low.get(target)!));
      } else if (onStack.has(target)) low.set(file, Math.min(low.get(file)!, index.get(target)!));
    }
    if (low.get(file) !== index.get(file)) return;
    const component: string[] = [];
    let member: string;
    do {
      member = stack.pop()!;
      onStack.delete(member);
      component.push(member);
    } while (member !== file);
    if (component.length > 1) found.push(component.sort());
  };
  for (const file of graph.keys()) if (!index.has(file)) visit(file);
  return found;
}

const arrows = (graph: Map<string, Set<string>>) =>
  [...graph].flatMap(([from, targets]) => [...targets].map((to) => ({ from, to })));
const layerOf = (file: string) => file.split('/')[0] ?? '';

describe('the import graph', () => {
  const graph = importGraph();

  it('reads the tree (a broken reader would pass everything below)', () => {
    expect(graph.size).to.be.greaterThan(100);
    expect(graph.get('src/herald.ts')).to.include('api/index.ts');
  });

  it('has no cycle, type-only imports included', () => {
    expect(cycles(graph)).to.deep.equal([]);
  });

  it('keeps domain/ pure: it imports nothing outside domain/', () => {
    const out = arrows(graph).filter(({ from, to }) => layerOf(from) === 'domain' && layerOf(to) !== 'domain');
    expect(out).to.deep.equal([]);
  });

  it('points down: src/ reaches api/ and projections/ only through their entry points, from the composition roots', () => {
    const up = arrows(graph).filter(
      ({ from, to }) => layerOf(from) === 'src' && ['api', 'projections'].includes(layerOf(to)),
    );
    const allowed = up.filter(
      ({ from, to }) =>
        ['src/herald.ts', 'src/cli.ts'].includes(from) && ['api/index.ts', 'projections/index.ts'].includes(to),
    );
    expect(up).to.deep.equal(allowed);
    const intoApi = arrows(graph).filter(({ from, to }) => layerOf(from) === 'projections' && layerOf(to) === 'api');
    expect(intoApi).to.deep.equal([]);
  });
});
