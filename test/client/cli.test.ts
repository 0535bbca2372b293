import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RegistryClient, type RegisteredInstance } from "../../src/client/registry-client.js";
import { parseCliArgs, UsageError } from "../../src/cli/commands/cli-args.js";
import { runClientCommand } from "../../src/cli/commands/client-commands.js";
import type { Output } from "../../src/cli/commands/output.js";
import { connect, registryAddress } from "../../src/cli/commands/registry-connection.js";
import { instanceJson as httpInstanceJson } from "../../src/http/json-mapping.js";
import type { ServiceRegistry } from "../../src/registry/service-registry.js";
import { makeTestPki } from "../support/test-pki.js";
import { startHarness, TEST_KEY, type Harness } from "../support/registry-harness.js";
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
        [a.id, "10.0.0.7:8080", "HEALTHY", "zone=eu-1"],
        [b.id, "10.0.0.8:8081", "HEALTHY", "-"],
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
        { serviceType: "billing", healthyCount: 1, totalCount: 1, drainingCount: 0, panic: false },
        { serviceType: "greeter", healthyCount: 2, totalCount: 2, drainingCount: 0, panic: false },
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
    expect(JSON.parse(one.stdout)).toMatchObject({ id: a.id, serviceType: "greeter", port: 8080, health: "HEALTHY" });
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
    const listHelp = await runCli(["list", "--help"]);
    expect(listHelp.code).toBe(0);
    expect(listHelp.stdout).toMatch(/usage: service-registry list/);
    expect(listHelp.stdout).toMatch(/--address HOST\[:PORT\]/);
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
    expect(io.stdout).toContain(`greeter  ${a.id}  10.0.0.7:8080  HEALTHY`);
    expect(io.stdout).toMatch(new RegExp(`REGISTERED +rev \\d+ +greeter  ${d.id}  10\\.0\\.0\\.12:8083`));
    await admin.unregister(d.id);
  });
});

