import { writeSync } from "node:fs";

/** How long to wait before retrying a write that a full non-blocking pipe refused. */
const RETRY_WAIT_MS = 1;
const waitCell = new Int32Array(new SharedArrayBuffer(4));
/** Lines held beyond this many UTF-16 units are written at once, whatever the run. */
const MAX_HELD_CHARS = 64 * 1024;

/**
 * Continuations of this promise are the microtasks that write held lines:
 * node's `queueMicrotask` makes an AsyncResource and a bound function for
 * each, a promise continuation neither. `writeHeld` never throws.
 */
const RESOLVED = Promise.resolve();
/** Destinations with lines held, written out when the process exits. */
const holding = new Set<FdDestination>();
/** Set once the process exits: no microtask runs after that, so lines are written as they come. */
let exiting = false;
// 'exit' also runs on process.exit() and after an uncaught exception; 'exit'
// listeners added after this module loaded run after this one, and what they
// log is written at once.
process.on("exit", () => {
  exiting = true;
  for (const d of holding) d.flush();
});

/**
 * A pino destination writing to a file descriptor (stdout) with `write(2)`,
 * one write for every line logged by one run of JavaScript (a callback and
 * the microtasks it queues).
 *
 * The first line of a run queues a microtask that writes it and every line
 * after it in one piece. A microtask runs before any promise continuation
 * queued after it, and every acknowledgement (a gRPC answer, an HTTP
 * response) goes out through one queued after the change it reports was
 * applied and logged: a line is out before its change is acknowledged, and a
 * SIGKILL loses only lines of changes nobody has heard of. (Watch events are
 * written to their streams in the same run as the line, and leave after it
 * because node:http2 sends from an immediate. Not covered: a
 * `process.nextTick` queued after a line, a synchronous socket write, or an
 * in-process `change` listener of the library, which run before the write.)
 * With one write per line, the syscall was the largest single item of a
 * Register inside the server under concurrent calls. Held lines are bounded (`MAX_HELD_CHARS` UTF-16
 * units, up to ~192 KiB) and written on exit; a line logged while the
 * process exits is written at once.
 *
 * The lines go out as one string: only a partial write (a pipe that is full)
 * pays for a Buffer. pino's own destination (sonic-boom) encodes every line to
 * UTF-8 a second time for that and churns Node's buffer pool doing so.
 *
 * A full non-blocking pipe (EAGAIN) is waited for, so a stuck log reader
 * stalls the server rather than losing lines (see `createLogger`). Any other
 * failure (the reader is gone: EPIPE) drops the lines: logging must never
 * throw into the registry's code paths.
 */
export class FdDestination {
  private held = "";

  constructor(private readonly fd: number) {}

  write(line: string): void {
    if (this.held === "") {
      void RESOLVED.then(this.writeHeld);
      holding.add(this);
    }
    this.held += line;
    if (exiting || this.held.length >= MAX_HELD_CHARS) this.writeHeld();
  }

  /** Writes every held line now (pino's `logger.flush()` calls it), then `callback`. */
  flush(callback?: (err?: Error) => void): void {
    this.writeHeld();
    callback?.();
  }

  // An arrow: queued as a microtask as it is, with no bound copy per turn.
  private readonly writeHeld = (): void => {
    const lines = this.held;
    if (lines === "") return; // written already (size bound, flush), this is the queued microtask
    this.held = "";
    holding.delete(this);
    try {
      const written = writeSync(this.fd, lines); // bytes, not characters
      if (written < Buffer.byteLength(lines)) this.writeRest(Buffer.from(lines), written);
    } catch (err) {
      if (isRetryable(err)) this.writeRest(Buffer.from(lines), 0);
    }
  };

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
