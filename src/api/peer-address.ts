import { isIP } from "node:net";
import { ipv6Groups, mappedIpv4 } from "../net/ip-address.js";

/**
 * The caller's IP from a grpc-js peer string ("1.2.3.4:5678", "::1:5678",
 * "[::1]:5678"), with IPv4-mapped IPv6 unwrapped; undefined when unknown.
 */
export function peerHost(peer: string): string | undefined {
  let host = peer;
  const bracketed = /^\[([^\]]+)\](?::\d+)?$/.exec(peer);
  if (bracketed) host = bracketed[1] as string;
  else if (isIP(peer) === 0) host = peer.slice(0, Math.max(peer.lastIndexOf(":"), 0));
  return isIP(host) === 0 ? undefined : (mappedIpv4(host) ?? host);
}

/**
 * The group an address counts in (failed authentications, connections per address): an IPv4 address itself, an IPv6
 * address's /64 (`2001:db8:1:2::/64`), "unknown" when the transport knows none.
 */
export function addressGroup(peerHost: string | undefined): string {
  if (peerHost === undefined) return "unknown";
  const host = peerHost.replace(/%.*$/, "");
  if (isIP(host) !== 6) return host;
  const groups = ipv6Groups(host);
  return groups ? `${groups.slice(0, 4).map((g) => g.toString(16)).join(":")}::/64` : host;
}
