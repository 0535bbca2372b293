/**
 * Domain types of the registry core. Plain data, independent of gRPC and of
 * the protobuf contract; the server layer translates them.
 */

/**
 * The registry's view of an instance's health, spelled as the library, the
 * SDK, the logs and the metrics spell it; HTTP/JSON and the CLI say
 * `HEALTHY`/`UNHEALTHY`, gRPC `HEALTH_STATUS_*` (README, "Health spelling").
 */
export type Health = "healthy" | "unhealthy";

/** Why an instance left the registry. */
export type RemovalReason = "unregistered" | "health_check_expired" | "replaced" | "drain_expired";

/**
 * How the registry tells that an instance is alive: it probes `http`, `grpc`
 * (grpc.health.v1) and `tcp` instances on its schedule; `ttl` instances call
 * Heartbeat at least every `ttlMs`; `session` instances hold a KeepAlive
 * stream open and are alive while it is.
 */
export type HealthCheckKind = "http" | "grpc" | "tcp" | "ttl" | "session";

/** An instance's check, beyond its HTTP path (`Instance.healthCheckPath`). */
export interface HealthCheckSpec {
  readonly kind: HealthCheckKind;
  /** `grpc`: the service name asked about; "" asks for the server's overall health. */
  readonly grpcService: string;
  /** `grpc`: call over TLS. */
  readonly tls: boolean;
  /** `ttl`: the longest time between heartbeats (ms); 0 for other kinds. */
  readonly ttlMs: number;
  /** Probe timeout (ms) for `http`, `grpc` and `tcp`; 0 means the registry's default. */
  readonly timeoutMs: number;
}

/** A registered instance as the registry tracks it. */
export interface Instance {
  readonly id: string;
  readonly serviceType: string;
  readonly host: string;
  readonly port: number;
  readonly metadata: Readonly<Record<string, string>>;
  readonly healthCheckPath: string;
  /**
   * How it is checked; absent (most instances) means an HTTP probe with the
   * registry's default timeout, `DEFAULT_HEALTH_CHECK`.
   */
  readonly healthCheck?: HealthCheckSpec | undefined;
  readonly health: Health;
  /**
   * Marked draining: left out of GetByType and resolvers unless asked for,
   * still probed, removed at unregister or the drain deadline. One way.
   */
  readonly draining: boolean;
  /** When it was marked draining (epoch ms); 0 unless draining. */
  readonly drainingSince: number;
  /** Milliseconds since the Unix epoch. */
  readonly registeredAt: number;
  /** Milliseconds since the Unix epoch of the last change. */
  readonly updatedAt: number;
  /** Revision of the instance's last change. */
  readonly revision: number;
}

/** An instance as the store keeps it: the public record plus the token hash. */
export interface StoredInstance extends Instance {
  /**
   * SHA-256 of the instance token, its 32 bytes as a latin1 string (see
   * `hashSecret`); "" for an instance read back from history, which never
   * authenticates. The token itself is never stored.
   */
  readonly tokenHash: string;
  /**
   * Identifies the registration key the instance was registered with (a
   * digest prefix, see `keyIdOf`; never the key), for per-key quotas. Absent
   * on instances registered before keys were told apart.
   */
  readonly keyId?: string | undefined;
}

/**
 * A committed state change. Every change carries the next global revision;
 * `instance` is the instance as it is after the change (before, for removals).
 */
export type Change =
  | { readonly kind: "registered"; readonly revision: number; readonly instance: StoredInstance }
  | {
      readonly kind: "removed";
      readonly revision: number;
      readonly instance: StoredInstance;
      readonly reason: RemovalReason;
    }
  | { readonly kind: "draining"; readonly revision: number; readonly instance: StoredInstance }
  | {
      readonly kind: "health";
      readonly revision: number;
      readonly instance: StoredInstance;
      /** Why the check failed, when the instance turned unhealthy. */
      readonly failureReason?: string;
    };

/** What a watcher receives. */
export type WatchEvent =
  /**
   * A committed change, from history or live; `panic`: its type was in panic
   * after it (see GetByType).
   */
  | { readonly type: "change"; readonly change: Change; readonly snapshot?: false; readonly panic?: boolean }
  /** An instance existing at snapshot time; `panic`: its type was in panic then. */
  | { readonly type: "snapshot"; readonly instance: Instance; readonly revision: number; readonly panic?: boolean }
  /** The snapshot is complete at `revision`. */
  | { readonly type: "synced"; readonly revision: number }
  /** The resume point could not be honoured; a fresh snapshot follows. */
  | { readonly type: "reset"; readonly revision: number }
  /** Idle stream keep-alive carrying a fresh resume point. */
  | {
      readonly type: "bookmark";
      readonly revision: number;
      /** On a watch of one service type: the type's panic now. */
      readonly panic?: boolean;
    }
  /** One probe's result (only for watchers asking for every health check). */
  | { readonly type: "probe"; readonly probe: ProbeEvent };

/** One probe result, as streamed to `everyHealthCheck` watchers. Not a change. */
export interface ProbeEvent {
  readonly instance: Instance;
  readonly passed: boolean;
  readonly failureReason?: string;
  /** The registry revision when the probe finished. */
  readonly revision: number;
}

/** Summary of one service type. */
export interface ServiceSummary {
  readonly serviceType: string;
  readonly healthyCount: number;
  readonly totalCount: number;
  /** Instances marked draining (counted in totalCount, and in healthyCount while healthy). */
  readonly drainingCount: number;
  /** Fewer than the panic threshold of the type's instances are healthy (see GetByType). */
  readonly panic: boolean;
}

/**
 * Metadata equality selector: an instance matches when its metadata has each
 * key with exactly that value (Kubernetes' equality-based label selectors,
 * ANDed). Empty matches every instance.
 */
export type Selector = Readonly<Record<string, string>>;

/** The check of an instance registered without one: an HTTP probe of `healthCheckPath`. */
export const DEFAULT_HEALTH_CHECK: HealthCheckSpec = Object.freeze({ kind: "http", grpcService: "", tls: false, ttlMs: 0, timeoutMs: 0 });

/** The check of `instance`, with the default filled in. */
export function healthCheckOf(instance: Pick<Instance, "healthCheck">): HealthCheckSpec {
  return instance.healthCheck ?? DEFAULT_HEALTH_CHECK;
}

/** Whether the registry probes instances checked this way (rather than hearing from them). */
export function isProbed(kind: HealthCheckKind): boolean {
  return kind === "http" || kind === "grpc" || kind === "tcp";
}
