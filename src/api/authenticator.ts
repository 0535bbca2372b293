import type { RegistrationKeys } from "../registry/credentials.js";
import type { AuthFailureLimiter } from "./auth-failure-limiter.js";
import { RegistryError } from "../registry/registry-error.js";
import type { ServiceRegistry } from "../registry/service-registry.js";
import type { Instance } from "../registry/types.js";

/**
 * Who made a call: a holder of a registration key (`keyId` names which, by
 * its hash, so a stream opened with it can end when it is removed), or a
 * registered instance.
 */
export type Principal = KeyPrincipal | { readonly kind: "instance"; readonly instance: Instance };

/** A holder of a registration key; `keyId` is the key's hash (`hashSecret`), as `RegistrationKeys` knows it. */
export type KeyPrincipal = { readonly kind: "key"; readonly keyId: string };

/** Credentials as found in a request, before checking. */
export interface PresentedCredentials {
  readonly key?: string;
  readonly serviceId?: string;
  readonly serviceToken?: string;
}

/** Who is calling, as far as the transport knows: read only when needed (a failure, or an address being limited). */
export interface Caller {
  readonly peerHost?: string | undefined;
}

/** What the Authenticator counts failures with; both optional. */
export interface AuthenticatorOptions {
  /** Rate-limits failures per caller address (point of SPEC 4.8). */
  readonly limiter?: AuthFailureLimiter;
  /** Told of each failure and each refusal by the limiter (`RegistryMetrics.onAuthFailure`). */
  readonly onFailure?: (kind: "key" | "token" | "rate_limited") => void;
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
    readonly keys: RegistrationKeys,
    private readonly registry: ServiceRegistry,
    private readonly options: AuthenticatorOptions = {},
  ) {}

  /** Register: only the registration key is accepted. Answers which key. */
  requireKey(presented: PresentedCredentials, caller?: Caller): KeyPrincipal | Promise<KeyPrincipal> {
    return andThen(this.identify(presented, caller), (principal) => {
      if (principal.kind !== "key") {
        throw new RegistryError("permission_denied", "Register requires the registration key, not instance credentials");
      }
      return principal;
    });
  }

  /**
   * Reads and watches: the key or any live instance's credentials.
   * Synchronous when this replica's index answers; a promise when it must
   * ask a shared store first (see `ServiceRegistry.readCaughtUp`).
   *
   * A caller whose address has used up its failures is refused with
   * RESOURCE_EXHAUSTED before anything is checked: a guess made then tells
   * nothing, right or wrong. Each failure is counted against the address.
   */
  identify(presented: PresentedCredentials, caller?: Caller): Principal | Promise<Principal> {
    const { limiter } = this.options;
    if (limiter?.enabled && limiter.limited(caller?.peerHost)) {
      this.options.onFailure?.("rate_limited");
      const seconds = Math.max(1, Math.ceil(limiter.retryAfterMs(caller?.peerHost) / 1000));
      throw new RegistryError("resource_exhausted", `too many failed authentications from this address; retry in ${seconds} s`, { retryAfterSeconds: seconds });
    }
    try {
      const principal = this.check(presented);
      if (!(principal instanceof Promise)) return principal;
      return principal.catch((err: unknown) => {
        throw this.failed(err, presented, caller);
      });
    } catch (err) {
      throw this.failed(err, presented, caller);
    }
  }

  /** Counts an authentication failure (not an unavailable store) and hands the error back. */
  private failed(err: unknown, presented: PresentedCredentials, caller: Caller | undefined): unknown {
    if (err instanceof RegistryError && err.code === "unauthenticated") {
      const instanceCredentials = presented.key === undefined && (presented.serviceId !== undefined || presented.serviceToken !== undefined);
      this.options.onFailure?.(instanceCredentials ? "token" : "key");
      this.options.limiter?.failed(caller?.peerHost);
    }
    return err;
  }

  private check(presented: PresentedCredentials): Principal | Promise<Principal> {
    if (presented.key !== undefined) {
      const keyId = this.keys.match(presented.key);
      if (keyId === undefined) throw new RegistryError("unauthenticated", "invalid registration key");
      return { kind: "key", keyId };
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

  /**
   * Heartbeat and KeepAlive: the instance itself, by its own credentials
   * (the registration key does not make an instance alive).
   */
  requireOwner(presented: PresentedCredentials, instanceId: string, caller?: Caller): void | Promise<void> {
    return andThen(this.identify(presented, caller), (principal) => {
      if (principal.kind !== "instance") {
        throw new RegistryError("permission_denied", "only the instance itself may report its liveness: send its x-service-id and x-service-token");
      }
      if (principal.instance.id !== instanceId) throw new RegistryError("permission_denied", "an instance may report only its own liveness");
    });
  }

  /** Unregister: the instance itself or a key holder. */
  requireOwnerOrKey(presented: PresentedCredentials, instanceId: string, caller?: Caller): void | Promise<void> {
    return andThen(this.identify(presented, caller), (principal) => {
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
