import type { ServerDuplexStream, ServiceError } from "@grpc/grpc-js";
import type { Logger } from "pino";
import type { PresentedCredentials, Principal } from "../api/authenticator.js";
import { peerHost } from "../api/peer-address.js";
import type { RegistryApi } from "../api/registry-api.js";
import { RegistryError } from "../registry/registry-error.js";
import { credentialsFromMetadata } from "../server/auth.js";
import { safeServiceError } from "../server/status-mapping.js";
import { AdsSession } from "./ads-session.js";
import type { DiscoveryRequest, DiscoveryResponse, StructValue } from "./envoy-protos.js";
import type { XdsHub } from "./xds-hub.js";
import { StreamRoster } from "../api/stream-roster.js";
import { ThrottledWarning } from "../logging/throttled-warning.js";

/** Node metadata fields carrying credentials (fixed: other languages' bootstrap files name them). */
const NODE_KEY_FIELD = "registry_key";
const NODE_SERVICE_ID_FIELD = "registry_service_id";
const NODE_SERVICE_TOKEN_FIELD = "registry_service_token";

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
  /** The first request must arrive, and its credentials be checked, within this long. */
  readonly firstRequestTimeoutMs: number;
  /** A stream that takes no response for this long is ended (WATCH_STALL_TIMEOUT_MS). */
  readonly stallTimeoutMs: number;
  /** xDS streams open at once, all connections together, on one connection, and under one instance's credentials. Unlimited when omitted. */
  readonly maxStreams?: number;
  readonly maxStreamsPerConnection?: number;
  readonly maxStreamsPerInstance?: number;
  /** Told of every stream refused by a quota, by the quota's setting name (for metrics). */
  readonly onQuotaRefused?: (quota: string) => void;
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
  private readonly roster: StreamRoster;
  /**
   * NACKs are logged once a minute per type at most, with how many: a client
   * that NACKs every response while changing what it asks for draws a new
   * response, and so a new NACK, as fast as it can send (the metric counts each).
   */
  private readonly nackWarning: ThrottledWarning;

  constructor(private readonly deps: AdsStreamsDeps) {
    this.nackWarning = new ThrottledWarning({ logger: deps.logger });
    this.roster = new StreamRoster(deps.api.auth.keys, deps.api.registry, {
      total: { setting: "MAX_XDS_STREAMS", max: deps.maxStreams },
      perConnection: { setting: "MAX_XDS_STREAMS_PER_CONNECTION", max: deps.maxStreamsPerConnection },
      perInstance: { setting: "MAX_XDS_STREAMS_PER_INSTANCE", max: deps.maxStreamsPerInstance },
      onRefused: deps.onQuotaRefused,
    });
  }

  get size(): number {
    return this.roster.size;
  }

  /** Ends every stream with `error` (UNAVAILABLE at shutdown). */
  endAll(error: RegistryError): void {
    this.roster.endAll(error);
    this.nackWarning.flush();
  }

  readonly handle = (call: AdsCall): void => {
    const { hub, logger } = this.deps;
    let session: AdsSession | undefined;
    let stall: NodeJS.Timeout | undefined;
    let over = false;
    /** Requests that came while the first one was being authenticated. */
    const queued: DiscoveryRequest[] = [];

    const finish = (error?: unknown): void => {
      if (over) return;
      over = true;
      clearTimeout(silent);
      clearTimeout(stall);
      if (session) hub.unsubscribe(session);
      this.roster.leave(finish);
      if (call.cancelled) return;
      try {
        if (error === undefined) call.end();
        else call.emit("error", status(error, logger));
      } catch {
        // The call is gone either way.
      }
    };
    const refusal = this.roster.admit(finish, call.getPeer());
    if (refusal !== undefined) {
      // Before the first request is read: a refused stream costs the server nothing more.
      call.emit("error", status(refusal, logger));
      return;
    }

    // Until the stream is authenticated: its first request, then the check of its credentials.
    const silent = setTimeout(
      () =>
        finish(
          new RegistryError(
            queued.length === 0 ? "invalid_argument" : "unavailable",
            queued.length === 0
              ? `the first DiscoveryRequest must arrive within ${this.deps.firstRequestTimeoutMs} ms`
              : `the stream's credentials could not be checked within ${this.deps.firstRequestTimeoutMs} ms; retry`,
          ),
        ),
      this.deps.firstRequestTimeoutMs,
    );
    silent.unref();

    const take = (request: DiscoveryRequest): void => {
      try {
        session?.onRequest(request);
      } catch (err) {
        finish(err);
      }
      watchStall();
    };
    /** A client that takes no response for the stall timeout holds its buffers for nothing: end it. */
    const watchStall = (): void => {
      if (stall !== undefined || !session?.isBlocked) return;
      stall = setTimeout(
        () => finish(new RegistryError("resource_exhausted", `the xDS stream took no response for ${this.deps.stallTimeoutMs} ms`)),
        this.deps.stallTimeoutMs,
      );
    };

    call.on("cancelled", () => finish());
    call.on("error", () => finish());
    call.on("end", () => finish());
    call.on("drain", () => {
      clearTimeout(stall);
      stall = undefined;
      session?.resume();
      watchStall();
    });
    call.on("data", (request: DiscoveryRequest) => {
      if (over) return;
      if (session) return take(request);
      if (queued.length >= MAX_QUEUED_BEFORE_AUTH) {
        return finish(new RegistryError("resource_exhausted", `at most ${MAX_QUEUED_BEFORE_AUTH} requests may wait for the stream's credentials to be checked`));
      }
      queued.push(request);
      if (queued.length > 1) return; // the first is being authenticated
      Promise.resolve()
        .then(() => this.authenticate(call, request))
        .then((who) => {
          if (over) return;
          clearTimeout(silent);
          // Only the first request carries the node: its id names the client in later log lines.
          const node = clip(request.node?.id || undefined);
          const revoked = who && this.roster.attach(finish, who);
          if (revoked) return finish(revoked);
          session = new AdsSession(hub, (response) => call.write(response), (error) => finish(error), {
            sent: (typeUrl) => this.deps.onResponse?.(shortType(typeUrl)),
            rejected: (typeUrl, nack) => {
              const type = shortType(typeUrl);
              this.deps.onNack?.(type);
              this.nackWarning.note(type, "xDS client rejected a response (NACK); it keeps the version it had", {
                node,
                type,
                version: clip(nack.version_info),
                nonce: clip(nack.response_nonce),
                error: clip(nack.error_detail?.message),
              });
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
    // The node's credentials come first; the call's headers are read (and their syntax checked) only without them.
    const presented = hasAny(fromNode) ? fromNode : credentialsFromMetadata(call.metadata);
    const trust = this.deps.trust ?? "credentials";
    if (!hasAny(presented)) {
      if (trust !== "credentials") return undefined;
      throw new RegistryError("unauthenticated", MISSING);
    }
    if (presented === fromNode && fromNode.key === undefined && (!fromNode.serviceId || !fromNode.serviceToken)) {
      throw new RegistryError("unauthenticated", `instance credentials need both "${NODE_SERVICE_ID_FIELD}" and "${NODE_SERVICE_TOKEN_FIELD}" in the node metadata`);
    }
    return this.deps.api.auth.identify(presented, { peerHost: peerHost(call.getPeer()) });
  }
}

/** Requests a stream may send before its credentials are checked (a client sends one, then waits). */
const MAX_QUEUED_BEFORE_AUTH = 16;

/** A client-chosen string as a log field: bounded, so a client cannot flood the log. */
function clip(value: string | undefined): string | undefined {
  return value !== undefined && value.length > 256 ? `${value.slice(0, 256)}…` : value;
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
  return safeServiceError(error, logger, "StreamAggregatedResources");
}

/** "Listener", "Cluster"...: the last segment of a type URL (a bounded label). */
function shortType(typeUrl: string): string {
  return typeUrl.slice(typeUrl.lastIndexOf(".") + 1);
}

