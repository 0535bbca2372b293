/**
 * Domain errors with stable codes. The server layer maps each code to a gRPC
 * status (and an HTTP status) in one place; messages are safe to show to
 * clients and never contain secrets.
 */
export type RegistryErrorCode =
  | "invalid_argument"
  | "unauthenticated"
  | "permission_denied"
  | "not_found"
  | "resource_exhausted"
  | "unavailable";

/** An error the registry raises on purpose, with a client-safe message. */
export class RegistryError extends Error {
  override readonly name = "RegistryError";

  constructor(
    readonly code: RegistryErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Shorthand for an INVALID_ARGUMENT error naming `field`. */
export function invalidArgument(field: string, problem: string): RegistryError {
  return new RegistryError("invalid_argument", `${field}: ${problem}`);
}
