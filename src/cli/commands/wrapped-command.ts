import { spawn, type ChildProcess } from "node:child_process";
import { constants as osConstants } from "node:os";

/** How a command ended: its exit code, the signal that ended it, or why it never started. */
export interface CommandEnd {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** Set when the program could not be started (not found, not executable). */
  readonly startError?: NodeJS.ErrnoException;
}

/**
 * The exit status a shell reports for `end`: the exit code; 128 + the
 * signal's number for a command a signal ended; 127 for a program not
 * found and 126 for one that could not run.
 *
 * @example exitStatus({ code: null, signal: "SIGKILL" }) // 137
 */
export function exitStatus(end: CommandEnd): number {
  if (end.startError) return end.startError.code === "ENOENT" ? 127 : 126;
  if (end.signal) return 128 + (osConstants.signals[end.signal] ?? 0);
  return end.code ?? 1;
}

/**
 * A program `exec` runs: started with the same stdin, stdout, stderr and
 * environment, in the same process group; signals reach it only through
 * `signal()` (or from whoever signals the group).
 */
export class WrappedCommand {
  /** Resolves once, when the program has exited (or failed to start). */
  readonly exited: Promise<CommandEnd>;
  private readonly child: ChildProcess;
  private end: CommandEnd | undefined;

  constructor(command: string, args: readonly string[]) {
    this.child = spawn(command, args, { stdio: "inherit" });
    this.exited = new Promise((resolve) => {
      const finish = (end: CommandEnd): void => {
        if (this.end) return;
        this.end = end;
        resolve(end);
      };
      this.child.once("exit", (code, signal) => finish({ code, signal }));
      // Also emitted when a kill fails; only a program that never got a PID did not start.
      this.child.on("error", (err: NodeJS.ErrnoException) => {
        if (this.child.pid === undefined) finish({ code: null, signal: null, startError: err });
      });
    });
  }

  /** The program's process id; undefined if it did not start. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Whether it is still running. */
  get running(): boolean {
    return this.end === undefined && this.child.pid !== undefined;
  }

  /** Sends `signal` to the program if it still runs. */
  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Sends SIGTERM, then SIGKILL if it still runs `killAfterMs` later; resolves when it has exited. */
  async stop(killAfterMs: number): Promise<CommandEnd> {
    this.signal("SIGTERM");
    const timer = setTimeout(() => this.signal("SIGKILL"), killAfterMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