describe("CLI --selector against a real registry", () => {
  let h: Harness;
  let admin: RegistryClient;
  let eu: RegisteredInstance;
  let euWeb: RegisteredInstance;
  const at = (): string[] => ["--address", h.address, "--key", TEST_KEY];

  beforeAll(async () => {
    h = await startHarness();
    admin = new RegistryClient({ addresses: [h.address], auth: { key: TEST_KEY } });
    eu = await admin.register({ serviceType: "greeter", port: 8080, host: "10.0.0.7", metadata: { zone: "eu-1" } });
    euWeb = await admin.register({ serviceType: "greeter", port: 8081, host: "10.0.0.8", metadata: { zone: "eu-1", tier: "web" } });
    await admin.register({ serviceType: "greeter", port: 8082, host: "10.0.0.9", metadata: { zone: "us-1", tier: "web" } });
  });

  afterAll(async () => {
    admin?.close();
    await h?.close();
  });

  it("list TYPE --selector: only matching instances, keys ANDed, comma-separated or repeated", async () => {
    const zone = capture();
    expect(await runClientCommand("list", ["greeter", "--selector", "zone=eu-1", "--json", ...at()], zone), zone.stderr).toBe(0);
    expect((JSON.parse(zone.stdout) as { instances: { id: string }[] }).instances.map((i) => i.id).sort()).toEqual([eu.id, euWeb.id].sort());
    for (const flags of [["--selector", "zone=eu-1,tier=web"], ["--selector=zone=eu-1", "--selector", "tier=web"]]) {
      const both = capture();
      expect(await runClientCommand("list", ["greeter", ...flags, ...at()], both), both.stderr).toBe(0);
      const rows = both.stdout.trim().split("\n").slice(1);
      expect(rows.map((r) => r.split(/\s+/)[0])).toEqual([euWeb.id]);
    }
    const none = capture();
    expect(await runClientCommand("list", ["greeter", "--selector", "zone=eu-1,tier=db", ...at()], none)).toBe(0);
    expect(none.stdout).toBe("no instances of greeter matching zone=eu-1,tier=db\n");
  });

  it("watch TYPE --selector: the snapshot and changes of matching instances only", async () => {
    const io = capture();
    const controller = new AbortController();
    const done = runClientCommand("watch", ["greeter", "--selector", "tier=web", "--json", ...at()], io, undefined, controller.signal);
    const first = JSON.parse(await io.lines.find(() => true, "the snapshot line")) as { type: string; instances: { id: string }[] };
    expect(first.type).toBe("snapshot");
    expect(first.instances.map((i) => i.id)).toHaveLength(2);
    expect(first.instances.map((i) => i.id)).toContain(euWeb.id);
    await admin.register({ serviceType: "greeter", port: 8083, host: "10.0.0.10", metadata: { tier: "db" } });
    const web = await admin.register({ serviceType: "greeter", port: 8084, host: "10.0.0.11", metadata: { tier: "web" } });
    await io.lines.until((lines) => lines.length >= 2, "a change line");
    controller.abort();
    expect(await done).toBe(0);
    const changes = io.lines.items.slice(1).map((l) => JSON.parse(l) as { type: string; instance?: { id: string } });
    expect(changes.filter((c) => c.type !== "bookmark").map((c) => [c.type, c.instance?.id])).toEqual([["instanceRegistered", web.id]]);
    await admin.unregister(web.id);
  });

  it("usage errors exit 2 before anything is sent; a selector the registry refuses exits 1 naming selector", async () => {
    const cases: [string, string[], RegExp][] = [
      ["list", ["--selector", "zone=eu-1"], /--selector needs a SERVICE_TYPE/],
      ["list", ["greeter", "--selector", "zone"], /--selector "zone": expected KEY=VALUE/],
      ["list", ["greeter", "--selector", "=eu-1"], /expected KEY=VALUE/],
      ["watch", ["greeter", "--selector", "zone=eu-1,zone=us-1"], /--selector "zone" given twice/],
      ["get", [eu.id, "--selector", "zone=eu-1"], /unknown option "--selector"/],
    ];
    for (const [command, args, message] of cases) {
      const io = capture();
      expect(await runClientCommand(command as "list", [...args, ...at()], io), args.join(" ")).toBe(2);
      expect(io.stderr).toMatch(message);
    }
    const refused = capture();
    expect(await runClientCommand("list", ["greeter", "--selector", "bad key=x", ...at()], refused)).toBe(1);
    expect(refused.stderr).toMatch(/rejected the request: .*selector.*\(INVALID_ARGUMENT\)/);
    for (const command of ["list", "watch"] as const) {
      const help = capture();
      expect(await runClientCommand(command, ["--help"], help)).toBe(0);
      expect(help.stdout).toMatch(/--selector KEY=VALUE/);
    }
  });
});

