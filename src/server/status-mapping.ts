import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { RegistryError, type RegistryErrorCode } from "../registry/registry-error.js";

const GRPC_CODES: Record<RegistryErrorCode, status> = {
  invalid_argument: status.INVALID_ARGUMENT,
  unauthenticated: status.UNAUTHENTICATED,
  permission_denied: status.PERMISSION_DENIED,
  not_found: status.NOT_FOUND,
  resource_exhausted: status.RESOURCE_EXHAUSTED,
  unavailable: status.UNAVAILABLE,
};

/**
 * The one mapping from domain errors to gRPC status. A `RegistryError`
 * keeps its client-safe message; anything else becomes INTERNAL with a
 * generic message, and its details (stack, cause) go only to the log.
 */
export function toServiceError(err: unknown, logger: Logger, method: string): Partial<ServiceError> {
  if (err instanceof RegistryError) {
    return { code: GRPC_CODES[err.code], details: err.message, metadata: new Metadata() };
  }
  logger.error({ err, method }, "unexpected error in handler");
  return { code: status.INTERNAL, details: "internal error", metadata: new Metadata() };
}
