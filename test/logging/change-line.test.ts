import { once } from "node:events";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { logChange, type ChangeLineFields } from "../../src/logging/change-line.js";
import { createLogger } from "../../src/logging/logger.js";
import { ServiceRegistry } from "../../src/registry/service-registry.js";

/** A logger with the server's settings writing into memory. */
function captured(level = "info") {
  const lines: string[] = [];
  const logger = createLogger(level, { write: (line: string) => void lines.push(line) });
  return { logger, lines };
}

/** The line with its timestamp, the one part two calls cannot share, fixed. */
const untimed = (line: string | undefined): string => (line ?? "").replace(/,"time":\d+,/, ',"time":0,');

const registered: ChangeLineFields = { instanceId: "0193c0de-0000-7000-8000-000000000001", serviceType: "api", host: "10.0.0.7", port: 8080, revision: 3 };

describe("logChange writes the line pino would", () => {
  const cases: [string, string, ChangeLineFields][] = [
    ["a registration", "instance registered", registered],
    ["a removal", "instance removed", { ...registered, reason: "health_check_expired" }],
    ["a health change with a reason", "instance health changed", { ...registered, health: "unhealthy", reason: 'HTTP 503 from "/health"' }],
    ["a health change without one", "instance health changed", { ...registered, health: "healthy", reason: undefined }],
    ["text that needs escaping", "instance registered", { ...registered, serviceType: "zone é 東京 🙂 \\ \u0001", host: "fe80::1" }],
    ["long text, non-ASCII, pino's own escaper", "instance health changed", { ...registered, health: "unhealthy", reason: `GET /health: "timeout" é 東京 🙂 ${"x".repeat(60)}` }],
    ["numbers that are not finite", "instance registered", { ...registered, port: Number.NaN, revision: Number.POSITIVE_INFINITY }],
  ];
  it.each(cases)("%s: byte for byte, but the time", (_name, msg, fields) => {
    const { logger, lines } = captured();
    logger.info(fields, msg);
    logChange(logger, msg, fields);
    expect(lines).toHaveLength(2);
    expect(untimed(lines[1])).toBe(untimed(lines[0]));
    const record = JSON.parse(lines[1] as string) as Record<string, unknown>;
    expect(record).toMatchObject({ level: 30, service: "service-registry", msg, instanceId: fields.instanceId, port: Number.isFinite(fields.port) ? fields.port : null });
    expect(typeof record.time).toBe("number");
  });

  it("writes nothing when info is off, and follows a level changed at run time", () => {
    const { logger, lines } = captured("warn");
    logChange(logger, "instance registered", registered);
    expect(lines).toEqual([]);
    logger.level = "debug";
    logChange(logger, "instance registered", registered);
    expect(lines).toHaveLength(1);
  });

  it("leaves any other logger to pino: a user's mixin, a child's bindings and prefix", () => {
    const lines: string[] = [];
    const own = pino({ mixin: () => ({ node: "eu-1" }) }, { write: (line: string) => void lines.push(line) });
    logChange(own, "instance registered", registered);
    const child = captured();
    logChange(child.logger.child({ replica: "c" }, { msgPrefix: "[c] " }), "instance registered", registered);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ node: "eu-1", instanceId: registered.instanceId });
    expect(JSON.parse(child.lines[0] as string)).toMatchObject({ replica: "c", msg: "[c] instance registered" });
  });

  it("gives a multistream destination the metadata it reads", () => {
    const lines: string[] = [];
    const logger = createLogger("info", pino.multistream([{ level: "info", stream: { write: (line: string) => void lines.push(line) } }]));
    logChange(logger, "instance registered", registered);
    expect(JSON.parse(lines[0] as string)).toMatchObject({ msg: "instance registered", instanceId: registered.instanceId });
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
