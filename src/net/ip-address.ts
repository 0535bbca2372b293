import { isIPv6 } from "node:net";

/**
 * The eight 16-bit groups of an IPv6 address, in any spelling node:net
 * accepts: compressed (`::`), with leading zeros, with a dotted IPv4 tail
 * (`::ffff:192.0.2.1`), with a zone id (`fe80::1%eth0`, dropped).
 * Undefined when `address` is not IPv6. The one IPv6 parser of the server:
 * per-address counting (`addressGroup`) and the probe-target policy read
 * addresses through it.
 *
 * @example ipv6Groups("64:ff9b::192.0.2.1") // [0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x201]
 */
export function ipv6Groups(address: string): number[] | undefined {
  if (!isIPv6(address)) return undefined;
  const zone = address.indexOf("%");
  const bare = zone === -1 ? address : address.slice(0, zone);
  // Valid from here on: at most one "::", hex groups, a dotted tail only last.
  const gap = bare.indexOf("::");
  if (gap === -1) return groupsOf(bare);
  const head = groupsOf(bare.slice(0, gap));
  const tail = groupsOf(bare.slice(gap + 2));
  return [...head, ...Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

/**
 * The IPv4 address an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`, in any
 * spelling, hex `::ffff:c000:201` included) stands for; undefined for any
 * other address.
 *
 * @example mappedIpv4("::ffff:192.0.2.1") // "192.0.2.1"
 */
export function mappedIpv4(address: string): string | undefined {
  if (!address.includes(":")) return undefined; // IPv4, or a name
  const g = ipv6Groups(address);
  return g !== undefined && isIpv4Mapped(g) ? ipv4FromGroups(g[6] as number, g[7] as number) : undefined;
}

/** True for the groups of an IPv4-mapped address (::ffff:0:0/96); its IPv4 address is in groups 6 and 7. */
export function isIpv4Mapped(groups: readonly number[]): boolean {
  return groups[5] === 0xffff && groups[0] === 0 && groups[1] === 0 && groups[2] === 0 && groups[3] === 0 && groups[4] === 0;
}

/** The dotted IPv4 address two 16-bit groups carry: `ipv4FromGroups(0xc000, 0x201)` is "192.0.2.1". */
export function ipv4FromGroups(high: number, low: number): string {
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`;
}

/** The groups of one side of a "::" (or of a whole address without one); "" has none. */
function groupsOf(part: string): number[] {
  if (part === "") return [];
  const groups: number[] = [];
  for (const piece of part.split(":")) {
    if (piece.includes(".")) {
      const [a, b, c, d] = piece.split(".").map(Number) as [number, number, number, number];
      groups.push((a << 8) | b, (c << 8) | d);
    } else {
      groups.push(parseInt(piece, 16));
    }
  }
  return groups;
}
