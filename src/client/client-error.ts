import { Metadata, status, type ServiceError } from "@grpc/grpc-js";

/**
 * A failed registry call, as the client SDK reports it: the gRPC status code
 * (compare with `status.NOT_FOUND` etc. from `@grpc/grpc-js`), the server's
 * message, the RPC and the registry address that answered.
 *
 * @example
 * try { await client.getInstance(id) } catch (err) {
 *   if (err instanceof RegistryClientError && err.code === status.NOT_FOUND) ...
 * }
 */
export class RegistryClientError extends Error {
  override readonly name = "RegistryClientError";

  constructor(
    /** gRPC status code. */
    readonly code: status,
    /** The server's (or grpc-js's) message, without the method prefix. */
    readonly details: string,
    /** RPC name, e.g. `GetInstance`. */
    readonly method: string,
    /** Registry address the call went to, when known. */
    readonly address?: string,
    /** Trailing metadata (for a stalled watch: `x-resume-revision`). */
    readonly metadata: Metadata = new Metadata(),
    options?: { cause?: unknown },
  ) {
    super(`${method}: ${status[code] ?? code}: ${details}`, options);
  }

  /** Status code name, e.g. `NOT_FOUND`. */
  get codeName(): string {
    return status[this.code] ?? String(this.code);
  }
}

/** Wraps whatever a grpc-js call failed with into a `RegistryClientError`. */
export function toClientError(err: unknown, method: string, address?: string): RegistryClientError {
  if (err instanceof RegistryClientError) return err;
  const e = err as Partial<ServiceError> | undefined;
  if (e && typeof e.code === "number") {
    return new RegistryClientError(e.code, e.details ?? e.message ?? "", method, address, e.metadata ?? new Metadata(), { cause: err });
  }
  return new RegistryClientError(status.UNKNOWN, (err as Error | undefined)?.message ?? String(err), method, address, undefined, {
    cause: err,
  });
}

/** The registry (or the path to it) is unavailable: another replica may answer. */
export function isUnavailable(err: RegistryClientError): boolean {
  return err.code === status.UNAVAILABLE;
}

/** The call failed before reaching any registry, so it cannot have been applied. */
export function neverSent(err: RegistryClientError): boolean {
  return err.code === status.UNAVAILABLE && /no connection established|no registry address reachable/i.test(err.details);
}

/**
 * Errors no retry can fix: wrong credentials, a request the registry rejects,
 * a server without this API. Everything else (unavailable, deadline, stall,
 * internal) is worth retrying.
 */
export function isPermanent(err: RegistryClientError): boolean {
  return (
    err.code === status.UNAUTHENTICATED ||
    err.code === status.PERMISSION_DENIED ||
    err.code === status.INVALID_ARGUMENT ||
    err.code === status.UNIMPLEMENTED ||
    err.code === status.FAILED_PRECONDITION
  );
}
