/**
 * A fragment bomb (issue 21 item 2): `levels` fragments on Viewer, each spreading the next `spreads` times;
 * 1 KB at 25 × 2. `leaf: 'undefined'` ends the chain in a spread of a fragment the document does not
 * define (it measured nothing, so the bomb passed every limit and froze a later walk).
 */
export function fragmentBomb(levels: number, spreads: number, leaf: 'fields' | 'undefined' = 'fields'): string {
  const fragments = Array.from(
    { length: levels },
    (_, i) =>
      `fragment F${i} on Viewer { ${Array(spreads)
        .fill(`...F${i + 1}`)
        .join(' ')} }`,
  );
  return [
    `{ me { ...F0 } }`,
    ...fragments,
    `fragment F${levels} on Viewer { ${leaf === 'fields' ? 'appId appId' : '...Nope'} }`,
  ].join('\n');
}
