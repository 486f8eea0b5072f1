import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';

/**
 * A column value as COPY's text format writes it: text, a boolean, an integer, a text array or NULL. No
 * JavaScript number: String() of one may be what PostgreSQL refuses or reads otherwise (1e21, NaN).
 */
export type CopyValue = string | bigint | boolean | null | readonly string[];

// What is sent to PostgreSQL at a time (COPY streams its rows; one string per row would be a write each).
const CHUNK_CHARS = 64 * 1024;

/**
 * Appends `rows` to `table` with one `COPY … FROM STDIN` (text format) on `client`: PostgreSQL parses
 * each field once, with no statement to plan and no array parameter per column to build and unnest, which
 * is what a rebuild's bulk staging costs otherwise. A value PostgreSQL refuses (a NUL in a text, say)
 * fails the whole COPY with PostgreSQL's error, as an INSERT of the same rows would.
 */
export async function copyRows(
  client: pg.PoolClient | pg.Client,
  table: string,
  columns: readonly string[],
  rows: Iterable<readonly CopyValue[]>,
): Promise<void> {
  const chunks: string[] = [];
  let chunk = '';
  for (const row of rows) {
    chunk += row.map(copyField).join('\t') + '\n';
    if (chunk.length >= CHUNK_CHARS) {
      chunks.push(chunk);
      chunk = '';
    }
  }
  if (chunk.length > 0) chunks.push(chunk);
  if (chunks.length === 0) return;
  await pipeline(Readable.from(chunks), client.query(copyFrom(`COPY ${table} (${columns.join(', ')}) FROM STDIN`)));
}

function copyField(value: CopyValue): string {
  if (value === null) return '\\N';
  if (typeof value === 'boolean') return value ? 't' : 'f';
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'string') return escapeText(value);
  return escapeText(arrayLiteral(value));
}

// COPY's text format: backslash, newline, carriage return and tab are the characters it reads specially.
const COPY_SPECIAL = /[\\\n\r\t]/g;
const COPY_ESCAPES: Record<string, string> = { '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' };

function escapeText(text: string): string {
  return text.replace(COPY_SPECIAL, (c) => COPY_ESCAPES[c]!);
}

/** An array's text form with every element quoted, so no element is read as NULL or split. */
function arrayLiteral(elements: readonly string[]): string {
  return `{${elements.map((e) => `"${e.replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;
}
