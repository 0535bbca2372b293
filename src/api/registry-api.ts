import type { AbortState } from "../registry/commit-queue.js";
import { keyIdOf, type RegistrationKeys } from "../registry/credentials.js";
import { invalidArgument, RegistryError } from "../registry/registry-error.js";
import { validSelector } from "../registry/selector.js";
import type { Registration, ServiceRegistry, TypeAnswer, TypeQuery } from "../registry/service-registry.js";
import type { Change, Instance, ServiceSummary } from "../registry/types.js";
import type { HealthCheckInput } from "../registry/validation.js";
import type { Watcher, WatchOptions } from "../registry/watcher.js";
import { andThen, Authenticator, type AuthenticatorOptions, type KeyPrincipal, type PresentedCredentials, type Principal } from "./authenticator.js";

/** What a transport knows about a call: the credentials presented and the caller's address. */
export interface CallContext {
  readonly credentials: PresentedCredentials;
  /** The caller's IP (IPv4-mapped IPv6 unwrapped); the default `host` of a registration. */
  readonly peerHost?: string | undefined;
  /** When the caller stops waiting for the answer (epoch ms); absent when it set no deadline. */
  readonly deadline?: number | undefined;
  /**
   * Aborted when the call ends before its answer (client gone, deadline
   * passed, connection reset) or when the server stops waiting for calls in
   * flight at shutdown. A write whose signal aborted is not made: it fails
   * with `RegistryError("cancelled")` (CANCELLED, HTTP 499). The HTTP
   * transport's is an AbortSignal; gRPC's reads its call's own state.
   */
  readonly signal?: AbortState | undefined;
}

/** A registration as a transport decoded it; `host` absent means "the caller's address". */
export interface RegisterRequest {
  readonly serviceType: string;
  readonly port: number;
  readonly host?: string | undefined;
  readonly metadata?: Readonly<Record<string, string>> | undefined;
  readonly healthCheckPath?: string | undefined;
  readonly healthCheck?: HealthCheckInput | undefined;
}

type ServicesAnswer = { services: ServiceSummary[]; revision: number };

/** GetByType's options as a transport decoded them; the selector is not checked yet. */
export interface TypeRequest extends Omit<TypeQuery, "selector"> {
  readonly selector?: Readonly<Record<string, unknown>> | undefined;
}

/** WatchInstances' options as a transport decoded them; the selector is not checked yet. */
export interface WatchRequest extends Omit<WatchOptions, "selector"> {
  readonly selector?: Readonly<Record<string, unknown>> | undefined;
}

/** Longest instance id accepted in a request (ids are UUIDs; this only bounds garbage). */
const MAX_ID_LENGTH = 128;

/**
 * The registry's operations as both front ends offer them: who may call what
 * (SPEC 4.1), the request checks that are not the core's, and the call into
 * the core. The gRPC handlers and the HTTP/JSON API only decode requests into
 * these calls and encode the answers, so the two cannot drift apart on auth
 * or validation. Errors are `RegistryError`s; each transport maps them once.
 *
 * @example
 * const api = new RegistryApi(registry, keys);
 * const { instance, token } = await api.register({ credentials: { key } , peerHost: "10.0.0.7" }, { serviceType: "api", port: 8080 });
 */
export class RegistryApi {
  readonly auth: Authenticator;

  constructor(
    readonly registry: ServiceRegistry,
    keys: RegistrationKeys,
    authOptions: AuthenticatorOptions = {},
  ) {
    this.auth = new Authenticator(keys, registry, authOptions);
  }

  /**
   * Runs a transport's handling of a write request in the registry's next
   * write turn, with the other writes of that turn: both transports hand
   * their Register and Unregister handling here.
   */
  inWriteTurn(task: () => void): void {
    this.registry.inWriteTurn(task);
  }

  /**
   * Checks that the caller of `ctx` may register (the registration key), for
   * a transport that refuses a stranger before reading the request: it hands
   * the answer to `register` for the same call, which then does not hash the
   * key again.
   */
  authorizeRegister(ctx: CallContext): KeyPrincipal | Promise<KeyPrincipal> {
    return this.auth.requireKey(ctx.credentials, ctx);
  }

