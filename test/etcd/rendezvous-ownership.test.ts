import { randomUUID } from "node:crypto";
import { describe, expect, it } from "vitest";
import { RendezvousOwnership } from "../../src/store/etcd/rendezvous-ownership.js";

describe("RendezvousOwnership", () => {
  const members = ["r1", "r2", "r3"];
  const ids = Array.from({ length: 3000 }, () => randomUUID());

  function replicas(list: string[]): RendezvousOwnership[] {
    return list.map((self) => {
      const o = new RendezvousOwnership(self);
      o.setMembers(list);
      return o;
    });
  }

  it("gives every instance exactly one owner among replicas that agree on membership", () => {
    const rs = replicas(members);
    for (const id of ids) expect(rs.filter((r) => r.owns(id))).toHaveLength(1);
    const shares = rs.map((r) => ids.filter((id) => r.owns(id)).length);
    for (const share of shares) expect(share).toBeGreaterThan(ids.length / 3 * 0.8);
  });

  it("moves only the departed member's instances when one leaves", () => {
    const before = new Map(ids.map((id) => [id, replicas(members)[0]!.ownerOf(id)]));
    const after = replicas(["r1", "r2"])[0]!;
    for (const id of ids) {
      if (before.get(id) !== "r3") expect(after.ownerOf(id)).toBe(before.get(id));
      else expect(["r1", "r2"]).toContain(after.ownerOf(id));
    }
  });

  it("notifies on a real membership change only", () => {
    const o = new RendezvousOwnership("r1");
    let calls = 0;
    o.onChange(() => calls++);
    o.setMembers(["r1", "r2"]);
    o.setMembers(["r2", "r1"]);
    o.setMembers(["r2"]); // r1 is always a member of its own view
    expect(calls).toBe(1);
    expect(o.memberList()).toEqual(["r1", "r2"]);
  });
});
