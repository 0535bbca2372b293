import { status, type CallOptions as GrpcCallOptions, type ClientUnaryCall, type Metadata, type ServiceError } from "@grpc/grpc-js";
import type { RegistryServiceClient } from "../../gen/registry/v1/registry.js";
import type { Instance, RemovalReason, ServiceSummary } from "../registry/types.js";
import type { HealthCheckInput } from "../registry/validation.js";
import { authMetadata, type AuthSource, type RegistryAuth } from "./auth.js";
import type { BackoffOptions } from "./backoff.js";
import { RegistryClientError } from "./client-error.js";
import { fromProtoInstance, fromProtoSummary, toProtoHealthCheck } from "./proto-conversion.js";
import { RegistryConnections, type CallKind, type ConnectionOptions, type RegistryEndpoint } from "./registry-connections.js";
import { RegistrySession, type KeepAliveOptions } from "./registry-session.js";
import { RegistryWatch, type RegistryWatchOptions } from "./registry-watch.js";

/** Options of `RegistryClient`. */
export interface RegistryClientOptions extends Omit<ConnectionOptions, "addresses"> {
  /** Registry address(es), `host:port`. Several: failover between replicas. */
  readonly addresses: string | readonly string[];
  /** Credentials sent with every call unless a call overrides them. */
  readonly auth?: AuthSource;
  /** Deadline of each unary call. Default 5000 ms. */
  readonly deadlineMs?: number;
  /** Default reconnect schedule of `watch()`. */
  readonly backoff?: BackoffOptions;
  /**
   * Default `idleTimeoutMs` of `watch()`: a stream with no message for this
   * long is abandoned for another address. Set it to twice the registry's
   * BOOKMARK_INTERVAL_MS (the default is twice the registry's default interval; docs/client.md).
   */
  readonly watchIdleTimeoutMs?: number;
}

/** Per-call options. */
export interface RegistryCallOptions {
  /** This call's deadline, overriding the client's `deadlineMs`. */
  readonly deadlineMs?: number;
  /** Cancels the call. */
  readonly signal?: AbortSignal;
  /** Credentials for this call only. */
  readonly auth?: AuthSource;
}

/** What `register` takes; mirrors `RegisterRequest`. */
export interface RegisterOptions {
  readonly serviceType: string;
  readonly port: number;
  /** IP literal or hostname; default: the address the registry sees the call from. */
  readonly host?: string;
  readonly metadata?: Readonly<Record<string, string>>;
  /** HTTP path the registry probes; default `/health`. HTTP checks only. */
  readonly healthCheckPath?: string;
  /**
   * How the registry tells the instance is alive (default: an HTTP probe of
   * `healthCheckPath`). A `ttl` instance must then call `heartbeat` at least
   * every `ttlMs`; a `session` instance holds `keepAlive` open.
   */
  readonly healthCheck?: HealthCheckInput;
}

/**
 * What `getByType` takes besides the call options. The selector keeps only
 * instances whose metadata has each of its keys with exactly that value
 * (several keys ANDed), e.g. `{ zone: "eu-1" }`.
 */
export interface GetByTypeOptions extends RegistryCallOptions {
  /** Unhealthy instances too. */
  readonly includeUnhealthy?: boolean;
  /** Draining instances too. */
  readonly includeDraining?: boolean;
  /** Only instances whose metadata matches; empty or omitted for all. */
  readonly selector?: Readonly<Record<string, string>>;
}

/** A new registration: its id, its secret token (shown once) and the instance. */
export interface RegisteredInstance {
  readonly id: string;
  readonly token: string;
  readonly instance: Instance;
  /** Credentials of the new instance, ready to pass as `auth`. */
  readonly auth: RegistryAuth;
}

/** Instances of a type and the registry revision they reflect. */
export interface InstanceList {
  readonly instances: Instance[];
  readonly revision: number;
  /** The type is in panic (too few of its instances healthy): `instances` lists unhealthy ones too. */
  readonly panic: boolean;
}

/** A removed instance as it was, and the revision of its removal. */
export interface Unregistered {
  readonly instance: Instance;
  readonly revision: number;
  readonly reason: RemovalReason;
}

/** Every service type with its counts, and the revision they reflect. */
export interface ServiceList {
  readonly services: ServiceSummary[];
  readonly revision: number;
}

type Unary<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<GrpcCallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

