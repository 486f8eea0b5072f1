import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { renderCatalogue } from '../domain/eventCatalogue';

/**
 * Writes docs/events.md from the event codecs and their catalogue entries (domain/eventCatalogue.ts).
 * With `--check` it writes nothing and exits 1 when the file is not what the codecs make of it.
 */
const target = join(__dirname, '..', 'docs', 'events.md');
const rendered = renderCatalogue();

if (process.argv.includes('--check')) {
  const current = readCurrent();
  if (current !== rendered) {
    console.error('docs/events.md is out of date: run npm run docs:events');
    process.exit(1);
  }
  console.log('docs/events.md is up to date');
} else {
  writeFileSync(target, rendered);
  console.log('wrote docs/events.md');
}

function readCurrent(): string | undefined {
  try {
    return readFileSync(target, 'utf8');
  } catch (error) {
    // A missing file is out of date like any other.
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
