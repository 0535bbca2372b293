import { mkdtempSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { startStack } from "../support/stack.js";
import { waitFor } from "../support/wait-for.js";

/** Resolves or rejects as `promise` does, or rejects naming `what` once `ms` have passed. */
function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Listeners, sockets and timers keeping this process alive, by kind. */
function liveHandles(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const kind of process.getActiveResourcesInfo()) counts.set(kind, (counts.get(kind) ?? 0) + 1);
  return counts;
}

/** Waits until no kind of handle outnumbers `baseline`: whatever start-up opened is closed again. */
async function backTo(baseline: Map<string, number>): Promise<void> {
  const extra = (): string[] => [...liveHandles()].filter(([kind, n]) => n > (baseline.get(kind) ?? 0)).map(([kind, n]) => `${kind} ×${n - (baseline.get(kind) ?? 0)}`);
  await waitFor(() => extra().length === 0, () => `the handles start-up opened to close (left: ${extra().join(", ")})`, 3000);
}

describe("start-up on a port already taken", () => {
  const cleanup: (() => unknown)[] = [];
  afterEach(async () => {
    for (const c of cleanup.splice(0).reverse()) await c();
  });

  async function takePort(host: string): Promise<number> {
    const server: Server = createServer();
    await new Promise<void>((resolve) => server.listen(0, host, resolve));
    cleanup.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    return (server.address() as { port: number }).port;
  }

  /** A data directory holding one instance, so that a start with health checks on probes it at once. */
  async function dataDirWithInstance(): Promise<string> {
    const dataDir = join(mkdtempSync(join(tmpdir(), "registry-port-taken-")), "data");
    const server = await startStack({ STORE: "sqlite", DATA_DIR: dataDir });
    await server.registry.register({ serviceType: "api", host: "127.0.0.1", port: 9 });
    await server.close();
    return dataDir;
  }

  it("rejects naming PORT, and stops what it started even with a probe held until it would serve", async () => {
    const dataDir = await dataDirWithInstance();
    // A name, not an address: looking it up gives the loaded instance's first probe (due within the 1 ms interval)
    // the turn of the event loop it needs to start; it then waits for the server to serve, which it never does.
    const port = await takePort("localhost");
    const baseline = liveHandles();
    const started = startStack({
      STORE: "sqlite", DATA_DIR: dataDir, HOST: "localhost", PORT: String(port), HEALTH_CHECKS: "true", HEALTH_CHECK_INTERVAL_MS: "1",
    });
    const err = await within(started, 5000, "startServer").then(
      () => expect.unreachable("start-up succeeded on a taken port"),
      (e: unknown) => e as Error & { code?: string },
    );
    expect(err.message).toBe(`PORT: localhost:${port} is already in use: stop what listens there or set PORT to another port`);
    expect(err.code).toBe("EADDRINUSE");
    await backTo(baseline);
    // The store was closed too: SQLite's exclusive lock is released, so the data directory opens again.
    const again = await within(startStack({ STORE: "sqlite", DATA_DIR: dataDir }), 5000, "a start on the same data directory");
    cleanup.push(() => again.close());
    expect(again.registry.size).toBe(1);
  });

  it("rejects naming HTTP_PORT, and closes PORT, which it had bound", async () => {
    const httpPort = await takePort("127.0.0.1");
    const baseline = liveHandles();
    const started = startStack({ HEALTH_CHECKS: "true" }, { httpPort });
    await expect(within(started, 5000, "startServer")).rejects.toThrow(`HTTP_PORT: 127.0.0.1:${httpPort} is already in use`);
    await backTo(baseline);
  });
});