/**
 * The registry's TypeScript client: one typed method per RPC returning plain
 * objects, credentials by key or by instance, a deadline on every call,
 * failover across several registry addresses, and a resumable `watch()`.
 * Errors are `RegistryClientError`s carrying the gRPC status code.
 *
 * @example
 * const client = new RegistryClient({ addresses: ["10.0.0.2:4000", "10.0.0.3:4000"], auth: { key } });
 * const { id, token } = await client.register({ serviceType: "billing", port: 8080 });
 * const { instances } = await client.getByType("billing");
 * for await (const event of client.watch({ serviceType: "billing" })) console.log(event.type);
 */
export class RegistryClient {
  private readonly connections: RegistryConnections;
  private readonly watches = new Set<RegistryWatch>();
  private readonly sessions = new Set<RegistrySession>();
  private closed = false;

  constructor(
    private readonly options: RegistryClientOptions,
    shared?: RegistryConnections,
  ) {
    const addresses = typeof options.addresses === "string" ? [options.addresses] : options.addresses;
    this.connections = shared ? shared.retain() : new RegistryConnections({ ...options, addresses });
  }

  /** The registry addresses, in failover order. */
  get addresses(): readonly string[] {
    return this.connections.addresses;
  }

  /**
   * A client with other credentials over the same connections (closing one
   * does not close the other's).
   */
  withAuth(auth: AuthSource): RegistryClient {
    return new RegistryClient({ ...this.options, auth }, this.connections);
  }

  /** Registers an instance (needs the registration key). Not retried on another address once sent. */
  async register(input: RegisterOptions, call: RegistryCallOptions = {}): Promise<RegisteredInstance> {
    const response = await this.unary("Register", "once", call, (c) => c.register, {
      serviceType: input.serviceType,
      port: input.port,
      host: input.host,
      metadata: { ...input.metadata },
      healthCheck: toProtoHealthCheck(input.healthCheckPath, input.healthCheck),
    });
    if (!response.instance) throw missing("Register", "instance");
    return {
      id: response.serviceId,
      token: response.token,
      instance: fromProtoInstance(response.instance),
      auth: { instanceId: response.serviceId, token: response.token },
    };
  }

  /**
   * Healthy, not draining instances of a type (unhealthy and draining ones
   * too when asked, or unhealthy ones while the type is in panic: see
   * `panic`), only those matching `selector` when one is given.
   *
   * @example
   * const { instances } = await client.getByType("billing", { selector: { zone: "eu-1" } });
   */
  async getByType(serviceType: string, options: GetByTypeOptions = {}): Promise<InstanceList> {
    const response = await this.unary("GetByType", "read", options, (c) => c.getByType, {
      serviceType,
      includeUnhealthy: options.includeUnhealthy ?? false,
      includeDraining: options.includeDraining ?? false,
      selector: { ...options.selector },
    });
    return { instances: response.instances.map(fromProtoInstance), revision: response.revision, panic: response.panic };
  }

  /** One instance by id; NOT_FOUND when the registry does not know it. */
  async getInstance(instanceId: string, call: RegistryCallOptions = {}): Promise<Instance> {
    const response = await this.unary("GetInstance", "read", call, (c) => c.getInstance, { instanceId });
    if (!response.instance) throw missing("GetInstance", "instance");
    return fromProtoInstance(response.instance);
  }

  /** Removes an instance (the instance itself, or a key holder). */
  async unregister(instanceId: string, call: RegistryCallOptions = {}): Promise<Unregistered> {
    const response = await this.unary("Unregister", "idempotent", call, (c) => c.unregister, { instanceId });
    if (!response.instance) throw missing("Unregister", "instance");
    return { instance: fromProtoInstance(response.instance), revision: response.revision, reason: "unregistered" };
  }

  /**
   * Marks an instance draining (the instance itself, or a key holder): routers
   * stop picking it; it is removed when it unregisters or at the registry's
   * drain deadline. Draining a draining instance changes nothing.
   */
  async drain(instanceId: string, call: RegistryCallOptions = {}): Promise<{ instance: Instance; revision: number }> {
    const response = await this.unary("Drain", "idempotent", call, (c) => c.drain, { instanceId });
    if (!response.instance) throw missing("Drain", "instance");
    return { instance: fromProtoInstance(response.instance), revision: response.revision };
  }

