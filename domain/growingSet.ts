/**
 * An immutable set of strings that only grows, for a decider's state (who has acknowledged or read):
 * adding is O(1) and shares what was there, where copying a Set per event made folding n such events
 * O(n²) (a 1,000-recipient message's last acknowledgement folded 500,000 insertions). `has` walks it:
 * O(n), once per decision.
 */
export type GrowingSet = { readonly item: string; readonly rest: GrowingSet } | null;

export const EMPTY: GrowingSet = null;

export const adding = (set: GrowingSet, item: string): GrowingSet => ({ item, rest: set });

export function has(set: GrowingSet, item: string): boolean {
  for (let node = set; node !== null; node = node.rest) if (node.item === item) return true;
  return false;
}
