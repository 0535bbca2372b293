import { isIP } from "node:net";
import { ipv6Groups, isIpv4Mapped, ipv4FromGroups } from "../net/ip-address.js";

/**
 * The host as address identity compares it: an IPv4 literal as it is, a name
 * in lower case without a trailing dot, an IPv6 literal as its eight groups
 * in one spelling ("0:0::1" and "::1" are one address), an IPv4-mapped one
 * as its IPv4 address. Answers `host`
 * itself (the same string) when it is already canonical, so a table keyed by
 * it keeps no second copy.
 */
export function canonicalHost(host: string): string {
  const family = isIP(host);
  if (family === 4) return host;
  if (family === 6) {
    const groups = ipv6Groups(host) as number[];
    // An IPv4-mapped address is that IPv4 address: "::ffff:10.0.0.1" is 10.0.0.1.
    if (isIpv4Mapped(groups)) return ipv4FromGroups(groups[6] as number, groups[7] as number);
    const full = groups.map((g) => g.toString(16)).join(":");
    return full === host ? host : full;
  }
  const name = (host.endsWith(".") ? host.slice(0, -1) : host).toLowerCase();
  return name === host ? host : name;
}

/** One key per (service type, host, port): instances with equal keys are one address. */
export function addressKey(serviceType: string, host: string, port: number): string {
  return `${serviceType} ${canonicalHost(host)} ${port}`;
}
