import { spawn } from "node:child_process";
import { performance } from "node:perf_hooks";
import { trackProcess } from "./ipc.js";

/** How long a started process took to print the line it is waited for, and that line. */
export interface LineTiming {
  readonly ms: number;
  readonly line: string;
}

/** How long a process may take to exit after SIGTERM before it is killed. */
const STOP_GRACE_MS = 10_000;

/**
 * Starts `node <args>` and times it from the spawn to the first stdout line
 * that `ready` accepts (the server's start-up log line, "serving gRPC ..."), then
 * stops it with SIGTERM (SIGKILL after 10 s: a server stuck in start-up
 * acts on a stop signal only once started) and waits for it to exit. Rejects,
 * with the process's last stderr, if it exits first or is not ready within
 * `timeoutMs`.
 */
export async function timeToLine(
  args: readonly string[],
  ready: (line: string) => boolean,
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<LineTiming> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const startedAt = performance.now();
  const child = spawn(process.execPath, args, { env: options.env ?? process.env, cwd: options.cwd, stdio: ["ignore", "pipe", "pipe"] });
  trackProcess(child);
  // "close", not "exit": a process that prints and exits may exit before its stdout is read.
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => (stderr = (stderr + chunk).slice(-2000)));
  try {
    return await new Promise<LineTiming>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node ${args.join(" ")}: not ready after ${timeoutMs} ms`)), timeoutMs);
      child.once("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      let pending = "";
      child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
        const at = performance.now();
        const lines = (pending + chunk).split("\n");
        pending = lines.pop() ?? "";
        const line = lines.find(ready);
        if (line !== undefined) {
          clearTimeout(timer);
          resolve({ ms: at - startedAt, line });
        }
      });
      child.once("close", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`node ${args.join(" ")} exited (${signal ?? code}) before it was ready: ${stderr.trim()}`));
      });
    });
  } finally {
    // A process that never started (spawn failed) has no pid and nothing to wait for.
    if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGTERM");
      const kill = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
      await closed;
      clearTimeout(kill);
    }
  }
}
