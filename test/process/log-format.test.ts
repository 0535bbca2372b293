import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { startServerProcess, tempDataDir, type ServerProcess } from "../support/server-process.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const KEY = "log-format-test-registration-key-0001";
const ANSI = /\x1b\[[0-9;]*m/g;

interface Run {
  /** The lines it printed, colours and carriage returns removed. */
  readonly lines: string[];
  readonly code: number | null;
}

/**
 * Runs the server until its first line, then stops it with SIGINT and
 * collects what it printed until it exits. On a `terminal` its stdout is a
 * pseudo-terminal (`script`) and the SIGINT is a Ctrl-C typed into it, as a
 * person would; otherwise stdout is a pipe.
 */
async function serveUntilFirstLine(env: Record<string, string>, { terminal }: { terminal: boolean }): Promise<Run> {
  const node = [process.execPath, "--import", "tsx", "src/cli/main.ts", "serve"];
  const [command, args] = terminal ? ["script", ["-qfec", `exec ${node.map((a) => JSON.stringify(a)).join(" ")}`, "/dev/null"]] : [node[0] as string, node.slice(1)];
  const child = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, PORT: "0", HTTP_PORT: "0", HOST: "127.0.0.1", STORE: "memory", DATA_DIR: tempDataDir(), LOG_LEVEL: "info", LOG_FORMAT: "auto", ...env },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const lines = (): string[] => out.replace(ANSI, "").replaceAll("\r", "").replace("^C", "").split("\n").filter((l) => l !== "");
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on("exit", (code) => resolve(code));
    child.on("error", (err) => reject(new Error(`cannot run ${command}: ${err.message}`)));
  });
  const kill = setTimeout(() => child.kill("SIGKILL"), 15_000);
  try {
    await new Promise<void>((resolve, reject) => {
      const onData = (): void => {
        if (!out.includes("\n")) return;
        child.stdout.off("data", onData);
        resolve();
      };
      child.stdout.on("data", onData);
      exited.then((code) => reject(new Error(`exited (${code}) before its first line:\n${out}`)), reject);
    });
    if (terminal) child.stdin.write("\x03"); // Ctrl-C: the terminal sends SIGINT
    else child.kill("SIGINT");
    const code = await exited;
    return { lines: lines(), code };
  } finally {
    clearTimeout(kill);
  }
}

function isJson(line: string): boolean {
  try {
    return typeof JSON.parse(line) === "object";
  } catch {
    return false;
  }
}

// util-linux `script` gives the server a pseudo-terminal as stdout (Debian's bsdutils: always installed).
describe.skipIf(process.platform !== "linux")("logs on a terminal", () => {
  it("are human-readable lines, the first saying where it listens, its store and where the key came from", async () => {
    const run = await serveUntilFirstLine({ SERVICE_REGISTRATION_KEY: KEY }, { terminal: true });
    expect(run.code).toBe(0);
    expect(run.lines[0]).toMatch(
      /^\[\d\d:\d\d:\d\d\.\d{3}\] INFO \(\d+\): serving gRPC and HTTP on 127\.0\.0\.1:\d+ \(plaintext\); store memory \(lost on restart\); key from SERVICE_REGISTRATION_KEY in the environment /,
    );
    expect(run.lines.slice(1)).toEqual([
      expect.stringMatching(/^\[[\d:.]+\] INFO: shutting down \{"signal":"SIGINT"\}$/),
      expect.stringMatching(/^\[[\d:.]+\] INFO: stopped$/),
    ]);
    expect(run.lines.filter(isJson)).toEqual([]);
    expect(run.lines.join("\n")).not.toContain(KEY);
  });

  it("stay JSON with LOG_FORMAT=json", async () => {
    const run = await serveUntilFirstLine({ SERVICE_REGISTRATION_KEY: KEY, LOG_FORMAT: "json" }, { terminal: true });
    expect(run.code).toBe(0);
    expect(run.lines.length).toBeGreaterThanOrEqual(3);
    expect(run.lines.every(isJson), run.lines.join("\n")).toBe(true);
    expect(JSON.parse(run.lines[0] as string).msg).toMatch(/^serving gRPC and HTTP on 127\.0\.0\.1:\d+ /);
  });
});

describe("logs to a pipe or a file", () => {
  let server: ServerProcess | undefined;
  afterEach(() => server?.kill("SIGKILL"));

  it("are JSON lines, the first the start-up line with its fields", async () => {
    const dataDir = tempDataDir();
    server = await startServerProcess({ DATA_DIR: dataDir, STORE: "sqlite", SERVICE_REGISTRATION_KEY: KEY });
    server.kill("SIGTERM");
    expect(await server.exited).toBe(0);
    const lines = server.output().trim().split("\n");
    expect(lines.every(isJson), server.output()).toBe(true);
    const first = JSON.parse(lines[0] as string) as Record<string, unknown>;
    expect(first).toMatchObject({
      level: 30,
      host: "127.0.0.1",
      port: server.port,
      pid: server.child.pid,
      tls: "plaintext",
      store: "sqlite",
      dataDir,
      keySource: "environment",
      msg: `serving gRPC and HTTP on 127.0.0.1:${server.port} (plaintext); store sqlite in ${dataDir}; key from SERVICE_REGISTRATION_KEY in the environment`,
    });
    expect(server.output()).not.toContain(KEY);
  });

  it("are human-readable with LOG_FORMAT=pretty", async () => {
    const run = await serveUntilFirstLine({ SERVICE_REGISTRATION_KEY: KEY, LOG_FORMAT: "pretty" }, { terminal: false });
    expect(run.code).toBe(0);
    expect(run.lines[0]).toMatch(/^\[[\d:.]+\] INFO \(\d+\): serving gRPC and HTTP on 127\.0\.0\.1:\d+ \(plaintext\); store memory/);
    expect(run.lines.filter(isJson)).toEqual([]);
    expect(run.lines.slice(1).map((l) => l.replace(/^\[[\d:.]+\] /, ""))).toEqual(['INFO: shutting down {"signal":"SIGINT"}', "INFO: stopped"]);
  });

  it("say when PORT serves gRPC only", async () => {
    server = await startServerProcess({ STORE: "memory", SERVICE_REGISTRATION_KEY: KEY, PORT_SERVES_HTTP: "false" });
    const first = JSON.parse(server.output().split("\n")[0] as string) as { msg: string };
    expect(first.msg).toBe(
      `serving gRPC on 127.0.0.1:${server.port} (plaintext); store memory (lost on restart); key from SERVICE_REGISTRATION_KEY in the environment`,
    );
  });
});
