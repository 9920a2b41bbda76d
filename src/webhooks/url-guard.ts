/**
 * Which webhook URLs the gateway POSTs to: http(s) only, and (unless
 * WEBHOOK_ALLOW_PRIVATE_ADDRESSES) never loopback, private, link-local or
 * other non-public addresses, checked on the URL at creation and on the
 * resolved addresses before each attempt, so a tenant cannot aim the
 * gateway at its own network (SSRF). Tests and single-host setups that
 * deliver to localhost turn the guard off.
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { BadInputError } from '../errors';

const PRIVATE_IPV4: readonly (readonly [string, number])[] = [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
];

const blocked = new BlockList();
for (const [net, bits] of PRIVATE_IPV4) {
  blocked.addSubnet(net, bits, 'ipv4');
  // NAT64's well-known prefix (RFC 6052) is judged by the IPv4 address it embeds: DNS64 networks
  // synthesise it for every IPv4-only host, public ones included, so refusing it outright would
  // break webhooks on IPv6-only clusters. (IPv4-mapped ::ffff:a.b.c.d is matched by BlockList itself.)
  blocked.addSubnet(`64:ff9b::${net}`, 96 + bits, 'ipv6');
}
for (const [net, bits] of [
  ['fc00::', 7], ['fe80::', 10], ['ff00::', 8],
  // Forms embedding an IPv4 address that nothing public needs as a webhook target, refused
  // whatever they embed: IPv4-compatible (deprecated, RFC 4291; :: and ::1 lie inside it),
  // IPv4-translated (SIIT, RFC 6145), local-use NAT64 (RFC 8215: not globally reachable), Teredo
  // (RFC 4380: a client tunnel) and 6to4 (deprecated, RFC 7526; a relay would carry the request
  // to the embedded, maybe private, address).
  ['::', 96], ['::ffff:0:0:0', 96], ['64:ff9b:1::', 48], ['2001::', 32], ['2002::', 16],
  // Discard-only and documentation ranges: never a real receiver.
  ['100::', 64], ['2001:db8::', 32],
] as const) blocked.addSubnet(net, bits, 'ipv6');

export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  return blocked.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** The normalized URL, or BAD_USER_INPUT (field url). */
export function validateWebhookUrl(value: string, allowPrivate: boolean): string {
  let url: URL;
  try {
    url = new URL(value.trim());
  } catch {
    throw new BadInputError('url must be an absolute http:// or https:// URL', 'url');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new BadInputError('url must use http or https', 'url');
  if (url.username || url.password) throw new BadInputError('url must not carry credentials; the signature authenticates deliveries', 'url');
  if (value.length > 2048) throw new BadInputError('url must be at most 2048 characters', 'url');
  // A trailing dot ("localhost.") names the same host.
  const host = url.hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '');
  if (!allowPrivate && (host === 'localhost' || host.endsWith('.localhost') || isPrivateAddress(host))) {
    throw new BadInputError('url must name a public address (WEBHOOK_ALLOW_PRIVATE_ADDRESSES is off)', 'url');
  }
  return url.toString();
}

/** A delivery target refused before any connection: its detail (the resolved address) is for the operator's log only. */
export class PrivateTargetError extends Error {
  constructor(readonly host: string, readonly address: string) {
    super(`${host} resolves to a non-public address (${address}); refused`);
    this.name = 'PrivateTargetError';
  }
}

/** Before an attempt: throws PrivateTargetError for a host that resolves to a private address (and the lookup's own error when it fails). */
export async function assertPublicTarget(url: string, allowPrivate: boolean): Promise<void> {
  if (allowPrivate) return;
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [{ address: host }] : await lookup(host, { all: true });
  const bad = addresses.find((a) => isPrivateAddress(a.address));
  if (bad) throw new PrivateTargetError(host, bad.address);
}
