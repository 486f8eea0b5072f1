import { lookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * Where herald may connect when a client or an app names the URL (app callbacks, browsers' Web Push
 * endpoints): public addresses only, unless configured otherwise — a loopback, private, link-local or
 * otherwise non-public address would let a caller reach into the deployment's own network (SSRF).
 * Checked on the addresses a connection actually uses (`publicLookup` as the request's `lookup`), so a
 * name that resolves differently later cannot slip by; an IP literal, which skips the lookup, with
 * `isPublicAddress` before connecting.
 */

const NON_PUBLIC = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8],
  ['10.0.0.0', 8],
  ['100.64.0.0', 10],
  ['127.0.0.0', 8],
  ['169.254.0.0', 16],
  ['172.16.0.0', 12],
  ['192.0.0.0', 24],
  ['192.168.0.0', 16],
  ['198.18.0.0', 15],
  ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const)
  NON_PUBLIC.addSubnet(network, prefix, 'ipv4');
for (const [network, prefix] of [
  // IPv4-compatible (with :: and ::1) and IPv4-translated addresses: an IPv4 address inside. (IPv4-mapped
  // ones, ::ffff:0:0/96, are checked against the IPv4 rules by BlockList; as a rule here it would match
  // every IPv4 address.)
  ['::', 96],
  ['::ffff:0:0:0', 96],
  // NAT64 (RFC 6052, RFC 8215), 6to4 and Teredo: reach IPv4 addresses (a private one too) through a relay.
  ['64:ff9b::', 96],
  ['64:ff9b:1::', 48],
  ['2002::', 16],
  ['2001::', 32],
  ['100::', 64],
  ['fc00::', 7],
  ['fe80::', 10],
  ['fec0::', 10],
  ['ff00::', 8],
] as const)
  NON_PUBLIC.addSubnet(network, prefix, 'ipv6');

export function isPublicAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return !NON_PUBLIC.check(mapped, 'ipv4');
  return !NON_PUBLIC.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

/** The `code` of publicLookup's refusal. */
export const NOT_PUBLIC = 'ENOTPUBLIC';

/** dns.lookup, refusing a name any of whose addresses is not public. */
export function publicLookup(
  hostname: string,
  options: LookupOptions,
  callback: (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void,
): void {
  lookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, []);
    // The address stays out of the message: it may reach an app's admin (an event's error) and would show
    // the deployment's internal names.
    if (addresses.some((a) => !isPublicAddress(a.address)))
      return callback(Object.assign(new Error('not a public address'), { code: NOT_PUBLIC }), []);
    if (options.all) return callback(null, addresses);
    callback(null, addresses[0]!.address, addresses[0]!.family);
  });
}