  /**
   * Reports that a TTL-checked instance is alive; it must come at least
   * every `ttlMs` of its check. Needs the instance's own credentials (pass
   * `auth: { instanceId, token }` unless the client has them). Answers the
   * registry revision after it. FAILED_PRECONDITION for an instance checked
   * another way; UNAUTHENTICATED or NOT_FOUND once the registry no longer
   * knows it (register again).
   *
   * @example
   * // A failed beat (registry unreachable, its store failing) is retried by the next one.
   * setInterval(() => client.heartbeat(id, { auth: { instanceId: id, token } }).catch(() => {}), ttlMs / 3);
   */
  async heartbeat(instanceId: string, call: RegistryCallOptions = {}): Promise<number> {
    const response = await this.unary("Heartbeat", "idempotent", call, (c) => c.heartbeat, { instanceId });
    return response.revision;
  }

  /**
   * Opens a session for a SESSION-checked instance (KeepAlive): the registry
   * counts it alive while the session is open, and marks it UNHEALTHY as
   * soon as the session ends. Needs the instance's own credentials. The
   * session is one stream, not reopened when it ends; `registerSelf` holds
   * one that is. See `RegistrySession`.
   */
  keepAlive(instanceId: string, options: KeepAliveOptions = {}): RegistrySession {
    if (this.closed) throw new RegistryClientError(status.CANCELLED, "the client is closed", "KeepAlive");
    const session = new RegistrySession(this.connections, instanceId, { ...options, auth: options.auth ?? this.options.auth });
    this.sessions.add(session);
    void session.ended.then(() => this.sessions.delete(session));
    return session;
  }

  /** Every service type that has instances, with healthy and total counts. */
  async listServices(call: RegistryCallOptions = {}): Promise<ServiceList> {
    const response = await this.unary("ListServices", "read", call, (c) => c.listServices, {});
    return { services: response.services.map(fromProtoSummary), revision: response.revision };
  }

  /**
   * Watches instances (of one type, or all) as an async iterator that survives
   * disconnects: it resumes from the last revision and epoch it saw, so no
   * change is missed or repeated. See `RegistryWatch`.
   */
  watch(options: RegistryWatchOptions = {}): RegistryWatch {
    if (this.closed) throw new RegistryClientError(status.CANCELLED, "the client is closed", "WatchInstances");
    const watch = new RegistryWatch(
      this.connections,
      {
        ...options,
        auth: options.auth ?? this.options.auth,
        backoff: options.backoff ?? this.options.backoff,
        idleTimeoutMs: options.idleTimeoutMs ?? this.options.watchIdleTimeoutMs,
      },
      () => this.watches.delete(watch),
    );
    this.watches.add(watch);
    return watch;
  }

  /**
   * Ends this client's watches and sessions and its hold on the connections.
   * Sessions are half-closed first (see `RegistrySession.close`); close them
   * yourself and await that to be sure the registry heard it.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const watch of [...this.watches]) watch.close();
    for (const session of [...this.sessions]) void session.close();
    this.connections.release();
  }

  private unary<Req, Res>(
    method: string,
    kind: CallKind,
    call: RegistryCallOptions,
    pick: (client: RegistryServiceClient) => Unary<Req, Res>,
    request: Req,
  ): Promise<Res> {
    if (this.closed) return Promise.reject(new RegistryClientError(status.CANCELLED, "the client is closed", method));
    const deadline = Date.now() + (call.deadlineMs ?? this.options.deadlineMs ?? 5000);
    const metadata = (): Metadata => authMetadata(call.auth ?? this.options.auth);
    return this.connections.run(method, deadline, kind, (endpoint: RegistryEndpoint, attemptDeadline: number) =>
      invoke(method, pick(endpoint.client).bind(endpoint.client), request, metadata(), attemptDeadline, call.signal),
    );
  }
}

function invoke<Req, Res>(
  method: string,
  fn: Unary<Req, Res>,
  request: Req,
  metadata: Metadata,
  deadline: number,
  signal?: AbortSignal,
): Promise<Res> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new RegistryClientError(status.CANCELLED, "aborted", method));
    const onAbort = (): void => pending.cancel();
    const pending = fn(request, metadata, { deadline }, (err, response) => {
      signal?.removeEventListener("abort", onAbort);
      if (err) reject(err);
      else resolve(response);
    });
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

function missing(method: string, field: string): RegistryClientError {
  return new RegistryClientError(status.INTERNAL, `the registry's answer lacks ${field}`, method);
}
