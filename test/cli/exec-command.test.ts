import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { runExecCommand } from "../../src/cli/commands/exec-command.js";
import type { Output } from "../../src/cli/commands/output.js";
import { RegistryClient } from "../../src/client/registry-client.js";
import type { RegistryWatchEvent } from "../../src/client/watch-events.js";
import { freePort, Log, startLocalRegistry } from "../client/helpers.js";
import { TEST_KEY } from "../support/registry-harness.js";
import { startStack } from "../support/stack.js";

/**
 * `service-registry exec` as an operator runs it: the CLI in its own
 * process wrapping a program that knows nothing of the registry (a small
 * Node HTTP server here, standing for any language's), against a real
 * registry, watched through a real watch stream.
 */

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TSX = pathToFileURL(createRequire(join(ROOT, "package.json")).resolve("tsx")).href;

/**
 * The wrapped program: `node server.mjs PORT DELAY_MS`. Listens on
 * 127.0.0.1:PORT after DELAY_MS (or never, for -1), answers every request
 * 200, and prints one JSON line per event (listening, request, sigterm,
 * exiting) with its own clock and PID. SIGTERM: exits 7. A line "crash" on
 * stdin: exits 3.
 */
const SERVER = `
import { createServer } from "node:http";
const [port, delayMs] = process.argv.slice(2).map(Number);
const say = (event, extra = {}) => process.stdout.write(JSON.stringify({ event, at: Date.now(), pid: process.pid, ...extra }) + "\\n");
const exit = (code) => { say("exiting", { code }); process.exit(code); };
const server = createServer((req, res) => { say("request", { path: req.url }); res.end("ok"); });
process.on("SIGTERM", () => { say("sigterm"); server.close(); exit(7); });
process.stdin.on("data", (d) => { if (String(d).includes("crash")) exit(3); });
process.stdin.on("error", () => {});
if (delayMs >= 0) setTimeout(() => server.listen(port, "127.0.0.1", () => say("listening")), delayMs);
else setInterval(() => {}, 60_000);
`;

interface ServerLine {
  readonly event: "listening" | "request" | "sigterm" | "exiting";
  readonly at: number;
  readonly pid: number;
  readonly path?: string;
  readonly code?: number;
}

/** A running `exec`: the wrapped program's lines, the CLI's stderr, its exit status. */
interface Exec {
  readonly pid: number;
  readonly lines: Log<ServerLine>;
  /** The CLI's own lines (stderr). */
  readonly said: Log<string>;
  stderr(): string;
  /** Its exit status, once it has exited and all its output (the program's too) is read. */
  readonly exited: Promise<number>;
  /** Writes to its stdin, which the wrapped program shares. */
  write(text: string): void;
  kill(signal: NodeJS.Signals): void;
}

/** Watch events with the time this test received each. */
type Seen = { readonly event: RegistryWatchEvent; readonly seenAt: number };

let dir: string;
let script: string;
let stack: Awaited<ReturnType<typeof startStack>>;
let admin: RegistryClient;
const cleanups: (() => unknown)[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "exec-test-"));
  script = join(dir, "server.mjs");
  writeFileSync(script, SERVER);
  // Probes every 200 ms, for the HTTP check; SESSION and TTL instances are not probed.
  stack = await startStack({ HEALTH_CHECKS: "true", HEALTH_CHECK_INTERVAL_MS: "200" });
  admin = new RegistryClient({ addresses: [stack.address], auth: { key: TEST_KEY } });
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

