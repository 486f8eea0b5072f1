/**
 * Text herald stores must be text PostgreSQL and JSON keep as given: no NUL or other C0 control
 * characters (TAB, LF and CR are fine), and no lone UTF-16 surrogates. PostgreSQL refuses NUL in text
 * and a lone surrogate in jsonb; refused at every boundary, they can neither fail a request with a 500
 * nor reach the event store and stall a projection that cannot store them.
 */
const UNSTORABLE =
  /[\u0000-\u0008\u000B\u000C\u000E-\u001F]|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** A UUID as herald's ids are written (any version, either case). */
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isStorableText(text: string): boolean {
  return !UNSTORABLE.test(text);
}

/** A lone UTF-16 surrogate: with the `u` flag a surrogate pair is one code point, so only a lone one is `\p{Cs}`. */
const LONE_SURROGATE = /\p{Cs}/u;
const LONE_SURROGATES = /\p{Cs}/gu;
const MAX_PATH_KEYS = 16;

/**
 * Where decoded input (a JSON body, a query string, GraphQL variables, a socket frame) holds text that is
 * not Unicode — a string or an object key with a lone surrogate, which only an escape such as JSON's
 * `\ud800` can make: its path (`data.items[2]`, `''` for the input itself), or undefined when there is
 * none. Such text cannot be encoded as UTF-8 (uuid v5 throws on it, PostgreSQL refuses it in jsonb), so
 * every boundary refuses it as the client's bad input, once, on the whole input, before any field is
 * read (`notUnicode` says so). Walks with a stack of its own: JSON may nest deeper than the call stack.
 */
export function illFormedTextAt(input: unknown): string | undefined {
  interface Node {
    readonly value: unknown;
    readonly key?: string | number;
    readonly parent?: Node;
  }
  // The path from the root, its first MAX_PATH_KEYS keys: a message stays small however deep the input.
  const pathOf = (node: Node | undefined, key?: string | number): string => {
    const keys: Array<string | number> = key === undefined ? [] : [key];
    for (let at = node; at?.key !== undefined; at = at.parent) keys.push(at.key);
    keys.reverse();
    const path = keys
      .slice(0, MAX_PATH_KEYS)
      .map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`))
      .join('');
    return keys.length > MAX_PATH_KEYS ? `${path}…` : path;
  };
  const stack: Node[] = [{ value: input }];
  for (let node = stack.pop(); node !== undefined; node = stack.pop()) {
    const { value } = node;
    if (typeof value === 'string') {
      if (LONE_SURROGATE.test(value)) return pathOf(node);
    } else if (Array.isArray(value)) {
      for (let i = value.length - 1; i >= 0; i--) stack.push({ value: value[i], key: i, parent: node });
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, child] of Object.entries(value)) {
        // The key is named with its lone surrogates made U+FFFD: the path must be text itself.
        if (LONE_SURROGATE.test(key)) return pathOf(node, key.replace(LONE_SURROGATES, '\uFFFD'));
        stack.push({ value: child, key, parent: node });
      }
    }
  }
  return undefined;
}

/** The refusal of text at `path` (illFormedTextAt), in every API's bad-input error. */
export const notUnicode = (path: string): string =>
  `${path || 'the text'}: must be Unicode text (no lone surrogates such as \\ud800)`;

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

/**
 * How many characters a limit documented in characters sees: Unicode code points, so an emoji (two UTF-16
 * units) counts once. Every "at most N characters" rule counts with this, never with `string.length`.
 */
export function characterCount(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    // A high surrogate followed by a low one is one code point: skip the low one.
    if (unit >= 0xd800 && unit <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
  }
  return count;
}
