import { BlockList, isIP } from "node:net";
import { ipv4FromGroups, ipv6Groups, isIpv4Mapped } from "../net/ip-address.js";

/**
 * Addresses never probed unless the operator says otherwise: link-local
 * (where cloud metadata services answer), unspecified ("this host" on most
 * kernels: 0.0.0.0 reaches local listeners), multicast, the reserved
 * block with the limited broadcast address (255.255.255.255), and AWS's IPv6
 * metadata address (a unique-local one, so not covered by link-local).
 * Loopback and private ranges stay allowed: local development and most
 * fleets live there.
 */
export const DEFAULT_PROBE_DENY_CIDRS = "0.0.0.0/8,::/128,169.254.0.0/16,fe80::/10,224.0.0.0/4,240.0.0.0/4,ff00::/8,fd00:ec2::254/128";

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
    const version = isIP(bare);
    if (version === 0) return false;
    if (version === 4) return this.judgeIpv4(bare);
    const groups = ipv6Groups(bare) as number[]; // isIP said IPv6
    if (isIpv4Mapped(groups)) return this.judgeIpv4(ipv4FromGroups(groups[6] as number, groups[7] as number));
    // An IPv6 address that a translator on the path (NAT64, 6to4) or an old
    // stack turns into an IPv4 one must pass as that IPv4 address too.
    const carried = translatedIpv4(groups);
    if (carried !== undefined && !this.judgeIpv4(carried)) return false;
    // Connecting to :: reaches ::1 (Linux), so it must pass as loopback too.
    if (groups.every((g) => g === 0) && !this.judge("::1", "ipv6")) return false;
    return this.judge(bare, "ipv6");
  }

  /** Connecting to 0.0.0.0 reaches this host (Linux: 127.0.0.1), so it must pass as loopback too. */
  private judgeIpv4(ip: string): boolean {
    return this.judge(ip, "ipv4") && (ip !== "0.0.0.0" || this.judge("127.0.0.1", "ipv4"));
  }

  private judge(ip: string, family: "ipv4" | "ipv6"): boolean {
    if (this.#deny.check(ip, family)) return false;
    return this.#allow === undefined || this.#allow.check(ip, family);
  }
}

/**
 * The IPv4 address carried by an IPv6 one (as its groups) that reaches it
 * through a translation: IPv4-compatible (::a.b.c.d, deprecated but still
 * parsed), IPv4-translated (::ffff:0:a.b.c.d), NAT64 (64:ff9b::a.b.c.d) and
 * 6to4 (2002:aabb:ccdd::).
 */
function translatedIpv4(h: readonly number[]): string | undefined {
  const zero = (from: number, to: number) => h.slice(from, to).every((x) => x === 0);
  if (zero(0, 6) && !(h[6] === 0 && (h[7] as number) <= 1)) return ipv4FromGroups(h[6] as number, h[7] as number); // not :: or ::1
  if (zero(0, 4) && h[4] === 0xffff && h[5] === 0) return ipv4FromGroups(h[6] as number, h[7] as number);
  if (h[0] === 0x64 && h[1] === 0xff9b && zero(2, 6)) return ipv4FromGroups(h[6] as number, h[7] as number);
  if (h[0] === 0x2002) return ipv4FromGroups(h[1] as number, h[2] as number);
  return undefined;
}
