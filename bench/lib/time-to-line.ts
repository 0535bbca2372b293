import { spawn } from "node:child_process";
import { performance } from "node:perf_hooks";

/** How long a started process took to print the line it is waited for, and that line. */
export interface LineTiming {
  readonly ms: number;
  readonly line: string;
}

/**
 * Starts `node <args>` and times it from the spawn to the first stdout line
 * that `ready` accepts (the server's "registry serving gRPC" log line), then
 * stops it with SIGTERM and waits for it to exit. Rejects, with the process's
 * last stderr, if it exits first or is not ready within `timeoutMs`.
 */
export async function timeToLine(
  args: readonly string[],
  ready: (line: string) => boolean,
  options: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {},
): Promise<LineTiming> {
  const startedAt = performance.now();
  const child = spawn(process.execPath, args, { env: options.env ?? process.env, stdio: ["ignore", "pipe", "pipe"] });
  // "close", not "exit": a process that prints and exits may exit before its stdout is read.
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString()).slice(-2000)));
  try {
    return await new Promise<LineTiming>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`node ${args.join(" ")}: not ready after ${options.timeoutMs ?? 120_000} ms`)), options.timeoutMs ?? 120_000);
      let pending = "";
      child.stdout.on("data", (chunk: Buffer) => {
        const at = performance.now();
        pending += chunk.toString();
        const lines = pending.split("\n");
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
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
    await exited;
  }
}
