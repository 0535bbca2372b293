import { Metadata, status, type ServiceError } from "@grpc/grpc-js";
import type { Logger } from "pino";
import { ERROR_ANSWERS } from "../api/error-answers.js";
import { RegistryError } from "../registry/registry-error.js";

/**
 * Domain errors as gRPC status (the codes from `ERROR_ANSWERS`). A `RegistryError`
 * keeps its client-safe message; anything else becomes INTERNAL with a
 * generic message, and its details (stack, cause) go only to the log.
 */
export function toServiceError(err: unknown, logger: Logger, method: string): Partial<ServiceError> {
  if (err instanceof RegistryError) {
    return { code: status[ERROR_ANSWERS[err.code].grpc], details: err.message, metadata: new Metadata() };
  }
  logger.error({ err, method }, "unexpected error in handler");
  return { code: status.INTERNAL, details: "internal error", metadata: new Metadata() };
}

/**
 * `toServiceError` for a stream being ended: should the logger itself throw,
 * still a status (INTERNAL), so the client's stream is never left open.
 */
export function safeServiceError(err: unknown, logger: Logger, method: string): Partial<ServiceError> {
  try {
    return toServiceError(err, logger, method);
  } catch {
    return { code: status.INTERNAL, details: "internal error", metadata: new Metadata() };
  }
}
