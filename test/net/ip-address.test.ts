import { describe, expect, it } from "vitest";
import { ipv4FromGroups, ipv6Groups, isIpv4Mapped, mappedIpv4 } from "../../src/net/ip-address.js";

describe("IPv6 addresses", () => {
  it("reads the eight groups of every spelling: compressed, zero-padded, dotted tail, zone id", () => {
    expect(ipv6Groups("::")).toEqual([0, 0, 0, 0, 0, 0, 0, 0]);
    expect(ipv6Groups("::1")).toEqual([0, 0, 0, 0, 0, 0, 0, 1]);
    expect(ipv6Groups("2001:db8::")).toEqual([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]);
    expect(ipv6Groups("2001:0DB8:0001:0002:ffff:ffff:ffff:ffff")).toEqual([0x2001, 0xdb8, 1, 2, 0xffff, 0xffff, 0xffff, 0xffff]);
    expect(ipv6Groups("64:ff9b::192.0.2.1")).toEqual([0x64, 0xff9b, 0, 0, 0, 0, 0xc000, 0x201]);
    expect(ipv6Groups("1:2:3:4:5:6:192.0.2.1")).toEqual([1, 2, 3, 4, 5, 6, 0xc000, 0x201]);
    expect(ipv6Groups("fe80::1%eth0")).toEqual([0xfe80, 0, 0, 0, 0, 0, 0, 1]);
  });

  it("answers undefined for what is not IPv6", () => {
    for (const a of ["192.0.2.1", "localhost", "", "1:2:3", "::1::2", "[::1]", "fe80::1%"]) expect(ipv6Groups(a), a).toBeUndefined();
  });

  it("unwraps an IPv4-mapped address in any spelling, and only that", () => {
    for (const a of ["::ffff:192.0.2.1", "::FFFF:c000:201", "0:0:0:0:0:ffff:c000:0201", "0000:0000:0000:0000:0000:ffff:192.0.2.1"]) {
      expect(mappedIpv4(a), a).toBe("192.0.2.1");
    }
    for (const a of ["192.0.2.1", "::192.0.2.1", "::ffff:0:c000:201", "64:ff9b::192.0.2.1", "::1", "api.internal"]) {
      expect(mappedIpv4(a), a).toBeUndefined();
    }
    expect(isIpv4Mapped([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x201])).toBe(true);
    expect(ipv4FromGroups(0xa9fe, 0xa9fe)).toBe("169.254.169.254");
  });
});
