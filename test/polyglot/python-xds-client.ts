import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { PYTHON } from "./python-toolchain.js";

const HERE = dirname(fileURLToPath(import.meta.url));

/** One call xds_client.py made: when it ended (wall-clock ms), and the backend that answered or the status it failed with. */
export interface PythonCall {
  readonly at: number;
  readonly answer?: string;
  readonly code?: string;
  readonly details?: string;
}

export interface PythonXdsClientOptions {
  /** `xds:///<service type>`. */
  readonly target: string;
  /** The bootstrap (written to a file named by GRPC_XDS_BOOTSTRAP). */
  readonly bootstrap: Record<string, unknown>;
  /** Each call's deadline, ms. */
  readonly callTimeoutMs?: number;
  /** Extra environment for C-core (GRPC_* settings). */
  readonly env?: Record<string, string>;
}

/**
 * xds_client.py running: Python's gRPC (C-core) calling `/test.Who/Who`
 * through `xds:///...` in a loop, its calls read live from its stdout so a
 * test can act between them and await what the client sees next.
 */
export class PythonXdsClient {
  /** Every call so far, in order. */
  readonly calls: PythonCall[] = [];
  private stderr = "";
  private exit: string | undefined;
  private readonly waiters = new Set<() => void>();
  private readonly exited: Promise<void>;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    private readonly dir: string,
  ) {
    let pending = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      const lines = (pending + chunk).split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) if (line.trim() !== "") this.calls.push(JSON.parse(line) as PythonCall);
      this.wake();
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (this.stderr += chunk));
    this.exited = new Promise((resolve) => {
      child.once("error", (err) => {
        this.exit = `could not run: ${err.message}`;
        this.wake();
        resolve();
      });
      child.once("close", (code, signal) => {
        this.exit = `exited (${code ?? signal})`;
        this.wake();
        resolve();
      });
    });
  }

  /** Starts xds_client.py with `options.bootstrap` in a file of its own. */
  static start(options: PythonXdsClientOptions): PythonXdsClient {
    const dir = mkdtempSync(join(tmpdir(), "registry-xds-py-"));
    const bootstrap = join(dir, "bootstrap.json");
    writeFileSync(bootstrap, JSON.stringify(options.bootstrap));
    const child = spawn(PYTHON, [join(HERE, "xds_client.py"), "--target", options.target, "--timeout", String((options.callTimeoutMs ?? 2000) / 1000)], {
      env: {
        ...process.env,
        GRPC_XDS_BOOTSTRAP: bootstrap,
        GRPC_VERBOSITY: process.env.GRPC_VERBOSITY ?? "ERROR",
        PYTHONDONTWRITEBYTECODE: "1",
        PYTHONUNBUFFERED: "1",
        ...options.env,
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    return new PythonXdsClient(child, dir);
  }

  /**
   * The calls so far once `done` holds for them, awaited call by call; fails
   * after `timeoutMs`, or when the script ends first, naming `what` and
   * showing the last calls and the script's stderr.
   */
  until(done: (calls: readonly PythonCall[]) => boolean, what: string, timeoutMs: number): Promise<PythonCall[]> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        if (done(this.calls)) finish();
        else if (this.exit !== undefined) finish(new Error(`xds_client.py ${this.exit} before ${what}; ${this.describe()}`));
      };
      const timer = setTimeout(() => finish(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${this.describe()}`)), timeoutMs);
      const finish = (error?: Error): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        if (error) reject(error);
        else resolve([...this.calls]);
      };
      this.waiters.add(check);
      check();
    });
  }

  /** Ends the script (it stops when its stdin closes; SIGKILL if it has not within 5 s) and removes its bootstrap. */
  async close(): Promise<void> {
    if (this.exit === undefined) {
      this.child.stdin.end();
      const timer = setTimeout(() => this.child.kill("SIGKILL"), 5000);
      await this.exited;
      clearTimeout(timer);
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  private wake(): void {
    for (const check of [...this.waiters]) check();
  }

  private describe(): string {
    return `${this.calls.length} calls, the last: ${JSON.stringify(this.calls.slice(-3))}; stderr: ${this.stderr.slice(-2000)}`;
  }
}
