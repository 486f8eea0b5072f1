/**
 * Text herald stores must be text PostgreSQL and JSON keep as given: no NUL or other C0 control
 * characters (TAB, LF and CR are fine), and no lone UTF-16 surrogates. PostgreSQL refuses NUL in text
 * and a lone surrogate in jsonb; refused at every boundary, they can neither fail a request with a 500
 * nor reach the event store and stall a projection that cannot store them.
 */
const UNSTORABLE = /[\u0000-\u0008\u000B\u000C\u000E-\u001F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

export function isStorableText(text: string): boolean {
  return !UNSTORABLE.test(text);
}
