import type { Logger } from "pino";
import { RegistryError, type RegistryErrorCode } from "../registry/registry-error.js";

/** The JSON error body of every failed HTTP request: `{"error": {"code", "message"}}`. */
export interface HttpErrorBody {
  readonly error: { readonly code: string; readonly message: string };
}

/** An HTTP-level failure that has no domain meaning (bad JSON, no such route, body too large). */
export class HttpError extends Error {
  override readonly name = "HttpError";

  constructor(
    readonly status: number,
    /** The gRPC-style code name sent in the body, so clients handle both APIs alike. */
    readonly code: string,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(message);
  }
}

/** Domain codes to HTTP status and the gRPC code name, matching the gRPC API's answers. */
const HTTP_STATUS: Record<RegistryErrorCode, [number, string]> = {
  invalid_argument: [400, "INVALID_ARGUMENT"],
  unauthenticated: [401, "UNAUTHENTICATED"],
  permission_denied: [403, "PERMISSION_DENIED"],
  not_found: [404, "NOT_FOUND"],
  resource_exhausted: [429, "RESOURCE_EXHAUSTED"],
  unavailable: [503, "UNAVAILABLE"],
};

/**
 * The one mapping from errors to HTTP answers. A RegistryError keeps its
 * client-safe message; an HttpError is already an answer; anything else is a
 * 500 with a generic message and its details (stack, cause) go to the log only.
 */
export function toHttpError(err: unknown, logger: Logger, route: string): { status: number; headers: Record<string, string>; body: HttpErrorBody } {
  if (err instanceof RegistryError) {
    const [status, code] = HTTP_STATUS[err.code];
    const headers: Record<string, string> = err.code === "unavailable" ? { "retry-after": "1" } : {};
    const message = err.code === "invalid_argument" ? jsonFieldNames(err.message) : err.message;
    return { status, headers, body: { error: { code, message } } };
  }
  if (err instanceof HttpError) {
    return { status: err.status, headers: { ...err.headers }, body: { error: { code: err.code, message: err.message } } };
  }
  logger.error({ err, route }, "unexpected error in HTTP handler");
  return { status: 500, headers: {}, body: { error: { code: "INTERNAL", message: "internal error" } } };
}

/** The core names fields as the protobuf contract does; the JSON API's clients know them in camelCase. */
const JSON_FIELDS: [RegExp, string][] = [
  [/^service_type:/, "serviceType:"],
  [/^health_check\.path:/, "healthCheck.path:"],
  [/^instance_id:/, "id:"],
];

function jsonFieldNames(message: string): string {
  for (const [proto, json] of JSON_FIELDS) if (proto.test(message)) return message.replace(proto, json);
  return message;
}
