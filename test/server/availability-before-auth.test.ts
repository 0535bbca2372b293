import { randomBytes, randomUUID } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { MemoryStore } from "../../src/store/memory-store.js";
import { callError, instanceAuth, register, startHarness, type Harness } from "../support/registry-harness.js";

/**
 * A real MemoryStore that can report its backend lost, as a shared store
 * (etcd) does when this replica is cut off: the fault enters at the storage
 * boundary, the way a proxy injects it on the network.
 */
class ReachableStore extends MemoryStore {
  private readonly listeners: ((available: boolean, reason: string) => void)[] = [];

  onAvailabilityChange(listener: (available: boolean, reason: string) => void): void {
    this.listeners.push(listener);
  }

  reachable(available: boolean): void {
    for (const l of this.listeners) l(available, available ? "backend reachable" : "backend unreachable");
  }
}

describe("a replica that lost its store answers UNAVAILABLE before it checks credentials", () => {
  let h: Harness | undefined;
  afterEach(async () => {
    await h?.close();
    h = undefined;
  });

  it("does not call an instance registered elsewhere unknown (UNAUTHENTICATED) while it cannot see the store", async () => {
    const store = new ReachableStore();
    h = await startHarness({ registry: { store } });
    const known = await register(h, "api", 8080);
    store.reachable(false);
    // An instance this replica has never seen (registered on another replica meanwhile),
    // and one it knows: either way the caller is told to try another replica, not that it is lost.
    const elsewhere = instanceAuth(randomUUID(), randomBytes(32).toString("base64url"));
    for (const md of [elsewhere, instanceAuth(known.id, known.token)]) {
      const byType = await callError(h.client, h.client.getByType, { serviceType: "api", includeUnhealthy: false, includeDraining: false, selector: {} }, md);
      expect(byType.code, byType.details).toBe(status.UNAVAILABLE);
      const one = await callError(h.client, h.client.getInstance, { instanceId: known.id }, md);
      expect(one.code, one.details).toBe(status.UNAVAILABLE);
    }
    store.reachable(true);
    const again = await callError(h.client, h.client.getByType, { serviceType: "api", includeUnhealthy: false, includeDraining: false, selector: {} }, elsewhere);
    expect(again.code).toBe(status.UNAUTHENTICATED);
  });
});
