import { isIP } from "node:net";

/**
 * The caller's IP from a grpc-js peer string ("1.2.3.4:5678", "::1:5678",
 * "[::1]:5678"), with IPv4-mapped IPv6 unwrapped; undefined when unknown.
 */
export function peerHost(peer: string): string | undefined {
  let host = peer;
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(peer);
  if (bracketed) host = bracketed[1] as string;
  else if (isIP(peer) === 0) host = peer.slice(0, Math.max(peer.lastIndexOf(":"), 0));
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  if (mapped) host = mapped[1] as string;
  return isIP(host) === 0 ? undefined : host;
}

/**
 * The group an address counts in (failed authentications, connections per address): an IPv4 address itself, an IPv6
 * address's /64 (`2001:db8:1:2::/64`), "unknown" when the transport knows none.
 */
export function addressGroup(peerHost: string | undefined): string {
  if (peerHost === undefined) return "unknown";
  const host = peerHost.replace(/%.*$/, "");
  if (isIP(host) !== 6) return host;
  const hextets = expandIpv6(host);
  return hextets ? `${hextets.slice(0, 4).join(":")}::/64` : host;
}

/** The eight hextets of an IPv6 address, without leading zeros; undefined when malformed. */
function expandIpv6(address: string): string[] | undefined {
  let text = address.toLowerCase();
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, dotted.index)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head = "", tail] = text.split("::");
  const left = head === "" ? [] : head.split(":");
  const right = tail === undefined || tail === "" ? [] : tail.split(":");
  const fill = tail === undefined ? 0 : 8 - left.length - right.length;
  const all = [...left, ...Array<string>(fill).fill("0"), ...right];
  if (all.length !== 8) return undefined;
  return all.map((h) => Number.parseInt(h, 16).toString(16));
}