describe("CLI register, unregister, services against a real registry", () => {
  const KEY = "cli-register-test-key-0123456789";
  let server: ServerProcess;
  let address: string;
  /** A key from the environment, as an operator who exported SERVICE_REGISTRATION_KEY has it. */
  const keyed = (): Record<string, string> => ({ SERVICE_REGISTRATION_KEY: KEY });
  const at = (): string[] => ["--address", address];
  /** Table rows with runs of spaces squeezed to one. */
  const rows = (stdout: string): string[] => stdout.trim().split("\n").map((l) => l.split(/\s+/).join(" "));

  beforeAll(async () => {
    server = await startServerProcess({ STORE: "memory", HEALTH_CHECKS: "false", SERVICE_REGISTRATION_KEY: KEY });
    address = `127.0.0.1:${server.port}`;
  });

  afterAll(() => {
    server?.kill("SIGKILL");
  });

  it("register, list, services, get, unregister: the instance appears, then goes (human output)", async () => {
    const env = { env: keyed(), cwd: ROOT };
    const registered = await runCli(["register", "greeter", "--port", "8080", "--metadata", "zone=eu-1", ...at()], keyed());
    expect(registered, registered.stderr).toMatchObject({ code: 0, stderr: "" });
    const id = /^id: +(\S+)$/m.exec(registered.stdout)?.[1] as string;
    const token = /^token: +(\S+)$/m.exec(registered.stdout)?.[1] as string;
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    expect(token.length).toBeGreaterThanOrEqual(16);
    expect(registered.stdout).toMatch(/^registered greeter at 127\.0\.0\.1:8080 \(health check \/health\)$/m);
    expect(registered.stdout).toMatch(/token is shown only this once/);
    // The token printed is the instance's real credential.
    const asInstance = new RegistryClient({ addresses: [address], auth: { instanceId: id, token } });
    try {
      expect((await asInstance.getInstance(id)).metadata).toEqual({ zone: "eu-1" });
    } finally {
      asInstance.close();
    }

    const other = capture();
    const otherArgs = ["billing", "--port", "9000", "--host", "10.0.0.9", "--metadata", "tier=web", "--metadata=zone=eu-2", "--health-path", "/ready"];
    expect(await runClientCommand("register", [...otherArgs, ...at()], other, env), other.stderr).toBe(0);
    const otherId = /^id: +(\S+)$/m.exec(other.stdout)?.[1] as string;
    const one = capture();
    expect(await runClientCommand("get", [otherId, ...at()], one, env)).toBe(0);
    expect(one.stdout).toMatch(/^address: +10\.0\.0\.9:9000$/m);
    expect(one.stdout).toMatch(/^health check: \/ready$/m);
    expect(one.stdout).toMatch(/^metadata: +tier=web,zone=eu-2$/m);

    const [listed, services] = await Promise.all([runCli(["list", "greeter", ...at()], keyed()), runCli(["services", ...at()], keyed())]);
    expect(listed.code).toBe(0);
    expect(rows(listed.stdout)[1]).toMatch(new RegExp(`^${id} 127\\.0\\.0\\.1:8080 HEALTHY \\d+s zone=eu-1$`));
    expect(services).toMatchObject({ code: 0, stderr: "" });
    expect(rows(services.stdout)).toEqual(["SERVICE HEALTHY TOTAL", "billing 1 1", "greeter 1 1"]);
    const list = capture();
    expect(await runClientCommand("list", at(), list, env)).toBe(0);
    expect(list.stdout).toBe(services.stdout);

    const removed = await runCli(["unregister", id, ...at()], keyed());
    expect(removed).toMatchObject({ code: 0, stderr: "" });
    expect(removed.stdout).toMatch(new RegExp(`^removed greeter ${id} at 127\\.0\\.0\\.1:8080 \\(revision \\d+\\)\\n$`));
    const gone = await runCli(["list", "greeter", ...at()], keyed());
    expect(gone).toMatchObject({ code: 0, stdout: "no instances of greeter\n" });
    const again = capture();
    expect(await runClientCommand("unregister", [id, ...at()], again, env)).toBe(1);
    expect(again.stdout).toBe("");
    expect(again.stderr).toMatch(/^service-registry unregister: .*not found.*\(NOT_FOUND\)\n$/i);
    expect(await runClientCommand("unregister", [otherId, ...at()], capture(), env)).toBe(0);
    const none = capture();
    expect(await runClientCommand("services", at(), none, env)).toBe(0);
    expect(none.stdout).toBe("no services registered\n");
  });

  it("drain: marks an instance draining (left out of list's default answer), idempotent, --json, exit 1 for an unknown id", async () => {
    const env = { env: keyed(), cwd: ROOT };
    const registered = await runCli(["register", "drain-demo", "--port", "7100", "--host", "10.3.0.1", "--json", ...at()], keyed());
    const { serviceId } = JSON.parse(registered.stdout) as { serviceId: string };
    const drained = await runCli(["drain", serviceId, ...at()], keyed());
    expect(drained).toMatchObject({ code: 0, stderr: "" });
    expect(drained.stdout).toMatch(new RegExp(`^draining drain-demo ${serviceId} at 10\\.3\\.0\\.1:7100 \\(revision \\d+\\)\\n$`));
    const json = capture();
    expect(await runClientCommand("drain", [serviceId, "--json", ...at()], json, env)).toBe(0);
    expect(JSON.parse(json.stdout)).toMatchObject({ instance: { id: serviceId, draining: true } });
    const admin = new RegistryClient({ addresses: [address], auth: { key: KEY } });
    try {
      expect((await admin.getByType("drain-demo")).instances).toEqual([]);
      expect((await admin.getByType("drain-demo", { includeDraining: true })).instances.map((i) => i.id)).toEqual([serviceId]);
      await admin.unregister(serviceId);
    } finally {
      admin.close();
    }
    const unknown = capture();
    expect(await runClientCommand("drain", ["00000000-0000-4000-8000-000000000000", ...at()], unknown, env)).toBe(1);
    expect(unknown.stderr).toMatch(/^service-registry drain: .*not found.*\(NOT_FOUND\)\n$/i);
  });

  it("--json: the Register answer, the Unregister answer, and services as list shows them", async () => {
    const env = { env: keyed(), cwd: ROOT };
    const registered = await runCli(
      ["register", "json-demo", "--port", "7000", "--host", "10.2.0.1", "--metadata", "a=1", "--json", ...at()],
      keyed(),
    );
    expect(registered.code, registered.stderr).toBe(0);
    const answer = JSON.parse(registered.stdout) as { serviceId: string; token: string; instance: Record<string, unknown> };
    expect(Object.keys(answer).sort()).toEqual(["instance", "serviceId", "token"]);
    expect(answer.token.length).toBeGreaterThanOrEqual(16);
    expect(answer.instance).toMatchObject({
      id: answer.serviceId,
      serviceType: "json-demo",
      host: "10.2.0.1",
      port: 7000,
      metadata: { a: "1" },
      healthCheckPath: "/health",
      health: "HEALTHY",
    });
    expect(answer.instance.registeredAt).toMatch(/^\d{4}-\d\d-\d\dT/);

    const services = capture();
    expect(await runClientCommand("services", ["--json", ...at()], services, env)).toBe(0);
    const list = capture();
    expect(await runClientCommand("list", ["--json", ...at()], list, env)).toBe(0);
    expect(JSON.parse(services.stdout)).toMatchObject({ services: [{ serviceType: "json-demo", healthyCount: 1, totalCount: 1 }] });
    expect(services.stdout).toBe(list.stdout);

    const removed = capture();
    expect(await runClientCommand("unregister", [answer.serviceId, "--json", ...at()], removed, env)).toBe(0);
    const unregistered = JSON.parse(removed.stdout) as { instance: { id: string; serviceType: string }; revision: number };
    expect(unregistered.instance).toMatchObject({ id: answer.serviceId, serviceType: "json-demo" });
    expect(unregistered.revision).toBeGreaterThan(answer.instance.revision as number);
    const after = capture();
    expect(await runClientCommand("services", ["--json", ...at()], after, env)).toBe(0);
    expect(JSON.parse(after.stdout)).toEqual({ services: [], revision: unregistered.revision });
  });

  it("exit 2 with one line for usage errors; exit 1 naming the problem when the registry says no or cannot be reached", async () => {
    const env = { env: keyed(), cwd: ROOT };
    const run = async (command: "register" | "unregister" | "services" | "list", args: string[]): Promise<[number, string, string]> => {
      const io = capture();
      return [await runClientCommand(command, [...at(), ...args], io, env), io.stdout, io.stderr];
    };
    const usage = await Promise.all([
      run("register", ["--port", "8080"]),
      run("register", ["greeter", "--port", "http"]),
      run("register", ["greeter", "--port", "8080", "--metadata", "zone"]),
      run("register", ["greeter", "--port", "8080", "--metadata", "a=1", "--metadata", "a=2"]),
      run("unregister", []),
      run("services", ["greeter"]),
      run("list", ["--port", "8080"]),
    ]);
    expect(usage.map(([code, stdout]) => [code, stdout])).toEqual(usage.map(() => [2, ""]));
    expect(usage.map(([, , stderr]) => stderr)).toEqual(
      [
        ["register", "register needs a SERVICE_TYPE"],
        ["register", "--port must be a number from 1 to 65535"],
        ["register", '--metadata "zone": expected KEY=VALUE'],
        ["register", '--metadata "a" given twice'],
        ["unregister", "unregister needs an INSTANCE_ID"],
        ["services", 'unexpected argument "greeter"'],
        ["list", 'unknown option "--port"'],
      ].map(([command, message]) => `service-registry ${command}: ${message} (see service-registry ${command} --help)\n`),
    );
    // As a process: the same exit code and one line.
    const noPort = await runCli(["register", "greeter", ...at()], keyed());
    expect(noPort).toMatchObject({
      code: 2,
      stdout: "",
      stderr: "service-registry register: register needs --port (see service-registry register --help)\n",
    });

    const [badPath, unreachable] = await Promise.all([
      runCli(["register", "greeter", "--port", "8080", "--health-path", "ready", ...at()], keyed()),
      run("register", ["greeter", "--port", "8080", "--address", `127.0.0.1:${await freePort()}`]),
    ]);
    expect(badPath).toMatchObject({
      code: 1,
      stdout: "",
      stderr: "service-registry register: the registry rejected the request: health_check.path: must start with / (INVALID_ARGUMENT)\n",
    });
    expect(unreachable[0]).toBe(1);
    expect(unreachable[2]).toMatch(/^service-registry register: cannot reach the registry at 127\.0\.0\.1:\d+ /);
    const [badTypeCode, , badType] = await run("register", ["Greeter!", "--port", "8080"]);
    expect(badTypeCode).toBe(1);
    expect(badType).toMatch(/^service-registry register: the registry rejected the request: service_type: .*\(INVALID_ARGUMENT\)\n$/);
  });

  it("--address with a host alone reaches the registry on $PORT, not 443", async () => {
    const port = String(server.port);
    const byFlag = await runCli(["list", "--address", "127.0.0.1"], { ...keyed(), PORT: port });
    expect(byFlag, byFlag.stderr).toMatchObject({ code: 0, stderr: "" });
    const byEnv = capture();
    expect(await runClientCommand("list", [], byEnv, { env: { ...keyed(), REGISTRY_ADDRESS: "localhost", PORT: port }, cwd: ROOT }), byEnv.stderr).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), "cli-port-"));
    writeFileSync(join(dir, ".env"), `PORT=${port}\nSERVICE_REGISTRATION_KEY=${KEY}\n`);
    const byDotenv = capture();
    expect(await runClientCommand("list", ["--address", "127.0.0.1"], byDotenv, { env: {}, cwd: dir }), byDotenv.stderr).toBe(0);
    // PORT unset: the server's default port.
    const client = connect(parseCliArgs(["--address", "localhost,[::1],10.0.0.2:5000", "--key", KEY], { maxPositional: 0 }), {
      env: {},
      cwd: mkdtempSync(join(tmpdir(), "cli-no-dotenv-")),
    }).client;
    expect(client.addresses).toEqual(["localhost:4000", "[::1]:4000", "10.0.0.2:5000"]);
    client.close();
    const bad = await runCli(["list", "--address", "127.0.0.1:http"], keyed());
    expect(bad).toMatchObject({ code: 2, stderr: 'service-registry list: address "127.0.0.1:http": the port must be a number from 1 to 65535 (see service-registry list --help)\n' });
  });

  it("a refused key: the error names where the key came from, never the key", async () => {
    const WRONG = "stale-key-from-an-earlier-run-0123456789";
    // The case: a data directory holding the key a server generated
    // before SERVICE_REGISTRATION_KEY was set; the server now uses the variable.
    const dataDir = mkdtempSync(join(tmpdir(), "cli-stale-key-"));
    writeFileSync(join(dataDir, "registration-key"), `${WRONG}\n`);
    const dotenvDir = mkdtempSync(join(tmpdir(), "cli-stale-dotenv-"));
    writeFileSync(join(dotenvDir, ".env"), `SERVICE_REGISTRATION_KEY=${WRONG}\n`);
    const refused = (stderr: string, source: string): void => {
      expect(stderr).toContain(`the registry refused the registration key from ${source} (UNAUTHENTICATED: invalid registration key)`);
      expect(stderr).not.toContain(WRONG);
      expect(stderr).not.toContain(KEY);
      expect(stderr.split("\n")).toHaveLength(2);
    };
    const [fromFile, registerFromFile] = await Promise.all([
      runCli(["list", "--data-dir", dataDir, ...at()], { SERVICE_REGISTRATION_KEY: "" }),
      runCli(["register", "greeter", "--port", "8080", "--data-dir", dataDir, ...at()], { SERVICE_REGISTRATION_KEY: "" }),
    ]);
    expect(fromFile.code).toBe(1);
    refused(fromFile.stderr, `the key file ${join(dataDir, "registration-key")}`);
    expect(fromFile.stderr).toMatch(/if the server has one now, set SERVICE_REGISTRATION_KEY here too or pass --key/);
    expect(registerFromFile.code).toBe(1);
    refused(registerFromFile.stderr, `the key file ${join(dataDir, "registration-key")}`);

    const io = (): ReturnType<typeof capture> => capture();
    const fromFlag = io();
    expect(await runClientCommand("services", ["--key", WRONG, ...at()], fromFlag, { env: keyed(), cwd: dotenvDir })).toBe(1);
    refused(fromFlag.stderr, "--key");
    const fromEnv = io();
    expect(await runClientCommand("unregister", ["some-id", ...at()], fromEnv, { env: { SERVICE_REGISTRATION_KEY: WRONG }, cwd: ROOT })).toBe(1);
    refused(fromEnv.stderr, "SERVICE_REGISTRATION_KEY (environment)");
    const fromDotenv = io();
    expect(await runClientCommand("services", ["--data-dir", dataDir, ...at()], fromDotenv, { env: {}, cwd: dotenvDir })).toBe(1);
    refused(fromDotenv.stderr, `SERVICE_REGISTRATION_KEY in ${join(dotenvDir, ".env")}`);
    const watching = io();
    expect(await runClientCommand("watch", ["--key", WRONG, ...at()], watching, { env: {}, cwd: ROOT })).toBe(1);
    refused(watching.stderr, "--key");
  });

  it("takes the key in the server's order: --key, then the environment, then .env, then the key file", async () => {
    const stale = mkdtempSync(join(tmpdir(), "cli-order-"));
    writeFileSync(join(stale, "registration-key"), "stale-key-in-the-data-dir-0123456789\n");
    const good = mkdtempSync(join(tmpdir(), "cli-order-good-"));
    writeFileSync(join(good, ".env"), `SERVICE_REGISTRATION_KEY=${KEY}\n`);
    const wrong = mkdtempSync(join(tmpdir(), "cli-order-wrong-"));
    writeFileSync(join(wrong, ".env"), "SERVICE_REGISTRATION_KEY=wrong-key-in-dotenv-0123456789\n");
    const code = async (args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<[number, string]> => {
      const io = capture();
      return [await runClientCommand("list", [...args, "--data-dir", stale, ...at()], io, { env, cwd }), io.stderr];
    };
    expect(await code(["--key", KEY], { SERVICE_REGISTRATION_KEY: "wrong-key-in-env-0123456789" }, wrong)).toEqual([0, ""]);
    expect(await code([], { SERVICE_REGISTRATION_KEY: KEY }, wrong)).toEqual([0, ""]);
    expect(await code([], {}, good)).toEqual([0, ""]);
    // Set but empty, as for the server: no key from the variable, and .env does not fill it in.
    const [emptyCode, emptyErr] = await code([], { SERVICE_REGISTRATION_KEY: "" }, good);
    expect(emptyCode).toBe(1);
    expect(emptyErr).toContain(`from the key file ${join(stale, "registration-key")}`);
  });

  it("register --check picks how the instance is checked; get shows the kind; a usage error for an unknown kind", async () => {
    const env = { env: keyed(), cwd: ROOT };
    const ttl = capture();
    const ttlArgs = ["ttl-demo", "--port", "7200", "--host", "10.4.0.1", "--check", "ttl", "--ttl-ms", "1000", ...at()];
    expect(await runClientCommand("register", ttlArgs, ttl, env), ttl.stderr).toBe(0);
    expect(ttl.stdout).toMatch(/^registered ttl-demo at 10\.4\.0\.1:7200 \(TTL check\)$/m);
    expect(ttl.stdout).toMatch(/calls Heartbeat \(with its id and token\) at least every 1000 ms; this command sends none/);
    const id = /^id: +(\S+)$/m.exec(ttl.stdout)?.[1] as string;
    const shown = capture();
    expect(await runClientCommand("get", [id, ...at()], shown, env)).toBe(0);
    expect(shown.stdout).toMatch(/^check: +TTL$/m);
    expect(shown.stdout).not.toMatch(/^health check:/m); // a path means nothing to a TTL check

    const grpc = capture();
    const grpcArgs = ["grpc-demo", "--port", "7201", "--host", "10.4.0.2", "--check", "GRPC", "--grpc-service", "demo.v1.Demo", "--check-timeout-ms", "500", "--json", ...at()];
    expect(await runClientCommand("register", grpcArgs, grpc, env), grpc.stderr).toBe(0);
    const grpcId = (JSON.parse(grpc.stdout) as { serviceId: string }).serviceId;
    const grpcShown = capture();
    expect(await runClientCommand("get", [grpcId, ...at()], grpcShown, env)).toBe(0);
    expect(grpcShown.stdout).toMatch(/^check: +GRPC$/m);

    // The registry judges whether the fields fit the kind.
    const misfit = capture();
    expect(await runClientCommand("register", ["x", "--port", "7202", "--host", "10.4.0.3", "--ttl-ms", "1000", ...at()], misfit, env)).toBe(1);
    expect(misfit.stderr).toMatch(/health_check\.ttl_ms: is for TTL checks only, not HTTP \(INVALID_ARGUMENT\)/);
    const unknown = capture();
    expect(await runClientCommand("register", ["x", "--port", "7203", "--check", "udp", ...at()], unknown, env)).toBe(2);
    expect(unknown.stderr).toMatch(/--check must be one of http, grpc, tcp, ttl, session/);
    const help = capture();
    expect(await runClientCommand("register", ["--help"], help)).toBe(0);
    expect(help.stdout).toMatch(/--check http\|grpc\|tcp\|ttl\|session/);
  });
});

