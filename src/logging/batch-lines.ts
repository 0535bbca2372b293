import type pino from "pino";

/** The messages of the registry's change lines: one per committed change, written out a batch at a time. */
export const CHANGE_LINE = {
  registered: "instance registered",
  removed: "instance removed",
  health: "instance health changed",
  draining: "instance draining",
} as const;

const CHANGE_MESSAGES: ReadonlySet<string> = new Set(Object.values(CHANGE_LINE));

/** Destinations holding lines, written out when the process exits. */
const holding = new Set<BatchLines>();
// 'exit' also runs on process.exit() and after an uncaught exception.
process.on("exit", () => {
  for (const destination of holding) destination.flush();
});

/**
 * A pino destination that holds the lines written to it until `flush()`, then
 * hands them to `out` in one write: the registry logs a committed batch's
 * change lines and flushes once (`logger.flush()`), before any of the batch's
 * callers is answered, so a batch costs one write(2), and a SIGKILL loses no
 * line of an acknowledged change. Every other line is flushed as soon as it
 * is logged (`flushOtherLines`, the logger's hook), so nothing else waits.
 */
export class BatchLines implements pino.DestinationStream {
  private held = "";

  constructor(private readonly out: pino.DestinationStream) {}

  write(line: string): void {
    if (this.held === "") holding.add(this);
    this.held += line;
  }

  /** Writes what is held (pino's `logger.flush()` calls it). */
  flush(callback?: (err?: Error) => void): void {
    const lines = this.held;
    if (lines !== "") {
      this.held = "";
      holding.delete(this);
      this.out.write(lines);
    }
    callback?.();
  }
}

/** Loggers `createLogger` made: their change lines wait for `flushChangeLines`. */
const batchingLoggers = new WeakSet<object>();

/** Marks a logger whose change lines are held until flushed (only `createLogger` calls it). */
export function markBatchingLogger(logger: object): void {
  batchingLoggers.add(logger);
}

/**
 * Writes out a committed batch's change lines, for a logger that holds them
 * (one `createLogger` made); any other logger (console, a user's pino) wrote
 * them as they came, and is left alone.
 */
export function flushChangeLines(logger: object): void {
  if (batchingLoggers.has(logger)) (logger as pino.Logger).flush();
}

/**
 * pino's `logMethod` hook for a logger writing to a {@link BatchLines}: a line
 * that is not a change line is written out at once.
 */
export function flushOtherLines(this: pino.Logger, args: unknown[], method: (...args: unknown[]) => void): void {
  method.apply(this, args);
  const message = typeof args[0] === "string" ? args[0] : args[1];
  if (typeof message !== "string" || !CHANGE_MESSAGES.has(message)) this.flush();
}
