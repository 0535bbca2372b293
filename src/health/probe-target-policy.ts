import { BlockList, isIP } from "node:net";

/**
 * Addresses never probed unless the operator says otherwise: link-local
 * (where cloud metadata services answer), unspecified ("this host" on most
 * kernels: 0.0.0.0 reaches local listeners), multicast, and AWS's IPv6
 * metadata address (a unique-local one, so not covered by link-local).
 * Loopback and private ranges stay allowed: local development and most
 * fleets live there.
 */
export const DEFAULT_PROBE_DENY_CIDRS = "0.0.0.0/8,::/128,169.254.0.0/16,fe80::/10,224.0.0.0/4,ff00::/8,fd00:ec2::254/128";

/** The reason a probe fails with when its target (or what its name resolves to) is denied. */
export const PROBE_TARGET_DENIED = "probe target denied by policy";

interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: "ipv4" | "ipv6";
}

/**
 * Parses a comma-separated CIDR list ("10.0.0.0/8, fd00::/8, 192.0.2.7");
 * an address without a prefix is one host. `none` (or an empty string) is
 * the empty list. Throws an Error naming the first bad entry.
 */
export function parseCidrList(raw: string): Cidr[] {
  const text = raw.trim();
  if (text === "" || text.toLowerCase() === "none") return [];
  return text.split(",").map((entry) => {
    const item = entry.trim();
    const slash = item.indexOf("/");
    const address = slash === -1 ? item : item.slice(0, slash);
    const version = isIP(address);
    if (version === 0 || address.includes("%")) throw new Error(`${JSON.stringify(item.slice(0, 80))} is not an IP address or CIDR range`);
    const max = version === 4 ? 32 : 128;
    const prefixText = slash === -1 ? String(max) : item.slice(slash + 1);
    const prefix = Number(prefixText);
    if (!/^\d{1,3}$/.test(prefixText) || prefix > max) {
      throw new Error(`${JSON.stringify(item.slice(0, 80))} has a prefix length outside 0-${max}`);
    }
    return { address, prefix, family: version === 4 ? "ipv4" : "ipv6" };
  });
}

/** Options of a {@link ProbeTargetPolicy}: CIDR lists as `parseCidrList` reads them. */
export interface ProbeTargetPolicyOptions {
  /** When not empty, only addresses in these ranges are probed. Default: empty (any address not denied). */
  readonly allow?: string;
  /** Addresses in these ranges are never probed, whatever `allow` says. Default {@link DEFAULT_PROBE_DENY_CIDRS}. */
  readonly deny?: string;
}

/**
 * Which addresses the registry may send health probes to: a guard against a
 * key holder aiming the prober at internal hosts (blind SSRF).
 *
 * Deny wins: an address in the deny list is refused even when the allow list
 * covers it too; a non-empty allow list then limits probing to its ranges.
 * To lift one of the default denials, set a deny list without it. An
 * IPv4-mapped IPv6 address (::ffff:169.254.169.254) is judged as the IPv4
 * address it carries, so the mapped spelling is no way around the list.
 *
 * The policy judges addresses only; names are resolved by the prober at
 * probe time and each resolved address is judged there (see HttpProber).
 *
 * @example
 * const policy = new ProbeTargetPolicy({ allow: "10.0.0.0/8" });
 * policy.allows("10.1.2.3"); // true
 * policy.allows("169.254.169.254"); // false: denied by default
 * policy.allows("192.0.2.1"); // false: outside the allow list
 */
export class ProbeTargetPolicy {
  readonly #deny = new BlockList();
  readonly #allow: BlockList | undefined;

  constructor(options: ProbeTargetPolicyOptions = {}) {
    for (const c of parseCidrList(options.deny ?? DEFAULT_PROBE_DENY_CIDRS)) this.#deny.addSubnet(c.address, c.prefix, c.family);
    const allow = parseCidrList(options.allow ?? "");
    if (allow.length > 0) {
      const list = new BlockList();
      for (const c of allow) list.addSubnet(c.address, c.prefix, c.family);
      this.#allow = list;
    }
  }

  /** Whether `address` (an IP literal, brackets allowed) may be probed; false for anything that is not an IP. */
  allows(address: string): boolean {
    const bare = address.startsWith("[") && address.endsWith("]") ? address.slice(1, -1) : address;
    const ip = unmapIpv4(bare);
    const version = isIP(ip);
    if (version === 0) return false;
    const family = version === 4 ? "ipv4" : "ipv6";
    if (this.#deny.check(ip, family)) return false;
    return this.#allow === undefined || this.#allow.check(ip, family);
  }
}

const MAPPED_DOTTED = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i;
const MAPPED_HEX = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i;

/** `::ffff:a.b.c.d` (in any spelling) as `a.b.c.d`; anything else unchanged. */
function unmapIpv4(address: string): string {
  if (isIP(address) !== 6) return address;
  // The URL parser writes IPv6 in one canonical form (0:0:0:0:0:ffff:... becomes ::ffff:hhhh:hhhh).
  const ip = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  const dotted = MAPPED_DOTTED.exec(ip);
  if (dotted) return dotted[1] as string;
  const hex = MAPPED_HEX.exec(ip);
  if (!hex) return ip;
  const high = parseInt(hex[1] as string, 16);
  const low = parseInt(hex[2] as string, 16);
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}
