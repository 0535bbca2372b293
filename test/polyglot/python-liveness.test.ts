import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { credentials } from "@grpc/grpc-js";
import { afterEach, describe, expect, it } from "vitest";
import { EventType, RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import { TEST_KEY, WatchCursor, keyAuth } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";
import { generatePythonStubs, PYTHON, pythonToolchain, runPythonScript } from "./python-toolchain.js";

/**
 * Reported liveness from another language: Python stubs generated from the
 * proto heartbeat a TTL instance and hold a KeepAlive session, in a process
 * that is then SIGKILLed.
 */

const HERE = dirname(fileURLToPath(import.meta.url));
const { toolchainError, skip } = pythonToolchain("test/polyglot/python-liveness.test.ts");

describe.skipIf(skip)("polyglot: Heartbeat and KeepAlive from Python", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setUp() {
    if (toolchainError !== undefined) throw new Error(toolchainError);
    const stubs = mkdtempSync(join(tmpdir(), "registry-liveness-py-"));
    cleanup.push(() => rmSync(stubs, { recursive: true, force: true }));
    generatePythonStubs(stubs);
    // A minute between probes: any failure seen here comes from the reports.
    const stack = await startStack({ HEALTH_CHECK_INTERVAL_MS: "60000", DEREGISTER_AFTER_MS: "0" });
    cleanup.push(() => stack.close());
    return { stubs, stack };
  }

  it("a session held by a Python process turns UNHEALTHY within a fraction of a second of SIGKILL", async () => {
    const { stubs, stack } = await setUp();
    const client = new RegistryServiceClient(stack.address, credentials.createInsecure());
    cleanup.push(() => client.close());
    const watch = WatchCursor.open(client, { serviceType: "py-live" }, keyAuth());
    cleanup.push(() => watch.cancel());
    expect((await watch.next(5000)).type).toBe(EventType.EVENT_TYPE_SYNCED);

    const child = spawn(PYTHON, [join(HERE, "liveness_client.py"), "session", "--target", stack.address, "--key", TEST_KEY], {
      env: { ...process.env, PYTHONPATH: stubs, PYTHONDONTWRITEBYTECODE: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    cleanup.push(() => child.exitCode === null && child.signalCode === null && child.kill("SIGKILL"));
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (c: string) => (stderr += c));
    const line = await new Promise<string>((resolve, reject) => {
      let out = "";
      child.stdout.setEncoding("utf8").on("data", (c: string) => {
        out += c;
        if (out.includes("\n")) resolve(out.split("\n")[0] ?? "");
      });
      child.once("exit", (code) => reject(new Error(`liveness_client.py exited (${code}) before its session opened: ${stderr}`)));
    });
    const opened = JSON.parse(line) as { id: string; kind: string; openRevision: number; error?: string };
    expect(opened.error).toBeUndefined();
    expect(opened.kind).toBe("HEALTH_CHECK_KIND_SESSION");
    expect(opened.openRevision).toBeGreaterThan(0);

    const killedAt = Date.now();
    child.kill("SIGKILL");
    for (;;) {
      const event = await watch.next(3000);
      if (event.type !== EventType.EVENT_TYPE_HEALTH_CHECK_FAILED) continue;
      expect(event.instance?.id).toBe(opened.id);
      expect(event.failureReason).toMatch(/^session lost/);
      break;
    }
    expect(Date.now() - killedAt).toBeLessThan(3000);
  }, 30_000);

  it("heartbeats keep a TTL instance healthy, silence fails it, and the refusals carry their codes", async () => {
    const { stubs, stack } = await setUp();
    const run = await runPythonScript("liveness_client.py", ["ttl", "--target", stack.address, "--key", TEST_KEY], stubs);
    expect(run.code, `liveness_client.py failed:\n${run.stdout}\n${run.stderr}`).toBe(0);
    const summary = JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}") as Record<string, unknown>;
    expect(summary).toMatchObject({
      kind: "HEALTH_CHECK_KIND_TTL",
      whileBeating: "HEALTH_STATUS_HEALTHY",
      afterSilence: "HEALTH_STATUS_UNHEALTHY",
      wrongToken: "UNAUTHENTICATED",
      otherKind: "FAILED_PRECONDITION",
    });
    expect((summary.revisions as number[]).every((r) => r > 0)).toBe(true);
  }, 30_000);

  it("a session the registry ends while the client still sends reads the registry's status, not a reset", async () => {
    const { stubs, stack } = await setUp();
    const run = await runPythonScript("liveness_client.py", ["ended", "--target", stack.address, "--key", TEST_KEY], stubs);
    expect(run.code, `liveness_client.py failed:\n${run.stdout}\n${run.stderr}`).toBe(0);
    expect(JSON.parse(run.stdout.trim().split("\n").pop() ?? "{}")).toEqual({
      refused: { code: "UNAUTHENTICATED", details: "invalid instance credentials" },
      removed: { code: "NOT_FOUND", details: expect.stringMatching(/was removed \(unregistered\); register again$/) },
    });
  }, 30_000);
});
