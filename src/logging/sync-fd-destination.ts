import { writeSync } from "node:fs";

/** How long to wait before retrying a write that a full non-blocking pipe refused. */
const RETRY_WAIT_MS = 1;
const waitCell = new Int32Array(new SharedArrayBuffer(4));

/**
 * A pino destination writing each line synchronously to a file descriptor
 * (stdout), with one `write(2)` of the string itself.
 *
 * pino's own synchronous destination (sonic-boom) encodes every line to UTF-8
 * a second time, into a Buffer, to account for a partial write, and churns
 * Node's buffer pool doing so: the log line was ~3 µs of a 21 µs Register
 * in-process that way, ~0.6 µs this way (bench/tools/register-in-process.ts).
 * Here only a partial write (a pipe that is full) pays for a Buffer.
 *
 * A full non-blocking pipe (EAGAIN) is waited for, so a stuck log reader
 * stalls the server rather than losing lines (see `createLogger`). Any other
 * failure (the reader is gone: EPIPE) drops the line: logging must never
 * throw into the registry's code paths.
 */
export class SyncFdDestination {
  constructor(private readonly fd: number) {}

  write(line: string): void {
    try {
      const written = writeSync(this.fd, line); // bytes, not characters
      if (written < Buffer.byteLength(line)) this.writeRest(Buffer.from(line), written);
    } catch (err) {
      if (isRetryable(err)) this.writeRest(Buffer.from(line), 0);
    }
  }

  /** Everything is written when `write` returns; nothing to flush. */
  flush(callback?: (err?: Error) => void): void {
    callback?.();
  }

  private writeRest(bytes: Buffer, offset: number): void {
    while (offset < bytes.length) {
      try {
        const written = writeSync(this.fd, bytes, offset);
        offset += written;
        if (written === 0) Atomics.wait(waitCell, 0, 0, RETRY_WAIT_MS);
      } catch (err) {
        if (!isRetryable(err)) return;
        Atomics.wait(waitCell, 0, 0, RETRY_WAIT_MS);
      }
    }
  }
}

function isRetryable(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === "EAGAIN" || code === "EBUSY";
}
