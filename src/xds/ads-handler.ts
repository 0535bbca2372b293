import { status as grpcStatus, type ServerDuplexStream, type ServiceError } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { PresentedCredentials, Principal } from "../api/authenticator.js";
import { peerHost } from "../api/peer-address.js";
import type { RegistryApi } from "../api/registry-api.js";
import { RegistryError } from "../registry/registry-error.js";
import { credentialsFromMetadata } from "../server/auth.js";
import { toServiceError } from "../server/status-mapping.js";
import { AdsSession } from "./ads-session.js";
import type { DiscoveryRequest, DiscoveryResponse, StructValue } from "./envoy-protos.js";
import type { XdsHub } from "./xds-hub.js";

/** Node metadata fields carrying credentials (fixed: other languages' bootstrap files name them). */
export const NODE_KEY_FIELD = "registry_key";
export const NODE_SERVICE_ID_FIELD = "registry_service_id";
export const NODE_SERVICE_TOKEN_FIELD = "registry_service_token";

const MISSING =
  `missing credentials: put "${NODE_KEY_FIELD}" (a registration key), or "${NODE_SERVICE_ID_FIELD}" and "${NODE_SERVICE_TOKEN_FIELD}", ` +
  "in the bootstrap's node metadata";

type AdsCall = ServerDuplexStream<DiscoveryRequest, DiscoveryResponse>;

/** What the ADS handler needs. */
export interface AdsStreamsDeps {
  readonly api: RegistryApi;
  readonly hub: XdsHub;
  readonly logger: Logger;
  /**
   * How a stream proves who it is, beside credentials in its node metadata
   * or call metadata: "certificate" when every connection presented a client
   * certificate the server verified (mTLS), "none" when an operator allowed
   * unauthenticated xDS.
   */
  readonly trust?: "credentials" | "certificate" | "none";
  /** The first request must arrive within this long. */
  readonly firstRequestTimeoutMs: number;
  /** Told of each response sent and each NACK, by resource type (for metrics). */
  readonly onResponse?: (type: string) => void;
  readonly onNack?: (type: string) => void;
}

/**
 * Serves envoy's Aggregated Discovery Service: translates a gRPC stream
 * into an `AdsSession` on the shared `XdsHub`. The first request's node
 * metadata carries the credentials (proxyless clients cannot add call
 * metadata from a bootstrap file in most languages); a stream opened with a
 * registration key ends when a reload removes the key, one opened with an
 * instance's credentials when that instance is removed, and every stream
 * ends with UNAVAILABLE when this replica loses its store or shuts down
 * (clients keep the resources they have and reconnect).
 */
export class AdsStreams {
  private readonly open = new Set<(error: RegistryError) => void>();
  private readonly byKey = new Map<string, Set<(error: RegistryError) => void>>();
  private readonly byInstance = new Map<string, Set<(error: RegistryError) => void>>();

  constructor(private readonly deps: AdsStreamsDeps) {
    deps.api.auth.keys.onRemoved((ids) => {
      const error = new RegistryError("unauthenticated", "the registration key that opened this stream was removed");
      for (const id of ids) for (const end of takeAll(this.byKey, id)) end(error);
    });
    deps.api.registry.on("instanceRemoved", (instance) => {
      const error = new RegistryError("unauthenticated", "the instance whose credentials opened this stream was removed");
      for (const end of takeAll(this.byInstance, instance.id)) end(error);
    });
  }

  get size(): number {
    return this.open.size;
  }

  /** Ends every stream with `error` (UNAVAILABLE at shutdown). */
  endAll(error: RegistryError): void {
    for (const end of [...this.open]) end(error);
  }

