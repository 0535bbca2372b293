import type { ServiceRegistry } from "../../src/registry/service-registry.js";
import type { Change } from "../../src/registry/types.js";
import { Waiter } from "./waiter.js";

/**
 * What a registry reports, recorded to await: the instances a probe passed
 * for, the times each one's probes failed, when each turned unhealthy, and
 * every committed change. `waiter` wakes at each.
 */
export function recordings(registry: ServiceRegistry) {
  const waiter = new Waiter();
  const passed = new Set<string>();
  const failedAt = new Map<string, number[]>();
  const unhealthyAt = new Map<string, number>();
  const changes: Change[] = [];
  registry.on("healthCheckPassed", (i) => {
    passed.add(i.id);
    waiter.notify();
  });
  registry.on("healthCheckFailed", (i) => {
    failedAt.set(i.id, [...(failedAt.get(i.id) ?? []), Date.now()]);
    waiter.notify();
  });
  registry.on("change", (c) => {
    changes.push(c);
    if (c.kind === "health" && c.instance.health === "unhealthy") unhealthyAt.set(c.instance.id, Date.now());
    waiter.notify();
  });
  return { waiter, passed, failedAt, unhealthyAt, changes };
}