/** Resolves when instance `id` is unhealthy (awaits the registry's `change` events), or fails after 5 s. */
async function unhealthy(registry: ServiceRegistry, id: string): Promise<void> {
  const signal = AbortSignal.timeout(5000);
  while (registry.getInstance(id).health !== "unhealthy") {
    await once(registry, "change", { signal }).catch(() => {
      throw new Error(`instance ${id} did not turn unhealthy within 5 s`);
    });
  }
}

describe("CLI health spelling: HEALTHY and UNHEALTHY in tables, lines and --json, as the HTTP/JSON API", () => {
  const SICK_PORT = 9999;
  let h: Harness;
  let admin: RegistryClient;
  let well: RegisteredInstance;
  let sick: RegisteredInstance;
  const at = (): string[] => ["--address", h.address, "--key", TEST_KEY];
  const where = { env: {}, cwd: ROOT };

  beforeAll(async () => {
    // Probes fail for one port only: that instance turns unhealthy, the other stays healthy.
    h = await startHarness({
      registry: {
        healthChecks: true,
        healthCheckInterval: 50,
        probe: async (target) => (target.port === SICK_PORT ? { ok: false, reason: "HTTP 503" } : { ok: true, status: 200 }),
      },
    });
    admin = new RegistryClient({ addresses: [h.address], auth: { key: TEST_KEY } });
    well = await admin.register({ serviceType: "spelling", port: 8080, host: "10.0.0.1" });
    sick = await admin.register({ serviceType: "spelling", port: SICK_PORT, host: "10.0.0.2" });
    await unhealthy(h.registry, sick.id);
  });

  afterAll(async () => {
    admin?.close();
    await h?.close();
  });

  it("list TYPE and get ID (human): the HEALTH column and the health line", async () => {
    const list = capture();
    expect(await runClientCommand("list", ["spelling", ...at()], list, where), list.stderr).toBe(0);
    const rows = list.stdout.trim().split("\n").slice(1).map((r) => r.split(/\s+/).slice(0, 3));
    expect(rows).toEqual([
      [well.id, "10.0.0.1:8080", "HEALTHY"],
      [sick.id, `10.0.0.2:${SICK_PORT}`, "UNHEALTHY"],
    ]);
    const get = capture();
    expect(await runClientCommand("get", [sick.id, ...at()], get, where), get.stderr).toBe(0);
    expect(get.stdout).toMatch(/^health: +UNHEALTHY$/m);
  });

  it("--json: each instance is the HTTP/JSON API's instance object, health and all", async () => {
    const asHttp = (id: string) => httpInstanceJson(h.registry.getInstance(id));
    const list = capture();
    expect(await runClientCommand("list", ["spelling", "--json", ...at()], list, where), list.stderr).toBe(0);
    const listed = JSON.parse(list.stdout) as { instances: unknown[] };
    expect(listed.instances).toEqual([asHttp(well.id), asHttp(sick.id)]);
    expect(listed.instances).toMatchObject([{ health: "HEALTHY" }, { health: "UNHEALTHY" }]);
    const get = capture();
    expect(await runClientCommand("get", [sick.id, "--json", ...at()], get, where), get.stderr).toBe(0);
    expect(JSON.parse(get.stdout)).toEqual({ ...asHttp(sick.id), health: "UNHEALTHY" });
  });

  it("watch, human and --json: the snapshot's instances and a transition to UNHEALTHY", async () => {
    const human = capture();
    const json = capture();
    const controller = new AbortController();
    const watching = [
      runClientCommand("watch", ["spelling", ...at()], human, where, controller.signal),
      runClientCommand("watch", ["spelling", "--json", ...at()], json, where, controller.signal),
    ];
    await human.lines.find((l) => l.includes("SNAPSHOT"), "the human snapshot");
    await json.lines.find((l) => l.includes('"snapshot"'), "the --json snapshot");
    const next = await admin.register({ serviceType: "spelling", port: SICK_PORT, host: "10.0.0.3" });
    await human.lines.find((l) => l.includes("UNHEALTHY") && l.includes(next.id), "the human transition line");
    const failed = JSON.parse(await json.lines.find((l) => l.includes('"healthCheckFailed"'), "the --json transition")) as Record<string, unknown>;
    controller.abort();
    expect(await Promise.all(watching)).toEqual([0, 0]);

    expect(human.stdout).toContain(`spelling  ${well.id}  10.0.0.1:8080  HEALTHY\n`);
    expect(human.stdout).toContain(`spelling  ${sick.id}  10.0.0.2:${SICK_PORT}  UNHEALTHY\n`);
    expect(human.stdout).toMatch(new RegExp(`UNHEALTHY +rev \\d+ +spelling  ${next.id}  10\\.0\\.0\\.3:${SICK_PORT}  HTTP 503`));
    const snapshot = JSON.parse(json.lines.items[0] as string) as { type: string; instances: { id: string; health: string }[] };
    expect(snapshot.type).toBe("snapshot");
    expect(snapshot.instances.map((i) => [i.id, i.health])).toEqual([
      [well.id, "HEALTHY"],
      [sick.id, "UNHEALTHY"],
    ]);
    expect(failed).toMatchObject({ type: "healthCheckFailed", failureReason: "HTTP 503", instance: { id: next.id, health: "UNHEALTHY" } });
  });
});

describe("registryAddress: a host alone gets the default port", () => {
  it("adds the port to hostnames, IPv4 and IPv6 hosts; keeps given ports and grpc-js targets", () => {
    expect(
      ["localhost", "127.0.0.1", "registry.internal", "[::1]", "::1", "[fd00::7]:5000", "localhost:5000", "dns:///registry:5000", "unix:/run/r.sock"].map(
        (a) => registryAddress(a, "4100"),
      ),
    ).toEqual([
      "localhost:4100",
      "127.0.0.1:4100",
      "registry.internal:4100",
      "[::1]:4100",
      "[::1]:4100",
      "[fd00::7]:5000",
      "localhost:5000",
      "dns:///registry:5000",
      "unix:/run/r.sock",
    ]);
    for (const bad of ["localhost:", "localhost:0", "localhost:70000", "[::1]:x", "[::1", "fd00::zz", ":4000"]) {
      expect(() => registryAddress(bad, "4100"), bad).toThrow(UsageError);
    }
    expect(() => registryAddress("localhost", "0")).toThrow(/no port, and PORT \("0"\) is not one to connect to/);
  });
});
