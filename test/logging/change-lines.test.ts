import { once } from "node:events";
import { describe, expect, it } from "vitest";
import { createLogger } from "../../src/logging/logger.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";

/** A logger with the server's settings writing into memory. */
function captured(level = "info") {
  const lines: string[] = [];
  const logger = createLogger(level, { write: (line: string) => void lines.push(line) });
  return { logger, lines };
}

describe("the registry's change lines", () => {
  it("name the instance and the revision, one line per change, never the token or its hash", async () => {
    const { logger, lines } = captured();
    const registry = new ServiceRegistry({ logger, healthChecks: false });
    await registry.start();
    try {
      const { instance, token } = await registry.register({ serviceType: "api", host: "10.0.0.7", port: 8080, metadata: { zone: "eu-1" } });
      await registry.unregister(instance.id);
      const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(records.map((r) => [r.msg, r.instanceId, r.serviceType, r.host, r.port, r.revision, r.reason])).toEqual([
        ["instance registered", instance.id, "api", "10.0.0.7", 8080, 1, undefined],
        ["instance removed", instance.id, "api", "10.0.0.7", 8080, 2, "unregistered"],
      ]);
      const text = lines.join("");
      expect(text).not.toContain(token);
      expect(text).not.toContain("tokenHash");
      expect(text).not.toContain("eu-1");
    } finally {
      await registry.close();
    }
  });
});

describe("the registry's health lines", () => {
  it('spell health in lower case, as the core does: "health":"unhealthy", then "healthy"', async () => {
    const { logger, lines } = captured();
    let passing = false;
    const registry = new ServiceRegistry({
      logger,
      healthCheckInterval: 20,
      probe: async () => (passing ? { ok: true, status: 200 } : { ok: false, reason: "HTTP 503" }),
    });
    await registry.start();
    try {
      const healthLines = (): Record<string, unknown>[] =>
        lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((r) => r.msg === "instance health changed");
      const signal = AbortSignal.timeout(5000);
      const { instance } = await registry.register({ serviceType: "api", host: "10.0.0.7", port: 8080 });
      while (healthLines().length < 1) await once(registry, "change", { signal });
      passing = true;
      while (healthLines().length < 2) await once(registry, "change", { signal });
      expect(healthLines().map((r) => [r.instanceId, r.health, r.reason])).toEqual([
        [instance.id, "unhealthy", "HTTP 503"],
        [instance.id, "healthy", undefined],
      ]);
    } finally {
      await registry.close();
    }
  });
});
