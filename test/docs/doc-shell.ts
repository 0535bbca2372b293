import { spawn, type ChildProcess } from "node:child_process";
import { cpSync, mkdtempSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ROOT } from "./doc-blocks.js";

/**
 * Runs documented shell commands for real, with bash: one-shot commands to
 * completion, long-running ones (a server, `watch`) until a line shows they
 * are up, then stopped with a signal the way a reader stops them.
 */

export interface ShellResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface ShellOptions {
  readonly cwd?: string;
  /** Added to this process's environment. */
  readonly env?: Record<string, string>;
  readonly timeoutMs?: number;
  /** bash -x: the expanded commands on stderr (to see what `$(...)` gave). */
  readonly trace?: boolean;
}

function shellEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  // A colour-free, prompt-free environment, as in CI.
  return { ...process.env, NO_COLOR: "1", npm_config_update_notifier: "false", ...env };
}

/** Runs `script` with bash to completion. */
export function runShell(script: string, opts: ShellOptions = {}): Promise<ShellResult> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", [...(opts.trace ? ["-x"] : []), "-c", script], {
      cwd: opts.cwd ?? ROOT,
      env: shellEnv(opts.env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`\`${script}\` did not finish within ${opts.timeoutMs ?? 15_000} ms:\n${stdout}${stderr}`));
    }, opts.timeoutMs ?? 15_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

/** A long-running command, started. */
export interface Running {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the first stdout line for which `match` returns a value. */
  waitFor<T>(what: string, match: (line: string) => T | undefined, timeoutMs?: number): Promise<T>;
  /** Sends `signal` to the command's process group and resolves with its exit code (or signal). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/** Starts `script` with bash in a process group of its own; `stop()` or `kill()` ends it. */
export function startShell(script: string, opts: ShellOptions = {}): Running {
  const child = spawn("bash", [...(opts.trace ? ["-x"] : []), "-c", script], {
    cwd: opts.cwd ?? ROOT,
    env: shellEnv(opts.env),
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  let err = "";
  const listeners = new Set<() => void>();
  child.stdout?.on("data", (d: Buffer) => {
    out += d.toString();
    for (const l of listeners) l();
  });
  child.stderr?.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | string>((resolve) => child.on("exit", (code, signal) => resolve(code ?? signal ?? -1)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor<T>(what: string, match: (line: string) => T | undefined, timeoutMs = 20_000): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        let settled = false;
        const settle = (fn: () => void): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          listeners.delete(check);
          fn();
        };
        const check = (): void => {
          for (const line of out.split("\n")) {
            const found = match(line);
            if (found !== undefined) return settle(() => resolve(found));
          }
        };
        const timer = setTimeout(() => settle(() => reject(new Error(`\`${script}\`: no ${what} within ${timeoutMs} ms:\n${out}${err}`))), timeoutMs);
        void exited.then((code) => settle(() => reject(new Error(`\`${script}\` exited (${code}) before ${what}:\n${out}${err}`))));
        listeners.add(check);
        check();
      });
    },
    async stop(signal: NodeJS.Signals = "SIGTERM"): Promise<number | string> {
      if (child.exitCode === null && child.signalCode === null) process.kill(-(child.pid as number), signal);
      return exited;
    },
  };
}

/** Ends whatever is left of a started command's process group (teardown after a failure). */
export function killGroup(running: Running | undefined): void {
  const pid = running?.child.pid;
  if (pid === undefined) return;
  try {
    process.kill(-pid, "SIGKILL");
  } catch {
    // already gone
  }
}

/** The first JSON object of a stdout line, or undefined. */
export function jsonLine(line: string): Record<string, unknown> | undefined {
  if (!line.startsWith("{")) return undefined;
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/**
 * A fresh copy of the project as a reader's clone after `npm install`
 * (node_modules linked), so a command that writes `./data` or `.env`
 * writes them there, not into this checkout.
 */
export function projectCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), "doc-checkout-"));
  for (const entry of ["src", "gen", "proto", "examples", "package.json", "tsconfig.json"]) cpSync(join(ROOT, entry), join(dir, entry), { recursive: true });
  symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"), "dir");
  return dir;
}
