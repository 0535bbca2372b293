import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { SERVING_PREFIX } from "../../src/logging/serving-summary.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** tsx by its absolute URL: `--import tsx` resolves from the working directory. */
const TSX = pathToFileURL(createRequire(join(ROOT, "package.json")).resolve("tsx")).href;

/** A registry server running as a child process, as `npm start` runs it. */
export interface ServerProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly dataDir: string;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  kill(signal?: NodeJS.Signals): void;
}

/** Temp data directory for one test. */
export function tempDataDir(): string {
  return mkdtempSync(join(tmpdir(), "registry-test-"));
}

/**
 * The JSON start-up line in `output` ("serving gRPC ... on HOST:PORT ..."),
 * parsed; undefined until it is there.
 */
export function servingLine(output: string): ({ msg: string; port: number; pid: number } & Record<string, unknown>) | undefined {
  const line = output.split("\n").find((l) => l.startsWith("{") && l.includes(`"msg":"${SERVING_PREFIX}`));
  return line === undefined ? undefined : JSON.parse(line);
}

/**
 * Starts `src/cli/main.ts serve` on an ephemeral loopback port and resolves
 * once it logs that it serves. Rejects with its output if it exits first.
 * A variable given as undefined is removed from the environment; `cwd`
 * (default: the checkout) is where the server looks for `.env`; `fileLimit`
 * runs it with that open-file limit.
 */
export async function startServerProcess(
  env: Record<string, string | undefined> = {},
  args: string[] = [],
  { cwd = ROOT, fileLimit }: { cwd?: string; fileLimit?: number } = {},
): Promise<ServerProcess> {
  const dataDir = env.DATA_DIR ?? tempDataDir();
  // HTTP_PORT=0: no HTTP port unless a test asks for one (the default 4001 would collide across parallel tests).
  // LOG_FORMAT=auto: JSON to the pipe, whatever a developer's shell exports.
  const childEnv: NodeJS.ProcessEnv = { ...process.env, PORT: "0", HTTP_PORT: "0", HOST: "127.0.0.1", LOG_LEVEL: "info", LOG_FORMAT: "auto", DATA_DIR: dataDir, ...env };
  for (const [name, value] of Object.entries(childEnv)) if (value === undefined) delete childEnv[name];
  const nodeArgs = ["--import", TSX, join(ROOT, "src/cli/main.ts"), "serve", ...args];
  // fileLimit: the server runs under `ulimit -n` (bash execs node, so the PID is the server's).
  const [command, commandArgs] =
    fileLimit === undefined
      ? [process.execPath, nodeArgs]
      : ["bash", ["-c", 'ulimit -n "$0" && exec "$@"', String(fileLimit), process.execPath, ...nodeArgs]];
  const child = spawn(command, commandArgs, {
    cwd,
    env: childEnv,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start within 15 s:\n${out}`)), 15_000);
    const onData = (): void => {
      const line = servingLine(out);
      if (!line) return;
      clearTimeout(timer);
      child.stdout.off("data", onData);
      resolve(line.port);
    };
    child.stdout.on("data", onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${code}) before serving:\n${out}`));
    });
  });
  return { child, port, dataDir, output: () => out, exited, kill: (s = "SIGTERM") => void child.kill(s) };
}

/** Runs the CLI to completion and returns its exit code and output. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ["--import", "tsx", "src/cli/main.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on("exit", (code) => resolve({ code: code ?? -1, stdout, stderr })));
}
