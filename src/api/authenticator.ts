import type { RegistrationKeys } from "../registry/credentials.js";
import { RegistryError } from "../registry/registry-error.js";
import type { ServiceRegistry } from "../registry/service-registry.js";
import type { Instance } from "../registry/types.js";

/** Who made a call: a holder of the registration key, or a registered instance. */
export type Principal = { readonly kind: "key" } | { readonly kind: "instance"; readonly instance: Instance };

/** Credentials as found in a request, before checking. */
export interface PresentedCredentials {
  readonly key?: string;
  readonly serviceId?: string;
  readonly serviceToken?: string;
}

/**
 * The credential is everything after "Bearer ", spaces included: RFC 6750
 * allows only token68 characters, but the seed's own example key is a
 * sentence, and keys are configured as free text.
 */
const BEARER = /^bearer +(\S.*?)\s*$/is;
const MISSING =
  "missing credentials: send 'authorization: Bearer <registration key>' or 'x-service-id' and 'x-service-token'";

/**
 * Reads the registration key from an `authorization` value (gRPC metadata or
 * an HTTP header: the same text either way). Undefined when absent.
 */
export function bearerKey(authorization: string | undefined): string | undefined {
  if (authorization === undefined) return undefined;
  const match = BEARER.exec(authorization);
  if (!match) throw new RegistryError("unauthenticated", "authorization must be 'Bearer <registration key>'");
  return match[1];
}

/**
 * Checks credentials (SPEC 4.1). Shared by the gRPC and HTTP front ends, which
 * only extract the presented values. Messages never echo what was presented.
 */
export class Authenticator {
  constructor(
    private readonly keys: RegistrationKeys,
    private readonly registry: ServiceRegistry,
  ) {}

  /** Register: only the registration key is accepted. */
  requireKey(presented: PresentedCredentials): void | Promise<void> {
    return andThen(this.identify(presented), (principal) => {
      if (principal.kind !== "key") {
        throw new RegistryError("permission_denied", "Register requires the registration key, not instance credentials");
      }
    });
  }

  /**
   * Reads and watches: the key or any live instance's credentials.
   * Synchronous when this replica's index answers; a promise when it must
   * ask a shared store first (see `ServiceRegistry.readCaughtUp`).
   */
  identify(presented: PresentedCredentials): Principal | Promise<Principal> {
    if (presented.key !== undefined) {
      if (!this.keys.accepts(presented.key)) throw new RegistryError("unauthenticated", "invalid registration key");
      return { kind: "key" };
    }
    if (presented.serviceId !== undefined || presented.serviceToken !== undefined) {
      if (!presented.serviceId || !presented.serviceToken) {
        throw new RegistryError("unauthenticated", "instance credentials need both x-service-id and x-service-token");
      }
      const { serviceId: id, serviceToken: token } = presented;
      // Unknown ids and wrong tokens take the same path, store read included: no oracle for valid ids.
      const instance = this.registry.readCaughtUp(id, "unauthenticated", () => this.registry.authenticate(id, token));
      return andThen(instance, (i): Principal => ({ kind: "instance", instance: i }));
    }
    throw new RegistryError("unauthenticated", MISSING);
  }

  /** Unregister: the instance itself or a key holder. */
  requireOwnerOrKey(presented: PresentedCredentials, instanceId: string): void | Promise<void> {
    return andThen(this.identify(presented), (principal) => {
      if (principal.kind === "instance" && principal.instance.id !== instanceId) {
        throw new RegistryError("permission_denied", "an instance may unregister only itself");
      }
    });
  }
}

/**
 * Runs `next` on `value` now, or once it resolves when it is a promise: an
 * answer from memory stays synchronous (no promise hops on the read path).
 */
export function andThen<T, R>(value: T | Promise<T>, next: (value: T) => R | Promise<R>): R | Promise<R> {
  return value instanceof Promise ? value.then(next) : next(value);
}