afterAll(async () => {
  admin?.close();
  await stack?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Calls `push` with each complete line `stream` gives. */
function eachLine(stream: NodeJS.ReadableStream, push: (line: string) => void): void {
  let partial = "";
  stream.on("data", (d: Buffer) => {
    const lines = (partial + d.toString()).split("\n");
    partial = lines.pop() as string;
    for (const line of lines) push(line);
  });
}

/**
 * Starts `service-registry exec FLAGS -- node server.mjs PORT DELAY_MS` (key
 * and address in the environment) in a process group of its own, which the
 * program joins: teardown ends whatever a failed test left of both.
 */
function startExec(flags: string[], port: number, delayMs: number, env: Record<string, string> = {}): Exec {
  const child = spawn(process.execPath, ["--import", TSX, join(ROOT, "src/cli/main.ts"), "exec", ...flags, "--", process.execPath, script, String(port), String(delayMs)], {
    cwd: dir, // no .env here
    env: { ...process.env, SERVICE_REGISTRATION_KEY: TEST_KEY, REGISTRY_ADDRESS: stack.address, ...env },
    stdio: ["pipe", "pipe", "pipe"],
    detached: true,
  });
  const lines = new Log<ServerLine>();
  const said = new Log<string>();
  let err = "";
  eachLine(child.stdout, (line) => line.startsWith("{") && lines.push(JSON.parse(line) as ServerLine));
  eachLine(child.stderr, (line) => said.push(line));
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  // "close": its output (and the program's, on the same pipes) read to the end.
  const exited = new Promise<number>((resolve) => child.once("close", (code, signal) => resolve(code ?? (signal ? -1 : -2))));
  cleanups.push(async () => {
    try {
      process.kill(-(child.pid as number), "SIGKILL");
    } catch {
      // the group is gone: nothing left running
    }
    await exited;
  });
  return {
    pid: child.pid as number,
    lines,
    said,
    stderr: () => err,
    exited,
    write: (text) => void child.stdin.write(text),
    kill: (signal) => void child.kill(signal),
  };
}

/** A watch of `serviceType` that has its (empty) snapshot: every change from now on, with when it arrived. */
async function watchType(serviceType: string, everyHealthCheck = false): Promise<Log<Seen>> {
  const stream = admin.watch({ serviceType, everyHealthCheck });
  cleanups.push(() => stream.close());
  const log = new Log<Seen>();
  void (async () => {
    for await (const event of stream) log.push({ event, seenAt: Date.now() });
  })().catch(() => undefined);
  const first = await log.find(() => true, `the snapshot of ${serviceType}`);
  expect(first.event).toMatchObject({ type: "snapshot", instances: [] });
  return log;
}

/** Resolves once the CLI has said it registered (its session open, or its first heartbeat made): signals now take the drain path. */
function registeredLine(exec: Exec, serviceType: string): Promise<string> {
  return exec.said.find((l) => l.startsWith(`service-registry exec: registered ${serviceType} at `), `the CLI to say it registered ${serviceType}`, 10_000);
}

/** The change events (no snapshot, bookmark or probe) in `log`. */
function changes(log: Log<Seen>): RegistryWatchEvent[] {
  return log.items.map((s) => s.event).filter((e) => e.type.startsWith("instance") || e.type.startsWith("healthCheck"));
}

function captured(): Output & { text(): string } {
  let text = "";
  return { out: (t) => void (text += t), err: (t) => void (text += t), text: () => text };
}

describe("service-registry exec", () => {
  it("registers the command only once its port accepts connections, as the type, host and port given", async () => {
    const watch = await watchType("exec-start");
    const port = await freePort();
    const exec = startExec(["--type", "exec-start", "--port", String(port), "--host", "127.0.0.1", "--metadata", "zone=eu-1", "--grace-ms", "0"], port, 300);
    const listening = await exec.lines.find((l) => l.event === "listening", "the program to listen", 10_000);
    const registered = await watch.find((s) => s.event.type === "instanceRegistered", "the registration", 10_000);
    // The first change of the type is this registration, made after the program listened (one clock: this machine's).
    expect(changes(watch)[0]).toBe(registered.event);
    const instance = registered.event.type === "instanceRegistered" ? registered.event.instance : undefined;
    expect(instance).toMatchObject({ serviceType: "exec-start", host: "127.0.0.1", port, metadata: { zone: "eu-1" }, healthCheck: { kind: "session" } });
    expect(instance?.registeredAt).toBeGreaterThanOrEqual(listening.at);
    expect(await registeredLine(exec, "exec-start")).toBe(`service-registry exec: registered exec-start at 127.0.0.1:${port} (SESSION check), id ${instance?.id}`);

    exec.kill("SIGTERM");
    expect(await exec.exited).toBe(7);
  });

  it("SIGTERM: drains, passes the signal on after --grace-ms, unregisters once the program exited, and exits with its status", async () => {
    const watch = await watchType("exec-stop");
    const port = await freePort();
    const exec = startExec(["--type", "exec-stop", "--port", String(port), "--grace-ms", "1000"], port, 0);
    const registered = await watch.find((s) => s.event.type === "instanceRegistered", "the registration", 10_000);
    const id = registered.event.type === "instanceRegistered" ? registered.event.instance.id : "";
    await registeredLine(exec, "exec-stop");

    exec.kill("SIGTERM");
    const draining = await watch.find((s) => s.event.type === "instanceDraining", "the instance to drain");
    const sigterm = await exec.lines.find((l) => l.event === "sigterm", "the program to get SIGTERM", 5000);
    const exiting = await exec.lines.find((l) => l.event === "exiting", "the program to exit");
    const removed = await watch.find((s) => s.event.type === "instanceRemoved", "the instance's removal");
    expect(await exec.exited).toBe(7);

    const drainedAt = draining.event.type === "instanceDraining" ? draining.event.instance.drainingSince : 0;
    expect(sigterm.at - drainedAt, "the grace between drain and SIGTERM").toBeGreaterThanOrEqual(1000 - 5);
    expect(removed.seenAt).toBeGreaterThanOrEqual(exiting.at);
    expect(removed.event).toMatchObject({ reason: "unregistered", instance: { id } });
    expect(changes(watch).map((e) => e.type)).toEqual(["instanceRegistered", "instanceDraining", "instanceRemoved"]);
  });

  it("the program exiting on its own (3): unregistered at once, not at its TTL's expiry; the CLI exits 3", async () => {
    const watch = await watchType("exec-crash");
    const port = await freePort();
    // A TTL of a minute: expiry would take that long.
    const exec = startExec(["--type", "exec-crash", "--port", String(port), "--check", "ttl", "--ttl-ms", "60000"], port, 0);
    await registeredLine(exec, "exec-crash");
    const crashedAt = Date.now();
    exec.write("crash\n");
    const removed = await watch.find((s) => s.event.type === "instanceRemoved", "the instance's removal", 5000);
    expect(removed.event).toMatchObject({ reason: "unregistered", instance: { healthCheck: { kind: "ttl" } } });
    expect(removed.seenAt - crashedAt).toBeLessThan(5000);
    expect(await exec.exited).toBe(3);
    expect(changes(watch).some((e) => e.type === "healthCheckFailed")).toBe(false);
    // Nothing left to drain: the removal alone, no DRAINING before it.
    expect(changes(watch).map((e) => e.type)).toEqual(["instanceRegistered", "instanceRemoved"]);
  });

  it("the program SIGKILLed: unregistered at once (its session still held by the CLI would keep it), and the CLI exits 137", async () => {
    const watch = await watchType("exec-killed");
    const port = await freePort();
    const exec = startExec(["--type", "exec-killed", "--port", String(port)], port, 0);
    const listening = await exec.lines.find((l) => l.event === "listening", "the program to listen", 10_000);
    await registeredLine(exec, "exec-killed");
    process.kill(listening.pid, "SIGKILL");
    const removed = await watch.find((s) => s.event.type === "instanceRemoved", "the instance's removal", 5000);
    expect(removed.event).toMatchObject({ reason: "unregistered", instance: { healthCheck: { kind: "session" } } });
    expect(await exec.exited).toBe(128 + 9);
  });

  it("--check http --health-path /health: the registry probes the program itself and finds it healthy", async () => {
    const watch = await watchType("exec-http", true);
    const port = await freePort();
    const exec = startExec(["--type", "exec-http", "--port", String(port), "--host", "127.0.0.1", "--check", "http", "--health-path", "/health", "--grace-ms", "0"], port, 0);
    const registered = await watch.find((s) => s.event.type === "instanceRegistered", "the registration", 10_000);
    // An HTTP check with the registry's defaults is the contract's unset kind: the SDK reads it as no healthCheck.
    expect(registered.event).toMatchObject({ instance: { healthCheckPath: "/health" } });
    expect(registered.event.type === "instanceRegistered" && (registered.event.instance.healthCheck?.kind ?? "http")).toBe("http");
    await exec.lines.find((l) => l.event === "request" && l.path === "/health", "a probe of /health");
    const probe = await watch.find((s) => s.event.type === "probe", "a probe result");
    expect(probe.event).toMatchObject({ passed: true });
    const { instances } = await admin.getByType("exec-http");
    expect(instances).toEqual([expect.objectContaining({ port, health: "healthy" })]);
    await registeredLine(exec, "exec-http");
    exec.kill("SIGTERM");
    expect(await exec.exited).toBe(7);
  });

  it("waits for a registry that is unreachable at the start, and registers once it is up", async () => {
    const registryPort = await freePort();
    const port = await freePort();
    const exec = startExec(["--type", "exec-late", "--port", String(port)], port, 0, { REGISTRY_ADDRESS: `127.0.0.1:${registryPort}` });
    await exec.lines.find((l) => l.event === "listening", "the program to listen", 10_000);
    await exec.said.find((l) => l.includes(`cannot reach the registry at 127.0.0.1:${registryPort}`), "the CLI to say why it waits");
    const local = await startLocalRegistry(registryPort, undefined, TEST_KEY);
    cleanups.push(() => local.close());
    await registeredLine(exec, "exec-late");
    expect(local.registry.getByType("exec-late", false).instances).toEqual([expect.objectContaining({ port })]);
    exec.write("crash\n");
    expect(await exec.exited).toBe(3);
    expect(local.registry.getByType("exec-late", true).instances).toEqual([]);
  });

  it("a port that never opens: the program is stopped and the CLI exits 1 saying so", async () => {
    const port = await freePort();
    const exec = startExec(["--type", "exec-never", "--port", String(port), "--wait-timeout-ms", "500"], port, -1);
    expect(await exec.exited).toBe(1);
    expect(exec.lines.items.map((l) => l.event)).toEqual(["sigterm", "exiting"]);
    expect(exec.stderr()).toContain(`did not accept connections on port ${port} within 500 ms; stopping it`);
  });

  it("usage errors exit 2 with one line naming the problem; a refused key exits 1; the key is never printed", async () => {
    const secret = "not-the-key-but-secret-0123456789";
    const cases: [string[], RegExp][] = [
      [["--type", "t", "--port", "80"], /exec needs -- and then the command to run/],
      [["--type", "t", "--port", "80", "--"], /exec needs a command after --/],
      [["--port", "80", "--", "true"], /exec needs --type SERVICE_TYPE/],
      [["--type", "t", "--", "true"], /exec needs --port/],
      [["--type", "t", "--port", "70000", "--", "true"], /--port must be a number from 1 to 65535/],
      [["--type", "t", "--port", "80", "--grace-ms", "soon", "--", "true"], /--grace-ms must be a whole number of milliseconds/],
      [["--type", "t", "--port", "80", "--bogus", "--", "true"], /unknown option "--bogus"/],
    ];
    for (const [args, problem] of cases) {
      const io = captured();
      const code = await runExecCommand(["--key", secret, "--address", stack.address, ...args], io, { env: {}, cwd: dir });
      expect(code, args.join(" ")).toBe(2);
      expect(io.text().trim().split("\n"), args.join(" ")).toHaveLength(1);
      expect(io.text()).toMatch(problem);
      expect(io.text()).not.toContain(secret);
    }

    // Through the real entry point: a refused key stops the program, names the key's source, not the key.
    const port = await freePort();
    const refused = startExec(["--type", "exec-refused", "--port", String(port), "--key", secret], port, 0);
    expect(await refused.exited).toBe(1);
    expect(refused.stderr()).toMatch(/cannot register: the registry refused the registration key from --key/);
    expect(refused.lines.items.map((l) => l.event)).toEqual(["listening", "sigterm", "exiting"]);
    expect(refused.stderr()).not.toContain(secret);
  });
});
