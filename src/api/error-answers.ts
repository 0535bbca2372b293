import type { RegistryErrorCode } from "../registry/registry-error.js";

/** A gRPC status, by its canonical name. */
export type GrpcCodeName = "INVALID_ARGUMENT" | "UNAUTHENTICATED" | "PERMISSION_DENIED" | "NOT_FOUND" | "RESOURCE_EXHAUSTED" | "UNAVAILABLE" | "CANCELLED" | "FAILED_PRECONDITION";

/**
 * How each domain error is answered, on every transport: its gRPC status
 * (by name; the JSON API sends the same name in its error body, so clients
 * handle both APIs alike) and its HTTP status. The one table: the gRPC and
 * HTTP layers both read it.
 */
export const ERROR_ANSWERS: Readonly<Record<RegistryErrorCode, { readonly grpc: GrpcCodeName; readonly http: number }>> = {
  invalid_argument: { grpc: "INVALID_ARGUMENT", http: 400 },
  unauthenticated: { grpc: "UNAUTHENTICATED", http: 401 },
  permission_denied: { grpc: "PERMISSION_DENIED", http: 403 },
  not_found: { grpc: "NOT_FOUND", http: 404 },
  resource_exhausted: { grpc: "RESOURCE_EXHAUSTED", http: 429 },
  unavailable: { grpc: "UNAVAILABLE", http: 503 },
  // nginx's "client closed request": the client is gone and never reads it, but logs and metrics do.
  cancelled: { grpc: "CANCELLED", http: 499 },
  failed_precondition: { grpc: "FAILED_PRECONDITION", http: 409 },
};
