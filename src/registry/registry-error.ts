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
  | "unavailable"
  /** The caller stopped listening (its call ended, the server is going down) before the change was made. */
  | "cancelled"
  /** The request does not fit the instance's state (a heartbeat for an instance checked another way). */
  | "failed_precondition";

/** An error the registry raises on purpose, with a client-safe message. */
export class RegistryError extends Error {
  override readonly name = "RegistryError";
  /**
   * The request field at fault, as the protobuf contract names it
   * (`service_type`, `health_check.path`, `metadata.zone`), when there is
   * one; the message then reads `<field>: <problem>`. A transport that names
   * fields otherwise (the JSON API's camelCase) renames it from this.
   */
  readonly field: string | undefined;
  /** The message without the field, when there is a field. */
  readonly problem: string;
  /** When the caller may try again, when the refusal knows (a transport with a header for it sends it: HTTP's Retry-After). */
  readonly retryAfterSeconds: number | undefined;

  constructor(
    readonly code: RegistryErrorCode,
    message: string,
    options?: { cause?: unknown; field?: string; retryAfterSeconds?: number },
  ) {
    super(options?.field === undefined ? message : `${options.field}: ${message}`, options);
    this.field = options?.field;
    this.problem = message;
    this.retryAfterSeconds = options?.retryAfterSeconds;
  }
}

/**
 * NOT_FOUND for an instance id a caller sent: quoted and cut short, as the
 * id may be anything (control characters, a megabyte) and goes back in the
 * message. `problem` follows it ("not found", "is not registered").
 */
export function instanceNotFound(id: string, problem = "not found"): RegistryError {
  return new RegistryError("not_found", `instance ${JSON.stringify(id.slice(0, 64))} ${problem}`);
}

/** Shorthand for an INVALID_ARGUMENT error naming `field`. */
export function invalidArgument(field: string, problem: string): RegistryError {
  return new RegistryError("invalid_argument", problem, { field });
}
