import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { credentials } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { startHealthServer } from "../support/health-server.js";
import { call, TEST_KEY } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";
import { Waiter } from "../support/waiter.js";
import { generatePythonStubs, pythonToolchain, runPythonScript } from "./python-toolchain.js";

/**
 * Another language's client reads the panic flags: Python stubs generated
 * from the proto see `GetByTypeResponse.panic`, `ServiceSummary.panic` and
 * `WatchInstancesResponse.panic` as the contract names them.
 */

const { toolchainError, skip } = pythonToolchain("test/polyglot/python-panic.test.ts");

describe.skipIf(skip)("polyglot: the panic flags from Python", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it("GetByType, ListServices and a watch's snapshot say panic for a type with 1 of 4 instances healthy", async () => {
    if (toolchainError !== undefined) throw new Error(toolchainError);
    const stubs = mkdtempSync(join(tmpdir(), "registry-panic-py-"));
    cleanup.push(() => rmSync(stubs, { recursive: true, force: true }));
    generatePythonStubs(stubs);

    const stack = await startStack({ HEALTH_CHECKS: "true", HEALTH_CHECK_INTERVAL_MS: "100", DEREGISTER_AFTER_MS: "0" });
    cleanup.push(() => stack.close());
    const client = new RegistryServiceClient(stack.address, credentials.createInsecure());
    cleanup.push(() => client.close());
    const waiter = new Waiter();
    let unhealthy = 0;
    stack.registry.on("change", (c) => {
      if (c.kind === "health" && c.instance.health === "unhealthy") unhealthy++;
      waiter.notify();
    });
    const backends = await Promise.all([0, 1, 2, 3].map(() => startHealthServer()));
    for (const backend of backends) {
      cleanup.push(() => backend.close());
      await call(client, client.register, { serviceType: "search", host: "127.0.0.1", port: backend.port, metadata: {} });
    }
    await Promise.all(backends.slice(1).map((b) => b.stop()));
    await waiter.until(() => unhealthy === 3, "three instances to turn unhealthy", 5000);

    const run = await runPythonScript("panic_check.py", ["--target", stack.address, "--key", TEST_KEY, "--service-type", "search"], stubs);
    expect(run.code, `panic_check.py failed; stderr:\n${run.stderr}`).toBe(0);
    const summary = JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}") as {
      getByType: { panic: boolean; health: string[] };
      listServices: Record<string, boolean>;
      snapshotPanic: boolean[];
    };
    expect(summary.getByType.panic).toBe(true);
    expect(summary.getByType.health.sort()).toEqual(["HEALTH_STATUS_HEALTHY", ...Array(3).fill("HEALTH_STATUS_UNHEALTHY")]);
    expect(summary.listServices).toEqual({ search: true });
    expect(summary.snapshotPanic).toEqual([true, true, true, true]);
  }, 30_000);
});
