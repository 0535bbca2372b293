import { execFileSync, spawn, spawnSync } from "node:child_process";
import { once } from "node:events";
import { closeSync, constants, mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { flushChangeLines } from "../../src/logging/batch-lines.js";
import { createLogger, fdDestination } from "../../src/logging/logger.js";

const LINES = ['{"msg":"instance registered","port":8080}\n', '{"msg":"zone é, 東京, 🙂"}\n', ""];

function tempFile(name: string): string {
  return join(mkdtempSync(join(tmpdir(), "log-dest-")), name);
}

describe("fdDestination (the server's stdout)", () => {
  it("holds lines until flushed, then writes them whole and in order in one piece, multi-byte characters included", () => {
    const path = tempFile("out.log");
    const fd = openSync(path, "w");
    const dest = fdDestination(fd);
    for (const line of LINES) dest.write(line);
    expect(readFileSync(path, "utf8")).toBe("");
    dest.flush();
    closeSync(fd);
    expect(readFileSync(path, "utf8")).toBe(LINES.join(""));
  });

  it("through the server's logger: change lines wait for the batch's flush, every other line goes out at once", () => {
    const path = tempFile("out.log");
    const fd = openSync(path, "w");
    const logger = createLogger("info", fdDestination(fd));
    const lines = () => readFileSync(path, "utf8").split("\n").filter(Boolean).map((l) => (JSON.parse(l) as { msg: string }).msg);
    logger.info({ instanceId: "a" }, "instance registered");
    logger.info({ instanceId: "b" }, "instance removed");
    expect(lines()).toEqual([]);
    logger.warn("store unreachable");
    expect(lines()).toEqual(["instance registered", "instance removed", "store unreachable"]);
    logger.info({ instanceId: "c" }, "instance health changed");
    flushChangeLines(logger);
    expect(lines()).toEqual(["instance registered", "instance removed", "store unreachable", "instance health changed"]);
    closeSync(fd);
  });

  it("writes held lines when the process exits (process.exit() and an uncaught exception included)", () => {
    const script = (end: string): string =>
      [
        `import { fdDestination } from ${JSON.stringify(join(process.cwd(), "src/logging/logger.ts"))};`,
        "const dest = fdDestination(1);",
        'dest.write("held at exit\\n");',
        end,
      ].join("\n");
    for (const end of ["process.exit(3);", 'throw new Error("boom");']) {
      const child = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script(end)], { encoding: "utf8" });
      expect(child.status).not.toBe(0);
      expect(child.stdout).toBe("held at exit\n");
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
    const dest = fdDestination(fd);
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
    const dest = fdDestination(fd);
    dest.write(LINES[0] as string);
    expect(() => dest.flush()).not.toThrow();
    dest.write(LINES[1] as string);
    expect(() => dest.flush()).not.toThrow();
    closeSync(fd);
  });
});
