import { isatty } from "node:tty";
import pino, { type Logger } from "pino";
import { BatchLines, flushOtherLines, markBatchingLogger } from "./batch-lines.js";
import { prettyDestination } from "./pretty-destination.js";

/**
 * Paths pino blanks out, as a second line of defence: the code never logs a
 * key or token on purpose (log lines name instances by id, type and address).
 *
 * Every path is static. A wildcard (`*.token`) makes the redactor walk every
 * field of every line, which cost more than the rest of the line on the one
 * `info` line each registration writes. The nested objects we
 * log are errors (`err`; pino's serializer folds causes into its message and
 * stack), so those are named instead, with the containers a secret would
 * travel in (`credentials`, request headers). `metadata` covers a logged gRPC
 * Metadata.
 */
export const REDACTED_PATHS = [
  ...secretFields(""),
  ...secretFields("err."),
  // Containers a secret would travel in if one were ever logged: named, so
  // only lines that have them pay for the check.
  "credentials.*",
  ...["headers.", "req.headers."].flatMap((p) => [`${p}authorization`, `${p}["x-service-token"]`]),
];

function secretFields(prefix: string): string[] {
  return ["token", "key", "authorization", "tokenHash", "serviceToken", "registrationKey", '["x-service-token"]', "metadata"].map(
    (field) => (field.startsWith("[") ? `${prefix.slice(0, -1)}${field}` : `${prefix}${field}`),
  );
}

/**
 * The server's logger: JSON lines to stdout unless `destination` is given
 * (`stdoutDestination` gives stdout as LOG_FORMAT asks).
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options = {
    level,
    base: { service: "service-registry" },
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
    // Change lines wait for the registry's flush at the end of their batch; any other line goes out at once.
    hooks: { logMethod: flushOtherLines },
  };
  const logger = pino(options, destination ?? fdDestination(1));
  markBatchingLogger(logger);
  return logger;
}

/**
 * pino's own destination (sonic-boom) on a file descriptor, behind a
 * {@link BatchLines}: a committed batch's change lines go out in one
 * synchronous write, before the batch is acknowledged, so a SIGKILL loses no
 * line of an acknowledged change; every other line is written at once. The
 * price: a log reader that stops reading (a full pipe) stalls
 * the server until it reads again; at one line per change, not per probe, a
 * reader has to be stuck, not slow. A destination that fails otherwise (the
 * reader is gone: EPIPE; a full disk) drops lines: logging must never throw
 * into the registry's code paths.
 */
export function fdDestination(fd: number): BatchLines {
  const destination = pino.destination({ dest: fd, sync: true });
  destination.on("error", () => {});
  return new BatchLines(destination);
}

/** LOG_FORMAT: JSON lines, pino-pretty's human-readable lines, or pretty on a terminal only. */
export type LogFormat = "auto" | "json" | "pretty";

/**
 * Stdout for `createLogger`, in the format asked for: JSON (`json`, or `auto`
 * when stdout is not a terminal: a file, a pipe, a log collector), else
 * human-readable lines (`PrettyDestination`). Both write through
 * `fdDestination`, with the same durability.
 *
 * `isatty(1)`, not `process.stdout.isTTY`: that getter would open a libuv
 * stream on fd 1 (a pipe's turns non-blocking) just to ask.
 */
export async function stdoutDestination(format: LogFormat, isTerminal = isatty(1)): Promise<pino.DestinationStream> {
  const stdout = fdDestination(1);
  if (format === "json" || (format === "auto" && !isTerminal)) return stdout;
  return prettyDestination(stdout);
}
