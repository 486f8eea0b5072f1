/** A fragment bomb (issue 21 item 2): `levels` fragments on Viewer, each spreading the next `spreads` times; 1 KB at 25 × 2. */
export function fragmentBomb(levels: number, spreads: number): string {
  const fragments = Array.from({ length: levels }, (_, i) => `fragment F${i} on Viewer { ${Array(spreads).fill(`...F${i + 1}`).join(' ')} }`);
  return [`{ me { ...F0 } }`, ...fragments, `fragment F${levels} on Viewer { appId appId }`].join('\n');
}
