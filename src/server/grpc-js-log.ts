import { setLogger } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { ThrottledWarning } from "../logging/throttled-warning.js";

/**
 * grpc-js's line for a header it cannot take as metadata (a tab or a
 * non-ASCII byte in its value): it quotes the value, twice, and the value
 * may be a registration key or an instance token.
 */
const UNPARSED_HEADER = /^Failed to add metadata entry ([^:]*):/;

/** The logger grpc-js's lines go to now. */
let routedTo: Logger | undefined;

/** A header name from a peer, as a log field: bounded. */
const MAX_HEADER_NAME = 64;

/**
 * The credential headers as grpc-js's traces print metadata (GRPC_TRACE,
 * e.g. `received headers {"authorization":["Bearer ..."]}`): their values
 * are replaced.
 */
const CREDENTIAL_HEADERS = /"(authorization|x-service-token)":\[[^\]]*\]/gi;

/**
 * Sends grpc-js's own log lines, which it writes to stderr unless told
 * otherwise, to the registry's log instead, so that they are JSON lines like
 * the rest and pass the same rules: a header grpc-js could not parse is
 * named but its value withheld, and such lines, which any peer can cause
 * before a credential is checked, are throttled; the traces an operator
 * turns on (GRPC_TRACE) have credential headers' values replaced. grpc-js
 * has one logger per process: the one routed last receives them.
 */
export function routeGrpcJsLog(logger: Logger): void {
  // startServer routes before the store opens, RegistryGrpcServer (also used alone) again.
  if (routedTo === logger) return;
  routedTo = logger;
  const unparsed = new ThrottledWarning({ logger });
  const forward =
    (level: "error" | "info" | "debug") =>
    (...parts: unknown[]): void => {
      const text = parts.map((p) => (p instanceof Error ? p.message : String(p))).join(" ");
      const header = UNPARSED_HEADER.exec(text)?.[1];
      if (header !== undefined) {
        unparsed.note("unparsed-header", "grpc-js dropped a header it could not parse; its value is not logged, as it may be a credential", {
          header: header.slice(0, MAX_HEADER_NAME),
        });
        return;
      }
      logger[level]({ source: "grpc-js" }, text.replace(CREDENTIAL_HEADERS, '"$1":["[redacted]"]'));
    };
  setLogger({ error: forward("error"), info: forward("info"), debug: forward("debug") });
}
