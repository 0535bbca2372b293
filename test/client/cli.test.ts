import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryClient, type RegisteredInstance } from "../../src/client/registry-client.js";
import { runClientCommand } from "../../src/cli/commands/client-commands.js";
import type { Output } from "../../src/cli/commands/output.js";
import { makeTestPki } from "../ecosystem/test-pki.js";
import { TEST_KEY } from "../support/registry-harness.js";
import { runCli, startServerProcess, type ServerProcess } from "../support/server-process.js";
import { freePort, Log, startMtlsHarness } from "./helpers.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Captures a command's output in memory. */
function capture(): Output & { stdout: string; stderr: string; lines: Log<string> } {
  const io = {
    stdout: "",
    stderr: "",
    lines: new Log<string>(),
    out(text: string) {
      io.stdout += text;
      for (const line of text.split("\n").filter((l) => l !== "")) io.lines.push(line);
    },
    err(text: string) {
      io.stderr += text;
    },
  };
  return io;
}

describe("CLI list, get, watch against a real registry", () => {
  let server: ServerProcess;
  let key: string;
  let address: string;
  let admin: RegistryClient;
  let a: RegisteredInstance;
  let b: RegisteredInstance;
  /** Flags that find the registry and its generated key, as an operator on the box would. */
  const at = (): string[] => ["--address", address, "--data-dir", server.dataDir];

  beforeAll(async () => {
    // No SERVICE_REGISTRATION_KEY: the server generates one into DATA_DIR, where the CLI finds it.
    server = await startServerProcess({ STORE: "memory", HEALTH_CHECKS: "false", SERVICE_REGISTRATION_KEY: "" });
    address = `127.0.0.1:${server.port}`;
    key = readFileSync(join(server.dataDir, "registration-key"), "utf8").trim();
    admin = new RegistryClient({ addresses: [address], auth: { key } });
    a = await admin.register({ serviceType: "greeter", port: 8080, host: "10.0.0.7", metadata: { zone: "eu-1" } });
    b = await admin.register({ serviceType: "greeter", port: 8081, host: "10.0.0.8" });
    await admin.register({ serviceType: "billing", port: 9000, host: "10.0.0.9" });
  });

  afterAll(async () => {
    admin?.close();
    server?.kill("SIGKILL");
  });

  it("list, list TYPE and get ID work as commands: tables and details by default, exit 1 and 2 where a shell expects", async () => {
    const [services, instances, one, missing, usage, badFlag] = await Promise.all([
      runCli(["list", ...at()]),
      runCli(["list", "greeter", ...at()]),
      runCli(["get", a.id, ...at()]),
      runCli(["get", "no-such-id", ...at()]),
      runCli(["get", ...at()]),
      runCli(["list", "--bogus", ...at()]),
    ]);
    expect(services).toMatchObject({ code: 0, stderr: "" });
    expect(services.stdout.split("\n").map((l) => l.split(/\s+/).join(" "))).toEqual([
      "SERVICE HEALTHY TOTAL",
      "billing 1 1",
      "greeter 2 2",
      "",
    ]);

    expect(instances.code).toBe(0);
    const [header, ...rows] = instances.stdout.trim().split("\n");
    expect(header!.split(/\s+/)).toEqual(["ID", "ADDRESS", "HEALTH", "AGE", "METADATA"]);
    expect(rows.map((r) => r.split(/\s+/).filter((_, i) => i !== 3)).sort()).toEqual(
      [
        [a.id, "10.0.0.7:8080", "healthy", "zone=eu-1"],
        [b.id, "10.0.0.8:8081", "healthy", "-"],
      ].sort(),
    );

    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(new RegExp(`^id: +${a.id}$`, "m"));
    expect(one.stdout).toMatch(/^address: +10\.0\.0\.7:8080$/m);
    expect(one.stdout).toMatch(/^metadata: +zone=eu-1$/m);

    expect(missing).toMatchObject({ code: 1, stdout: "" });
    expect(missing.stderr).toMatch(/not found/i);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/get needs an INSTANCE_ID/);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toMatch(/unknown option "--bogus"/);
  });

  it("--json gives the same data for scripts", async () => {
    const io = capture();
    expect(await runClientCommand("list", ["--json", ...at()], io)).toBe(0);
    expect(JSON.parse(io.stdout)).toEqual({
      services: [
        { serviceType: "billing", healthyCount: 1, totalCount: 1 },
        { serviceType: "greeter", healthyCount: 2, totalCount: 2 },
      ],
      revision: 3,
    });
    const byType = capture();
    expect(await runClientCommand("list", ["greeter", "--json", ...at()], byType)).toBe(0);
    const parsed = JSON.parse(byType.stdout) as { instances: { id: string; registeredAt: string }[] };
    expect(parsed.instances.map((i) => i.id).sort()).toEqual([a.id, b.id].sort());
    expect(parsed.instances[0]!.registeredAt).toMatch(/^\d{4}-\d\d-\d\dT/);
    const one = capture();
    expect(await runClientCommand("get", [a.id, "--json", ...at()], one)).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ id: a.id, serviceType: "greeter", port: 8080, health: "healthy" });
    const empty = capture();
    expect(await runClientCommand("list", ["nothing-here", ...at()], empty)).toBe(0);
    expect(empty.stdout).toBe("no instances of nothing-here\n");
  });

  it("exit 1 at once for an unreachable registry or a refused key (never echoed); 2 for usage errors", async () => {
    const unreachable = capture();
    const started = Date.now();
    expect(await runClientCommand("list", ["--address", `127.0.0.1:${await freePort()}`, "--key", key], unreachable)).toBe(1);
    expect(Date.now() - started).toBeLessThan(2000);
    expect(unreachable.stderr).toMatch(/cannot reach the registry/);
    const watchNowhere = capture();
    expect(await runClientCommand("watch", ["--address", `127.0.0.1:${await freePort()}`, "--key", key], watchNowhere)).toBe(1);
    expect(watchNowhere.stderr).toMatch(/cannot reach the registry/);

    const refused = capture();
    expect(await runClientCommand("list", ["--address", address, "--key", "wrong-key-0123456789abcdef"], refused)).toBe(1);
    expect(refused.stderr).toMatch(/refused the registration key/);
    expect(refused.stderr).not.toContain("wrong-key");

    expect(await runClientCommand("list", ["a", "b", ...at()], capture())).toBe(2);
    expect(await runClientCommand("list", ["--timeout-ms", "soon", ...at()], capture())).toBe(2);
    const help = capture();
    expect(await runClientCommand("watch", ["--help"], help)).toBe(0);
    expect(help.stdout).toMatch(/usage: service-registry watch/);
  });

  it("finds the address and key in flags, the environment, a .env file, or the server's data directory", async () => {
    const ok = async (args: string[], env: NodeJS.ProcessEnv, cwd = ROOT): Promise<void> => {
      const io = capture();
      expect(await runClientCommand("list", args, io, { env, cwd }), io.stderr).toBe(0);
    };
    await ok(["--address", address, "--key", key], {});
    await ok([], { REGISTRY_ADDRESS: address, SERVICE_REGISTRATION_KEY: `${key},another-key-0123456789` });
    await ok(["--address", address], { DATA_DIR: server.dataDir });
    await ok(["--data-dir", server.dataDir], { PORT: String(server.port) });
    const dir = mkdtempSync(join(tmpdir(), "cli-dotenv-"));
    writeFileSync(join(dir, ".env"), `SERVICE_REGISTRATION_KEY=${key}\nREGISTRY_ADDRESS=${address}\n`);
    await ok([], {}, dir);
    const none = capture();
    expect(await runClientCommand("list", [], none, { env: {}, cwd: mkdtempSync(join(tmpdir(), "cli-nokey-")) })).toBe(2);
    expect(none.stderr).toMatch(/no registration key/);
  });

  it("talks TLS with --tls-ca, and mTLS with --tls-cert and --tls-key", async () => {
    const pki = await makeTestPki();
    const tls = await startMtlsHarness(pki);
    try {
      const base = ["--address", tls.address, "--key", TEST_KEY, "--tls-ca", pki.ca.certFile];
      const io = capture();
      expect(await runClientCommand("list", [...base, "--tls-cert", pki.client.certFile, "--tls-key", pki.client.keyFile], io), io.stderr).toBe(0);
      expect(io.stdout).toBe("no services registered\n");
      expect(await runClientCommand("list", base, capture())).toBe(1); // no client certificate: refused
      expect(await runClientCommand("list", [...base, "--tls-cert", pki.client.certFile], capture())).toBe(2);
    } finally {
      await tls.close();
    }
  });

  it("watch TYPE --json: the snapshot, then each change as it happens; Ctrl-C ends it with 130", async () => {
    const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", "watch", "greeter", "--json", ...at()], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    const lines = new Log<Record<string, unknown>>();
    let buffered = "";
    child.stdout.on("data", (d: Buffer) => {
      buffered += d.toString();
      let nl;
      while ((nl = buffered.indexOf("\n")) !== -1) {
        lines.push(JSON.parse(buffered.slice(0, nl)) as Record<string, unknown>);
        buffered = buffered.slice(nl + 1);
      }
    });
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
    const snapshot = await lines.find((l) => l.type === "snapshot", "the snapshot line", 10_000);
    expect((snapshot.instances as { id: string }[]).map((i) => i.id).sort()).toEqual([a.id, b.id].sort());
    const c = await admin.register({ serviceType: "greeter", port: 8082, host: "10.0.0.10" });
    await admin.register({ serviceType: "billing", port: 9001, host: "10.0.0.11" }); // another type: not shown
    await admin.unregister(c.id);
    await lines.find((l) => l.type === "instanceRemoved", "the removal line");
    expect(lines.items.map((l) => [l.type, (l.instance as { id?: string } | undefined)?.id])).toEqual([
      ["snapshot", undefined],
      ["instanceRegistered", c.id],
      ["instanceRemoved", c.id],
    ]);
    child.kill("SIGINT");
    expect(await exited).toBe(130);
  });

  it("watch (human): one readable line per event", async () => {
    const io = capture();
    const controller = new AbortController();
    const done = runClientCommand("watch", ["greeter", ...at()], io, undefined, controller.signal);
    await io.lines.find((l) => l.includes("SNAPSHOT"), "the snapshot line");
    const d = await admin.register({ serviceType: "greeter", port: 8083, host: "10.0.0.12" });
    await io.lines.find((l) => l.includes("REGISTERED"), "the registration line");
    controller.abort();
    expect(await done).toBe(0);
    expect(io.stdout).toMatch(/SNAPSHOT +rev \d+ +\d+ instances/);
    expect(io.stdout).toContain(`greeter  ${a.id}  10.0.0.7:8080  healthy`);
    expect(io.stdout).toMatch(new RegExp(`REGISTERED +rev \\d+ +greeter  ${d.id}  10\\.0\\.0\\.12:8083`));
    await admin.unregister(d.id);
  });
});
