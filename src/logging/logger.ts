import { isatty } from "node:tty";
import pino, { type Logger } from "pino";
import { markPlainLogger } from "./change-line.js";
import { FdDestination } from "./fd-destination.js";
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
 *
 * Stdout is written by the process itself, one write(2) per run of
 * JavaScript (`FdDestination`): a line is out before the change it reports
 * is acknowledged, so a SIGKILL loses no line of an acknowledged change, and
 * memory stays bounded. The price: a log reader that stops reading (a full
 * pipe) stalls the server until it reads again; at one line per change, not
 * per probe, a reader has to be stuck, not slow. pino's default
 * (asynchronous writes through the libuv thread pool, one per line) cost
 * more CPU per line here, not less.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  const options = { level, base: { service: "service-registry" }, redact: { paths: REDACTED_PATHS, censor: "[redacted]" } };
  const logger = pino(options, destination ?? new FdDestination(1));
  markPlainLogger(logger); // its change lines may skip pino's generic path (see logChange)
  return logger;
}

/** LOG_FORMAT: JSON lines, pino-pretty's human-readable lines, or pretty on a terminal only. */
export type LogFormat = "auto" | "json" | "pretty";

/**
 * Stdout for `createLogger`, in the format asked for: JSON (`json`, or `auto`
 * when stdout is not a terminal: a file, a pipe, a log collector), else
 * human-readable lines (`PrettyDestination`). Both write through an
 * `FdDestination`, with the same durability.
 *
 * `isatty(1)`, not `process.stdout.isTTY`: that getter would open a libuv
 * stream on fd 1 (a pipe's turns non-blocking) just to ask.
 */
export async function stdoutDestination(format: LogFormat, isTerminal = isatty(1)): Promise<pino.DestinationStream> {
  const stdout = new FdDestination(1);
  if (format === "json" || (format === "auto" && !isTerminal)) return stdout;
  return prettyDestination(stdout);
}
