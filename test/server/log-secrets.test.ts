import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createLogger } from "../../src/logging/logger.js";
import { call, callError, instanceAuth, keyAuth, register, startHarness, TEST_KEY, type Harness } from "../support/registry-harness.js";

/** A real logger (the server's own settings) writing into memory. */
function capturedLogger() {
  const lines: string[] = [];
  const logger = createLogger("trace", { write: (line: string) => void lines.push(line) });
  return { logger, text: () => lines.join(""), records: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe("logs never carry a key or a token (SPEC 4.1)", () => {
  let h: Harness;
  let log: ReturnType<typeof capturedLogger>;
  beforeEach(async () => {
    log = capturedLogger();
    h = await startHarness({ logger: log.logger });
  });
  afterEach(async () => {
    await h.close();
  });

  it("writes one line per registration and removal naming the instance, never its secrets", async () => {
    const a = await register(h, "api", 9001);
    await callError(h.client, h.client.getByType, { serviceType: "api", includeUnhealthy: false, includeDraining: false, selector: {} }, instanceAuth(a.id, `${a.token}x`));
    await callError(h.client, h.client.listServices, {}, keyAuth(`${TEST_KEY}-wrong`));
    await call(h.client, h.client.unregister, { instanceId: a.id }, instanceAuth(a.id, a.token));

    const records = log.records();
    expect(records.filter((r) => r.msg === "instance registered")).toEqual([
      expect.objectContaining({ instanceId: a.id, serviceType: "api", host: "127.0.0.1", port: 9001, revision: 1 }),
    ]);
    expect(records.filter((r) => r.msg === "instance removed")).toHaveLength(1);
    const text = log.text();
    expect(text).not.toContain(TEST_KEY);
    expect(text).not.toContain(a.token);
  });

  it("redacts secret-named fields of logged objects and errors, as a second line of defence", async () => {
    const a = await register(h, "api", 9001);
    // A listener that throws an error carrying secrets: the registry logs the error.
    h.registry.on("instanceRegistered", () => {
      throw Object.assign(new Error("listener failed"), { token: a.token, authorization: `Bearer ${TEST_KEY}` });
    });
    await register(h, "api", 9002);
    log.logger.info({ token: a.token, key: TEST_KEY, "x-service-token": a.token, serviceToken: a.token }, "direct");
    log.logger.info(
      { credentials: { key: TEST_KEY, serviceToken: a.token }, headers: { authorization: `Bearer ${TEST_KEY}`, "x-service-token": a.token } },
      "containers",
    );

    const threw = log.records().find((r) => r.msg === "registry event listener threw");
    expect(threw?.err).toMatchObject({ message: "listener failed", token: "[redacted]", authorization: "[redacted]" });
    expect(log.records().find((r) => r.msg === "direct")).toMatchObject({ token: "[redacted]", key: "[redacted]" });
    expect(log.records().find((r) => r.msg === "containers")).toMatchObject({
      credentials: { key: "[redacted]", serviceToken: "[redacted]" },
      headers: { authorization: "[redacted]", "x-service-token": "[redacted]" },
    });
    const text = log.text();
    expect(text).not.toContain(TEST_KEY);
    expect(text).not.toContain(a.token);
  });
});
