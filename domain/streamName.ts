/**
 * The name of a stream identified by several ids (DESIGN.md: `inbox-<appId>.<userId>`): the ids joined
 * with `.`, every id but the last with `%` and `.` percent-encoded (`%25`, `%2E`). The first `.` after
 * the aggregate's `-` therefore ends the first id, and so on; the last id is the rest, as given. So two
 * id lists never share a name — app `camel.x` with user `bob` is `inbox-camel%2Ex.bob`, app `camel` with
 * user `x.bob` is `inbox-camel.x.bob` — and every stream whose leading ids hold neither character keeps
 * the name it always had. The last id is the one left as given because it is the one that holds dots in
 * practice (user ids are often e-mail addresses, datahub's seed's own example), whose streams exist;
 * app ids with a dot are rare. (Decision recorded in docs/architecture.md, issue 21 item 5.)
 */
export function streamNameOf(aggregate: string, ...ids: readonly [string, ...string[]]): string {
  const last = ids.length - 1;
  return `${aggregate}-${ids.map((id, i) => (i < last ? id.replace(/%/g, '%25').replace(/\./g, '%2E') : id)).join('.')}`;
}
