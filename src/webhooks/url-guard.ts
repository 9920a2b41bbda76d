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

const blocked = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) blocked.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) blocked.addSubnet(net, bits, 'ipv6');

export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return false;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped?.[1]) return blocked.check(mapped[1], 'ipv4');
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
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (!allowPrivate && (host === 'localhost' || host.endsWith('.localhost') || isPrivateAddress(host))) {
    throw new BadInputError('url must name a public address (WEBHOOK_ALLOW_PRIVATE_ADDRESSES is off)', 'url');
  }
  return url.toString();
}

/** Before an attempt: refuses a host that resolves to a private address (null: allowed). */
export async function privateTargetReason(url: string, allowPrivate: boolean): Promise<string | null> {
  if (allowPrivate) return null;
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host) ? [{ address: host }] : await lookup(host, { all: true });
  const bad = addresses.find((a) => isPrivateAddress(a.address));
  return bad ? `${host} resolves to a non-public address (${bad.address}); refused` : null;
}
