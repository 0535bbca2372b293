import { execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { closeSync, constants, mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { FdDestination } from "../../src/logging/fd-destination.js";

const LINES = ['{"msg":"instance registered","port":8080}\n', '{"msg":"zone é, 東京, 🙂"}\n', ""];

function tempFile(name: string): string {
  return join(mkdtempSync(join(tmpdir(), "log-dest-")), name);
}

describe("FdDestination", () => {
  it("writes every line whole and in order, multi-byte characters included", () => {
    const path = tempFile("out.log");
    const fd = openSync(path, "w");
    const dest = new FdDestination(fd);
    for (const line of LINES) dest.write(line);
    dest.flush();
    closeSync(fd);
    expect(readFileSync(path, "utf8")).toBe(LINES.join(""));
  });

  it("writes a run's lines before a promise continuation queued after them runs", async () => {
    const path = tempFile("out.log");
    const fd = openSync(path, "w");
    const dest = new FdDestination(fd);
    dest.write("first\n");
    expect(readFileSync(path, "utf8")).toBe(""); // held for the rest of the run
    dest.write("second\n");
    const seenByContinuation = await Promise.resolve().then(() => readFileSync(path, "utf8"));
    expect(seenByContinuation).toBe("first\nsecond\n");
    dest.write("third\n"); // a later run: held again, and written in order
    await Promise.resolve();
    closeSync(fd);
    expect(readFileSync(path, "utf8")).toBe("first\nsecond\nthird\n");
  });

  it("writes at once, without waiting for the run to end, once 64 KiB are held", () => {
    const path = tempFile("out.log");
    const fd = openSync(path, "w");
    const dest = new FdDestination(fd);
    const line = `${"x".repeat(1023)}\n`;
    for (let i = 0; i < 64; i++) dest.write(line);
    const written = readFileSync(path, "utf8");
    closeSync(fd);
    expect(written).toBe(line.repeat(64));
  });

  it("writes held lines when the process exits (process.exit() and an uncaught exception included), and lines logged while it exits", () => {
    const script = (end: string): string =>
      [
        `import { FdDestination } from ${JSON.stringify(join(process.cwd(), "src/logging/fd-destination.ts"))};`,
        "const dest = new FdDestination(1);",
        'dest.write("before exit\\n");',
        'process.on("exit", () => dest.write("from a later exit listener\\n"));',
        end,
      ].join("\n");
    for (const end of ["process.exit(3);", 'throw new Error("boom");']) {
      const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script(end)], { encoding: "utf8" });
      expect(child.status).not.toBe(0);
      expect(child.stdout).toBe("before exit\nfrom a later exit listener\n");
    }
  });

  it("finishes lines a full non-blocking pipe takes only in part (EAGAIN), losing nothing", async () => {
    const dir = mkdtempSync(join(tmpdir(), "log-pipe-"));
    const fifo = join(dir, "pipe");
    const out = join(dir, "out.log");
    execFileSync("mkfifo", [fifo]);
    // A read end of our own lets the non-blocking write end open before the
    // reader (cat) has; it never reads, so cat receives every byte.
    const heldOpen = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    const outFd = openSync(out, "w");
    const reader = spawn("cat", [fifo], { stdio: ["ignore", outFd, "inherit"] });
    const exited = once(reader, "exit");
    const dest = new FdDestination(fd);
    // Far larger than a pipe's 64 KiB buffer: written in parts, with EAGAIN between them.
    const big = `${"x".repeat(300_000)}é${"y".repeat(300_000)}\n`;
    const lines = [LINES[0] as string, big, LINES[1] as string, big];
    for (const line of lines) dest.write(line);
    dest.flush();
    closeSync(fd);
    await exited;
    closeSync(heldOpen);
    closeSync(outFd);
    expect(readFileSync(out, "utf8")).toBe(lines.join(""));
  });

  it("drops a line, without throwing, once the reader is gone (EPIPE)", async () => {
    const dir = mkdtempSync(join(tmpdir(), "log-epipe-"));
    const fifo = join(dir, "pipe");
    execFileSync("mkfifo", [fifo]);
    const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    const fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
    closeSync(reader); // no reader left: write(2) fails with EPIPE
    const dest = new FdDestination(fd);
    dest.write(LINES[0] as string);
    expect(() => dest.flush()).not.toThrow();
    closeSync(fd);
  });
});
