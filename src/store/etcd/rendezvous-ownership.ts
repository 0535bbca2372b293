import { createHash } from "node:crypto";
import type { ProbeOwnership } from "../../registry/registry-store.js";

/**
 * Splits probing between live replicas by rendezvous (highest random weight)
 * hashing: each instance goes to the member with the highest hash of
 * (member, instance). Every replica computes the same owner from the same
 * member set, and a member joining or leaving moves only its own share.
 */
export class RendezvousOwnership implements ProbeOwnership {
  private readonly members = new Set<string>();
  private readonly listeners: (() => void)[] = [];

  constructor(readonly self: string) {
    this.members.add(self);
  }

  /** Replaces the member set (this replica always counts as a member). */
  setMembers(members: Iterable<string>): void {
    const next = new Set(members);
    next.add(this.self);
    if (next.size === this.members.size && [...next].every((m) => this.members.has(m))) return;
    this.members.clear();
    for (const m of next) this.members.add(m);
    for (const listener of this.listeners) listener();
  }

  memberList(): string[] {
    return [...this.members].sort();
  }

  owns(instanceId: string): boolean {
    return this.ownerOf(instanceId) === this.self;
  }

  ownerOf(instanceId: string): string {
    let best = this.self;
    let bestWeight = -1n;
    for (const member of this.members) {
      const weight = createHash("sha256").update(member).update("\0").update(instanceId).digest().readBigUInt64BE(0);
      if (weight > bestWeight || (weight === bestWeight && member < best)) {
        best = member;
        bestWeight = weight;
      }
    }
    return best;
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }
}
