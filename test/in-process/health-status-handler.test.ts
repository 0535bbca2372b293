import { describe, expect, it } from "vitest";
import { HealthStatusHandler } from "../../src/registry/health-status-handler.js";
import type { Health, StoredInstance } from "../../src/registry/types.js";

function at(health: Health, updatedAt = 0): StoredInstance {
  return { id: "i", serviceType: "api", host: "10.0.0.1", port: 80, metadata: {}, healthCheckPath: "/health", health, draining: false, drainingSince: 0, registeredAt: 0, updatedAt, revision: 1, tokenHash: "h" };
}

describe("HealthStatusHandler", () => {
  it("turns an instance UNHEALTHY after unhealthyThreshold failures in a row, with the last failure's reason", () => {
    const handler = new HealthStatusHandler({ unhealthyThreshold: 3, healthyThreshold: 1, deregisterAfter: 0 });
    expect(handler.record(at("healthy"), false, 10, "HTTP 503")).toBeUndefined();
    expect(handler.record(at("healthy"), false, 20, "HTTP 503")).toBeUndefined();
    expect(handler.record(at("healthy"), false, 30, "timeout")).toEqual({ op: "setHealth", id: "i", health: "unhealthy", at: 30, failureReason: "timeout" });
  });

  it("starts a streak again when a result of the other kind comes between", () => {
    const handler = new HealthStatusHandler({ unhealthyThreshold: 2, healthyThreshold: 2, deregisterAfter: 0 });
    expect(handler.record(at("healthy"), false, 1, "x")).toBeUndefined();
    expect(handler.record(at("healthy"), true, 2)).toBeUndefined();
    expect(handler.record(at("healthy"), false, 3, "x")).toBeUndefined();
    expect(handler.record(at("healthy"), false, 4, "x")).toMatchObject({ health: "unhealthy" });
    expect(handler.record(at("unhealthy"), true, 5)).toBeUndefined();
    expect(handler.record(at("unhealthy"), true, 6)).toEqual({ op: "setHealth", id: "i", health: "healthy", at: 6 });
  });

  it("removes an instance UNHEALTHY for deregisterAfter at its next failure, and never with 0", () => {
    const handler = new HealthStatusHandler({ unhealthyThreshold: 1, healthyThreshold: 1, deregisterAfter: 1000 });
    expect(handler.record(at("unhealthy", 5000), false, 5999, "x")).toBeUndefined();
    expect(handler.record(at("unhealthy", 5000), false, 6000, "x")).toEqual({ op: "remove", id: "i", reason: "health_check_expired", at: 6000 });
    // A pass is never a removal, however long the instance was unhealthy.
    const patient = new HealthStatusHandler({ unhealthyThreshold: 1, healthyThreshold: 3, deregisterAfter: 1000 });
    expect(patient.record(at("unhealthy", 0), true, 99_999)).toBeUndefined();
    const never = new HealthStatusHandler({ unhealthyThreshold: 1, healthyThreshold: 1, deregisterAfter: 0 });
    expect(never.record(at("unhealthy", 0), false, 10 ** 12, "x")).toBeUndefined();
  });

  it("forgets a streak: counting starts afresh", () => {
    const handler = new HealthStatusHandler({ unhealthyThreshold: 2, healthyThreshold: 1, deregisterAfter: 0 });
    handler.record(at("healthy"), false, 1, "x");
    handler.forget("i");
    expect(handler.record(at("healthy"), false, 2, "x")).toBeUndefined();
  });
});
