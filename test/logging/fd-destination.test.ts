import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { closeSync, constants, mkdtempSync, openSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { fdDestination } from "../../src/logging/logger.js";

const LINES = ['{"msg":"instance registered","port":8080}\n', '{"msg":"zone é, 東京, 🙂"}\n', ""];

function tempFile(name: string): string {
  return join(mkdtempSync(join(tmpdir(), "log-dest-")), name);
}

describe("fdDestination (the server's stdout)", () => {
  it("writes every line whole, in order and at once, multi-byte characters included", () => {
    const path = tempFile("out.log");
    const fd = openSync(path, "w");
    const dest = fdDestination(fd);
    for (const line of LINES) {
      dest.write(line);
      // Out before the call that logged it goes on: a SIGKILL right after loses nothing.
      expect(readFileSync(path, "utf8").endsWith(line)).toBe(true);
    }
    closeSync(fd);
    expect(readFileSync(path, "utf8")).toBe(LINES.join(""));
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
    expect(() => dest.write(LINES[0] as string)).not.toThrow();
    expect(() => dest.write(LINES[1] as string)).not.toThrow();
    closeSync(fd);
  });
});
