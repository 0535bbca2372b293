import type { IncomingMessage } from "node:http";
import { bearerKey } from "../api/authenticator.js";
import { peerHost } from "../api/peer-address.js";
import type { CallContext } from "../api/registry-api.js";
import { HttpError } from "./http-errors.js";

/** Credentials from headers, the caller's address and the request's abort signal, as the gRPC layer reads them from its call. */
export function callContext(req: IncomingMessage, signal: AbortSignal): CallContext {
  return {
    signal,
    credentials: {
      key: bearerKey(header(req, "authorization")),
      serviceId: header(req, "x-service-id"),
      serviceToken: header(req, "x-service-token"),
    },
    peerHost: req.socket.remoteAddress === undefined ? undefined : peerHost(req.socket.remoteAddress),
  };
}

/** A request header's first value. */
export function header(req: IncomingMessage, name: string): string | undefined {
  const value = req.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/**
 * `?selector=zone=eu-1,tier=web` (Kubernetes' label selector syntax,
 * equality only) as a record; the API checks keys and values. A key given
 * twice is refused: one key cannot equal two values.
 */
export function selectorFromQuery(query: URLSearchParams): Record<string, string> | undefined {
  const raw = query.get("selector");
  if (raw === null || raw === "") return undefined;
  const selector: Record<string, string> = {};
  for (const term of raw.split(",")) {
    const eq = term.indexOf("=");
    if (eq <= 0) throw new HttpError(400, "INVALID_ARGUMENT", `selector: ${JSON.stringify(term.slice(0, 80))} is not key=value`);
    const key = term.slice(0, eq);
    // Checked before defining: redefining the (non-writable) entry would throw a TypeError, a 500.
    if (Object.hasOwn(selector, key)) throw new HttpError(400, "INVALID_ARGUMENT", `selector: key ${JSON.stringify(key.slice(0, 80))} is given twice`);
    Object.defineProperty(selector, key, { value: term.slice(eq + 1).replace(/^=/, ""), enumerable: true });
  }
  return selector;
}

export function flag(query: URLSearchParams, name: string): boolean {
  const raw = query.get(name);
  if (raw === null || raw === "" || raw === "false" || raw === "0") return false;
  if (raw === "true" || raw === "1") return true;
  throw new HttpError(400, "INVALID_ARGUMENT", `${name}: must be true or false`);
}
