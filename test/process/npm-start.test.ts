import { spawn, type ChildProcess } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { servingLine, tempDataDir } from "../support/server-process.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== "ESRCH";
  }
}

/** Resolves once `check` holds, polling; rejects with `what` after `ms`. */
async function until(check: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`after ${ms} ms: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
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

  it("stops the server when npm gets SIGTERM: no orphan holding the port", async () => {
    npm = spawn("npm", ["start"], {
      cwd: ROOT,
      env: { ...process.env, PORT: "0", HTTP_PORT: "0", HOST: "127.0.0.1", STORE: "memory", DATA_DIR: tempDataDir(), LOG_FORMAT: "json" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    npm.stdout?.on("data", (d: Buffer) => (out += d.toString()));
    npm.stderr?.on("data", (d: Buffer) => (out += d.toString()));
    const npmExited = new Promise<void>((resolve) => npm?.once("exit", () => resolve()));
    await until(() => servingLine(out) !== undefined, 30_000, `npm start did not log its start-up line:\n${out}`);
    const { pid, port } = servingLine(out) as { pid: number; port: number };
    serverPid = pid;
    expect(pid).not.toBe(npm.pid);

    npm.kill("SIGTERM");
    await npmExited;
    await until(() => !alive(pid), 10_000, `the server (pid ${pid}) outlived npm:\n${out}`);
    expect(await portFree(port)).toBe(true);
    expect(out).toContain('"msg":"stopped"'); // a graceful stop, not a kill
  }, 45_000);
});
