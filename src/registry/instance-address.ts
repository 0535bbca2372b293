import { isIP } from "node:net";

/**
 * The host as address identity compares it: an IPv4 literal as it is, a name
 * in lower case without a trailing dot, an IPv6 literal in its one
 * compressed form ("0:0::1" and "::1" are one address). Answers `host`
 * itself (the same string) when it is already canonical, so a table keyed by
 * it keeps no second copy.
 */
export function canonicalHost(host: string): string {
  const family = isIP(host);
  if (family === 4) return host;
  if (family === 6) {
    const compressed = new URL(`http://[${host}]/`).hostname.slice(1, -1);
    // An IPv4-mapped address is that IPv4 address: "::ffff:10.0.0.1" is 10.0.0.1.
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(compressed);
    if (mapped) {
      const [hi, lo] = [parseInt(mapped[1] as string, 16), parseInt(mapped[2] as string, 16)];
      return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
    }
    return compressed === host ? host : compressed;
  }
  const name = (host.endsWith(".") ? host.slice(0, -1) : host).toLowerCase();
  return name === host ? host : name;
}

/** One key per (service type, host, port): instances with equal keys are one address. */
export function addressKey(serviceType: string, host: string, port: number): string {
  return `${serviceType} ${canonicalHost(host)} ${port}`;
}