  readonly handle = (call: AdsCall): void => {
    const { hub, logger } = this.deps;
    let session: AdsSession | undefined;
    let principal: Principal | undefined;
    let over = false;
    /** Requests that came while the first one was being authenticated. */
    const queued: DiscoveryRequest[] = [];

    const finish = (error?: unknown): void => {
      if (over) return;
      over = true;
      clearTimeout(silent);
      if (session) hub.unsubscribe(session);
      this.open.delete(end);
      if (principal?.kind === "key") removeFrom(this.byKey, principal.keyId, end);
      if (principal?.kind === "instance") removeFrom(this.byInstance, principal.instance.id, end);
      if (call.cancelled) return;
      try {
        if (error === undefined) call.end();
        else call.emit("error", status(error, logger));
      } catch {
        // The call is gone either way.
      }
    };
    const end = (error: RegistryError): void => finish(error);
    this.open.add(end);

    const silent = setTimeout(
      () => finish(new RegistryError("invalid_argument", `the first DiscoveryRequest must arrive within ${this.deps.firstRequestTimeoutMs} ms`)),
      this.deps.firstRequestTimeoutMs,
    );
    silent.unref();

    const take = (request: DiscoveryRequest): void => {
      try {
        session?.onRequest(request);
      } catch (err) {
        finish(err instanceof RangeError ? new RegistryError("resource_exhausted", err.message) : err);
      }
    };

    call.on("cancelled", () => finish());
    call.on("error", () => finish());
    call.on("end", () => finish());
    call.on("drain", () => session?.resume());
    call.on("data", (request: DiscoveryRequest) => {
      if (over) return;
      if (session) return take(request);
      queued.push(request);
      if (queued.length > 1) return; // the first is being authenticated
      clearTimeout(silent);
      Promise.resolve()
        .then(() => this.authenticate(call, request))
        .then((who) => {
          if (over) return;
          principal = who;
          // Only the first request carries the node: its id names the client in later log lines.
          const node = request.node?.id || undefined;
          if (who?.kind === "key") addTo(this.byKey, who.keyId, end);
          if (who?.kind === "instance") addTo(this.byInstance, who.instance.id, end);
          session = new AdsSession(hub, (response) => call.write(response), (error) => finish(error), {
            sent: (typeUrl) => this.deps.onResponse?.(shortType(typeUrl)),
            rejected: (typeUrl, nack) => {
              this.deps.onNack?.(shortType(typeUrl));
              logger.warn(
                { node, type: shortType(typeUrl), version: nack.version_info, nonce: nack.response_nonce, error: nack.error_detail?.message },
                "xDS client rejected a response (NACK); it keeps the version it had",
              );
            },
          });
          hub.subscribe(session); // throws UNAVAILABLE while the store is lost
          for (const r of queued.splice(0)) take(r);
        })
        .catch((err: unknown) => finish(err));
    });
  };

  /** Who opened the stream, from its first request's node metadata or the call's metadata; undefined when trust needs no one. */
  private authenticate(call: AdsCall, first: DiscoveryRequest): Principal | Promise<Principal> | undefined {
    const fromNode = nodeCredentials(first.node?.metadata);
    const fromCall = credentialsFromMetadata(call.metadata);
    const presented = hasAny(fromNode) ? fromNode : fromCall;
    const trust = this.deps.trust ?? "credentials";
    if (!hasAny(presented)) {
      if (trust !== "credentials") return undefined;
      throw new RegistryError("unauthenticated", MISSING);
    }
    return this.deps.api.auth.identify(presented, { peerHost: peerHost(call.getPeer()) });
  }
}

/** The credentials in a node's metadata (string fields only; anything else is ignored). */
function nodeCredentials(metadata: StructValue | undefined | null): PresentedCredentials {
  const field = (name: string): string | undefined => {
    const value = metadata?.fields?.[name]?.stringValue;
    return typeof value === "string" && value !== "" ? value : undefined;
  };
  return { key: field(NODE_KEY_FIELD), serviceId: field(NODE_SERVICE_ID_FIELD), serviceToken: field(NODE_SERVICE_TOKEN_FIELD) };
}

function hasAny(c: PresentedCredentials): boolean {
  return c.key !== undefined || c.serviceId !== undefined || c.serviceToken !== undefined;
}

function status(error: unknown, logger: Logger): Partial<ServiceError> {
  try {
    return toServiceError(error, logger, "StreamAggregatedResources");
  } catch {
    return { code: grpcStatus.INTERNAL, details: "internal error" };
  }
}

/** "Listener", "Cluster"...: the last segment of a type URL (a bounded label). */
function shortType(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf(".") + 1);
}

function addTo<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  let set = map.get(key);
  if (!set) map.set(key, (set = new Set()));
  set.add(value);
}

function removeFrom<K, V>(map: Map<K, Set<V>>, key: K, value: V): void {
  const set = map.get(key);
  set?.delete(value);
  if (set?.size === 0) map.delete(key);
}

function takeAll<K, V>(map: Map<K, Set<V>>, key: K): V[] {
  const set = map.get(key);
  map.delete(key);
  return set ? [...set] : [];
}