  /**
   * Register: needs the registration key; `host` defaults to the caller's
   * address. `authorized` is what `authorizeRegister` answered for this call,
   * if the transport asked it first.
   */
  async register(ctx: CallContext, request: RegisterRequest, authorized?: KeyPrincipal): Promise<Registration> {
    let key: KeyPrincipal;
    if (authorized === undefined) key = await this.auth.requireKey(ctx.credentials, ctx);
    // A reload may have removed the key while the transport read the request: asked by its id, nothing hashed.
    else if (this.auth.keys.has(authorized.keyId)) key = authorized;
    else throw new RegistryError("unauthenticated", "invalid registration key");
    const host = request.host ?? ctx.peerHost;
    if (host === undefined) throw invalidArgument("host", "caller address is unknown; set host explicitly");
    if (request.host === undefined && host.includes("%")) {
      // Validation would name a zone id in a field the caller never sent.
      throw invalidArgument("host", "the caller's address is link-local with a zone id; set host explicitly");
    }
    // `return await`: returning the core's promise from an async function costs two more microtask turns.
    return await this.registry.register({
      serviceType: request.serviceType,
      port: request.port,
      host,
      ...(request.metadata ? { metadata: request.metadata } : {}),
      ...(request.healthCheckPath !== undefined ? { healthCheckPath: request.healthCheckPath } : {}),
      ...(request.healthCheck !== undefined ? { healthCheck: request.healthCheck } : {}),
    }, { keyId: keyIdOf(key.keyId), notAfter: ctx.deadline, signal: ctx.signal });
  }

  /** Instances of a type: healthy, not draining ones unless the query says otherwise. The selector is checked here. */
  getByType(ctx: CallContext, serviceType: string, query: TypeRequest): TypeAnswer | Promise<TypeAnswer> {
    return andThen(this.auth.identify(ctx.credentials, ctx), () =>
      this.registry.getByType(serviceType, { ...query, selector: validSelector(query.selector) }),
    );
  }

  /** One instance by id; one registered on another replica a moment ago is waited for, not NOT_FOUND. */
  getInstance(ctx: CallContext, instanceId: string): Instance | Promise<Instance> {
    return andThen(this.auth.identify(ctx.credentials, ctx), () => {
      requireInstanceId(instanceId);
      return this.registry.readCaughtUp(instanceId, "not_found", () => this.registry.getInstance(instanceId));
    });
  }

  /** Unregister: the instance itself or a key holder. */
  async unregister(ctx: CallContext, instanceId: string): Promise<Change> {
    await this.auth.requireOwnerOrKey(ctx.credentials, instanceId, ctx);
    requireInstanceId(instanceId);
    return this.registry.unregister(instanceId, "unregistered", { signal: ctx.signal });
  }

  /** Drain: the instance itself or a key holder. */
  async drain(ctx: CallContext, instanceId: string): Promise<{ instance: Instance; revision: number }> {
    await this.auth.requireOwnerOrKey(ctx.credentials, instanceId, ctx);
    requireInstanceId(instanceId);
    return this.registry.drain(instanceId, { signal: ctx.signal });
  }

  /** Heartbeat of a TTL instance: the instance itself only. Answers the revision after it. */
  async heartbeat(ctx: CallContext, instanceId: string): Promise<number> {
    requireInstanceId(instanceId);
    await this.auth.requireOwner(ctx.credentials, instanceId, ctx);
    return this.registry.heartbeat(instanceId);
  }

  /**
   * Opens a KeepAlive session of a SESSION instance: the instance itself
   * only. `onEnded` hears when the registry ends it (see `openSession`).
   */
  async openSession(
    ctx: CallContext,
    instanceId: string,
    onEnded: (reason: RegistryError) => void,
  ): Promise<{ readonly revision: number; close(reason: string): void }> {
    requireInstanceId(instanceId);
    await this.auth.requireOwner(ctx.credentials, instanceId, ctx);
    return this.registry.openSession(instanceId, onEnded);
  }

  /** Counts per service type. */
  listServices(ctx: CallContext): ServicesAnswer | Promise<ServicesAnswer> {
    return andThen(this.auth.identify(ctx.credentials, ctx), () => this.registry.listServices());
  }

  /**
   * Opens a watch; the principal lets a transport end the stream when its
   * instance goes away. On a shared store, a resume point this replica has
   * not reached yet is waited for (see `ServiceRegistry.reach`). The selector is checked here,
   * before that wait: a bad one is INVALID_ARGUMENT at once.
   */
  async watch(ctx: CallContext, request: WatchRequest): Promise<{ watcher: Watcher; principal: Principal }> {
    const principal = await this.auth.identify(ctx.credentials, ctx);
    const options: WatchOptions = { ...request, selector: validSelector(request.selector) };
    await this.registry.reach(options.epoch, options.sinceRevision);
    return { watcher: this.registry.watch(options), principal };
  }
}

function requireInstanceId(id: string): void {
  if (id === "") throw invalidArgument("instance_id", "must not be empty");
  if (id.length > MAX_ID_LENGTH) {
    throw invalidArgument("instance_id", `must be at most ${MAX_ID_LENGTH} characters`);
  }
}
