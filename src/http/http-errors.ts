import type { Logger } from "pino";
import { ERROR_ANSWERS } from "../api/error-answers.js";
import { RegistryError } from "../registry/registry-error.js";

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

/**
 * The one mapping from errors to HTTP answers. A RegistryError keeps its
 * client-safe message; an HttpError is already an answer; anything else is a
 * 500 with a generic message and its details (stack, cause) go to the log only.
 */
export function toHttpError(err: unknown, logger: Logger, route: string): { status: number; headers: Record<string, string>; body: HttpErrorBody } {
  if (err instanceof RegistryError) {
    const { http: status, grpc: code } = ERROR_ANSWERS[err.code];
    const retryAfter = err.retryAfterSeconds ?? (err.code === "unavailable" ? 1 : undefined);
    const headers: Record<string, string> = retryAfter === undefined ? {} : { "retry-after": String(retryAfter) };
    const message = err.field === undefined ? err.message : `${jsonFieldName(err.field)}: ${err.problem}`;
    return { status, headers, body: { error: { code, message } } };
  }
  if (err instanceof HttpError) {
    return { status: err.status, headers: { ...err.headers }, body: { error: { code: err.code, message: err.message } } };
  }
  logger.error({ err, route }, "unexpected error in HTTP handler");
  return { status: 500, headers: {}, body: { error: { code: "INTERNAL", message: "internal error" } } };
}

/** The core names fields as the protobuf contract does; the JSON API's clients know them in camelCase. */
const JSON_FIELD_NAMES: Readonly<Record<string, string>> = {
  service_type: "serviceType",
  "health_check.path": "healthCheck.path",
  "health_check.kind": "healthCheck.kind",
  "health_check.grpc_service": "healthCheck.grpcService",
  "health_check.ttl_ms": "healthCheck.ttlMs",
  "health_check.timeout_ms": "healthCheck.timeoutMs",
  "health_check.tls": "healthCheck.tls",
  instance_id: "id",
};

function jsonFieldName(field: string): string {
  return JSON_FIELD_NAMES[field] ?? field;
}
