import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { holdRegisterInFlight } from "../support/call-in-flight.js";
import { servingLine, tempDataDir } from "../support/server-process.js";
import { waitFor } from "../support/wait-for.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const KEY = "npm-start-test-key-0123456789";

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/** True if nothing listens on the port any more: we can bind it ourselves. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = createServer();
    probe.once("error", () => resolve(false));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
  });
}

describe("npm start", () => {
  let npm: ChildProcess | undefined;
  let serverPid: number | undefined;
  afterEach(() => {
    npm?.kill("SIGKILL");
    // An orphan the test found: stopped by its process id, nothing else.
    if (serverPid !== undefined && alive(serverPid)) process.kill(serverPid, "SIGKILL");
  });

  /** Starts `npm start` in its own process group; resolves with the server's pid and port once it serves. */
  async function npmStart(): Promise<{ pid: number; port: number; output: () => string; npmExited: Promise<void> }> {
    npm = spawn("npm", ["start"], {
      cwd: ROOT,
      env: {
        ...process.env,
        PORT: "0",
        HTTP_PORT: "0",
        HOST: "127.0.0.1",
        STORE: "memory",
        DATA_DIR: tempDataDir(),
        LOG_FORMAT: "json",
        SERVICE_REGISTRATION_KEY: KEY,
        SHUTDOWN_GRACE_MS: "3000",
      },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let out = "";
    npm.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    npm.stderr?.on("data", (d: Buffer) => (out += d.toString()));
    const npmExited = new Promise<void>((resolve) => npm?.once("exit", () => resolve()));
    await waitFor(() => servingLine(out) !== undefined, () => `npm start to log its start-up line; output:\n${out}`, 30_000, 50);
    const { pid, port } = servingLine(out) as { pid: number; port: number };
    serverPid = pid;
    return { pid, port, output: () => out, npmExited };
  }

  it.each(["SIGINT", "SIGTERM"] as const)(
    "stops gracefully on a %s to the whole process group (Ctrl-C, systemd): npm's forwarded copy is not a second signal",
    async (signal) => {
      const { pid, port, output, npmExited } = await npmStart();
      // A Register whose message is still on its way holds the graceful stop for the grace period,
      // so npm's forwarded copy of the signal arrives while the server is stopping.
      const session = await holdRegisterInFlight(port, KEY);
      process.kill(-(npm?.pid as number), signal);
      await npmExited;
      await waitFor(() => !alive(pid), () => `the server (pid ${pid}) to exit after npm; output:\n${output()}`, 10_000, 50);
      expect(await portFree(port)).toBe(true);
      expect(output()).toContain('"msg":"stopped"');
      expect(output()).not.toContain("second stop signal");
      session.destroy();
    },
    45_000,
  );

  it("stops the server when npm gets SIGTERM: no orphan holding the port", async () => {
    const { pid, port, output, npmExited } = await npmStart();
    expect(pid).not.toBe(npm?.pid);

    npm?.kill("SIGTERM");
    await npmExited;
    await waitFor(() => !alive(pid), () => `the server (pid ${pid}) to exit after npm; output:\n${output()}`, 10_000, 50);
    expect(await portFree(port)).toBe(true);
    expect(output()).toContain('"msg":"stopped"'); // a graceful stop, not a kill
  }, 45_000);
});
