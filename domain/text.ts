/**
 * Text herald stores must be text PostgreSQL and JSON keep as given: no NUL or other C0 control
 * characters (TAB, LF and CR are fine), and no lone UTF-16 surrogates. PostgreSQL refuses NUL in text
 * and a lone surrogate in jsonb; refused at every boundary, they can neither fail a request with a 500
 * nor reach the event store and stall a projection that cannot store them.
 */
const UNSTORABLE = /[\u0000-\u0008\u000B\u000C\u000E-\u001F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A UUID as herald's ids are written (any version, either case). */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isStorableText(text: string): boolean {
  return !UNSTORABLE.test(text);
}

/**
 * A failure's text as an event records it: one line, storable, at most `maxLength` characters. A failure
 * must always be recordable (refusing it would leave its work due, and tried again at once), so its text
 * is made fit rather than refused.
 */
export function recordableError(error: string, maxLength: number): string {
  const oneLine = String(error)
    .replace(/[\u0000-\u001F\u007F]+/g, ' ')
    .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, '\uFFFD')
    .replace(/\s+/g, ' ')
    .trim();
  const chars = Array.from(oneLine);
  const bounded = chars.length > maxLength ? `${chars.slice(0, maxLength - 1).join('')}…` : oneLine;
  return bounded.length > 0 ? bounded : 'unknown error';
}
