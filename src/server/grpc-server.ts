import type { ServerOptions as Http2ServerOptions } from "node:http2";
import type { Socket } from "node:net";
import { Server, ServerCredentials, type ConnectionInjector, type ServerOptions } from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import type { Logger } from "pino";
import { GetByTypeResponse, RegistryServiceService, WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import { CallSignals } from "../api/call-signals.js";
import { RegistryApi } from "../api/registry-api.js";
import { ServingState } from "../observability/serving-state.js";
import type { RegistrationKeys } from "../registry/credentials.js";
import type { ServiceRegistry } from "../registry/service-registry.js";
import { shuttingDown } from "../registry/watcher.js";
import { routeGrpcJsLog } from "./grpc-js-log.js";
import { compressedFlagGuardHooks } from "./compressed-flag-guard.js";
import { callHooksInterceptor } from "./call-hooks.js";
import { requestReadTimeoutHooks } from "./request-read-timeout.js";
import { earlyStatusResetHooks, resetStreamsAnsweredByGrpcJs } from "./early-status-reset.js";
import { HealthService } from "./health-service.js";
import { reflectionPackageDefinition } from "./proto-files.js";
import { rpcMetricsHooks, type RpcObserver } from "./rpc-metrics.js";
import { keepAliveHandler } from "./keepalive-handler.js";
import { registryHandlers } from "./registry-handlers.js";
import { WatchEventEncoder } from "./watch-encoder.js";
import { WatchStreams } from "./watch-handler.js";
import { decodeGetByTypeRequest, decodeRegisterRequest, decodeWatchInstancesRequest } from "./request-decoders.js";
import { AdsStreams } from "../xds/ads-handler.js";
import { ADS_SERVICE } from "../xds/envoy-protos.js";
import { XdsHub } from "../xds/xds-hub.js";
import { settledWithin } from "../util/settled-within.js";

/**
 * The service definition, except that WatchInstances also sends pre-encoded
 * bytes as they are, and Register and WatchInstances read their integers
 * whole (see request-decoders.ts).
 */
const registryService = {
  ...RegistryServiceService,
  register: {
    ...RegistryServiceService.register,
    requestDeserialize: decodeRegisterRequest,
  },
  getByType: {
    ...RegistryServiceService.getByType,
    requestDeserialize: decodeGetByTypeRequest,
    responseSerialize: (value: GetByTypeResponse | Buffer): Buffer =>
      Buffer.isBuffer(value) ? value : Buffer.from(GetByTypeResponse.encode(value).finish()),
  },
  watchInstances: {
    ...RegistryServiceService.watchInstances,
    requestDeserialize: decodeWatchInstancesRequest,
    responseSerialize: (value: WatchInstancesResponse | Buffer): Buffer =>
      Buffer.isBuffer(value) ? value : Buffer.from(WatchInstancesResponse.encode(value).finish()),
  },
};

/**
 * Node's HTTP/2 sessions count the frames nghttp2 finds invalid (a request
 * whose `:path` is `*`, a HEADERS frame breaking HTTP/2's messaging rules) and,
 * past `maxSessionInvalidFrames` (1000 by default) on one connection, destroy
 * the session: GOAWAY(INTERNAL_ERROR), which resets every other call on that
 * connection. One client's (or, behind a proxy that multiplexes many clients
 * onto one connection, one user's) malformed calls would so end everyone's
 * calls and watch streams. Each such frame is already answered alone, with
 * RST_STREAM, at less cost than a valid call, which has no per-connection
 * budget either; floods of control frames and resets stay bounded by
 * nghttp2's own limits. So the budget is lifted and a bad call fails alone.
 *
 * grpc-js builds its http2 servers (for `bindAsync` and for connection
 * injectors) from its `commonServerOptions` and offers no option for this;
 * the fuzz test (test/fuzz/grpc-call-fuzz.test.ts) fails if a grpc-js upgrade
 * stops honouring it.
 */
function tolerateInvalidStreamFrames(server: Server): void {
  const internals = server as unknown as { commonServerOptions?: Http2ServerOptions };
  if (internals.commonServerOptions) internals.commonServerOptions.maxSessionInvalidFrames = 2 ** 32 - 1;
}

/** Name under which grpc.health.v1 reports the registry service itself. */
export const REGISTRY_SERVICE_NAME = "registry.v1.RegistryService";

/** Options of `RegistryGrpcServer`. */
export interface RegistryGrpcServerOptions {
  readonly registry: ServiceRegistry;
  readonly keys: RegistrationKeys;
  /** Drives grpc.health.v1; by default one following the registry's store availability. */
  readonly serving?: ServingState;
  /** The request layer; built from `registry` and `keys` when omitted (share one with the HTTP API). */
  readonly api?: RegistryApi;
  readonly logger: Logger;
  /** Plaintext when omitted. */
  readonly credentials?: ServerCredentials;
  /** A watch stream accepting nothing this long is ended. Default 60000 ms. */
  readonly watchStallTimeoutMs?: number;
  /** After a stalled stream's status, how long before its HTTP/2 stream is reset. Default 2000 ms. */
  readonly watchResetGraceMs?: number;
  /** Watch streams open at once (MAX_WATCH_STREAMS); unlimited when omitted. */
  readonly maxWatchStreams?: number;
  /** Watch streams open at once on one connection (MAX_WATCH_STREAMS_PER_CONNECTION); unlimited when omitted. */
  readonly maxWatchStreamsPerConnection?: number;
  /** Watch streams open at once under one instance's credentials (MAX_WATCH_STREAMS_PER_INSTANCE); unlimited when omitted. */
  readonly maxWatchStreamsPerInstance?: number;
  /** How long shutdown waits for in-flight calls before cutting them. Default 5000 ms. */
  readonly shutdownGraceMs?: number;
  /** A call whose request has not arrived in full this long after it started ends with DEADLINE_EXCEEDED. Default 10000. */
  readonly requestReadTimeoutMs?: number;
  /** How often a KeepAlive session gets a message from the server. Default 10000 ms. */
  readonly sessionMessageIntervalMs?: number;
  /** grpc-js server options (message sizes, keepalive...). */
  readonly serverOptions?: ServerOptions;
  /** Receives RPC counts and latencies, watch events and xDS responses sent (RegistryMetrics). */
  readonly metrics?: RpcObserver & {
    onWatchEventsSent(type: string, count: number): void;
    onQuotaRefused?(quota: string): void;
    onXdsResponse?(type: string): void;
    onXdsNack?(type: string): void;
  };
  /**
   * Serve envoy's Aggregated Discovery Service (xDS) for proxyless gRPC
   * clients; `trust` says how a stream without credentials is taken (see
   * AdsStreams). Off when omitted.
   */
  readonly xds?: {
    readonly trust: "credentials" | "certificate" | "none";
    /**
     * xDS streams open at once (MAX_XDS_STREAMS), on one connection
     * (MAX_XDS_STREAMS_PER_CONNECTION) and under one instance's credentials
     * (MAX_XDS_STREAMS_PER_INSTANCE); unlimited when omitted.
     */
    readonly maxStreams?: number;
    readonly maxStreamsPerConnection?: number;
    readonly maxStreamsPerInstance?: number;
  };
}

/**
 * The gRPC front end: RegistryService, grpc.health.v1 and server reflection on
 * one grpc-js server. Translation only; the registry core does the work.
 */
export class RegistryGrpcServer {
  private readonly server: Server;
  private readonly health: HealthService;
  private readonly serving: ServingState;
  private readonly watchStreams: WatchStreams;
  private readonly adsStreams: AdsStreams | undefined;
  /** The abort signals of unary calls in flight; shutdown aborts them once it stops waiting. */
  private readonly calls = new CallSignals();
  private injector: ConnectionInjector | undefined;
  /** grpc-js's http2 servers whose streams `resetStreamsAnsweredByGrpcJs` already follows. */
  private readonly hookedHttp2Servers = new WeakSet<object>();
  private shuttingDown = false;

  constructor(private readonly options: RegistryGrpcServerOptions) {
    const { registry, keys, logger, metrics } = options;
    routeGrpcJsLog(logger);
    const api = options.api ?? new RegistryApi(registry, keys);
    this.watchStreams = new WatchStreams({
      api,
      logger,
      encoder: new WatchEventEncoder(() => registry.epoch),
      stallTimeoutMs: options.watchStallTimeoutMs ?? 60_000,
      ...(options.watchResetGraceMs !== undefined ? { resetGraceMs: options.watchResetGraceMs } : {}),
      ...(options.maxWatchStreams !== undefined ? { maxStreams: options.maxWatchStreams } : {}),
      ...(options.maxWatchStreamsPerConnection !== undefined ? { maxStreamsPerConnection: options.maxWatchStreamsPerConnection } : {}),
      ...(options.maxWatchStreamsPerInstance !== undefined ? { maxStreamsPerInstance: options.maxWatchStreamsPerInstance } : {}),
      ...(options.metrics?.onQuotaRefused ? { onQuotaRefused: (quota: string) => options.metrics?.onQuotaRefused?.(quota) } : {}),
      ...(metrics ? { onEventsSent: (type: string, count: number) => metrics.onWatchEventsSent(type, count) } : {}),
    });
    const interceptors = [...(options.serverOptions?.interceptors ?? [])];
    // One wrapper for them all (each interceptor is a layer every message of
    // every call passes through), first in the list so that it wraps grpc-js's
    // base call directly, as the Compressed-Flag guard needs (see its doc).
    interceptors.unshift(
      callHooksInterceptor([
        compressedFlagGuardHooks(),
        requestReadTimeoutHooks(options.requestReadTimeoutMs ?? 10_000),
        earlyStatusResetHooks(),
        ...(metrics ? [rpcMetricsHooks(metrics)] : []),
      ]),
    );
    this.server = new Server({ ...options.serverOptions, interceptors });
    tolerateInvalidStreamFrames(this.server);
    this.server.addService(registryService, {
      ...registryHandlers({ api, logger, watchStreams: this.watchStreams, signals: this.calls }),
      keepAlive: keepAliveHandler(api, logger, options.sessionMessageIntervalMs ?? 10_000, options.requestReadTimeoutMs ?? 10_000),
    });
    if (options.xds) {
      const ads = new AdsStreams({
        api,
        hub: new XdsHub(registry),
        logger,
        trust: options.xds.trust,
        firstRequestTimeoutMs: options.requestReadTimeoutMs ?? 10_000,
        stallTimeoutMs: options.watchStallTimeoutMs ?? 60_000,
        ...(options.xds.maxStreams !== undefined ? { maxStreams: options.xds.maxStreams } : {}),
        ...(options.xds.maxStreamsPerConnection !== undefined ? { maxStreamsPerConnection: options.xds.maxStreamsPerConnection } : {}),
        ...(options.xds.maxStreamsPerInstance !== undefined ? { maxStreamsPerInstance: options.xds.maxStreamsPerInstance } : {}),
        ...(options.metrics?.onQuotaRefused ? { onQuotaRefused: (quota: string) => options.metrics?.onQuotaRefused?.(quota) } : {}),
        ...(metrics?.onXdsResponse ? { onResponse: (type: string) => metrics.onXdsResponse?.(type) } : {}),
        ...(metrics?.onXdsNack ? { onNack: (type: string) => metrics.onXdsNack?.(type) } : {}),
      });
      this.adsStreams = ads;
      this.server.addService(ADS_SERVICE, { streamAggregatedResources: ads.handle });
    }
    // A replica that lost its store, or is draining, must be taken out of rotation.
    this.serving = options.serving ?? new ServingState().follow(registry);
    const status = (): "SERVING" | "NOT_SERVING" => (this.serving.serving ? "SERVING" : "NOT_SERVING");
    this.health = new HealthService({ "": status(), [REGISTRY_SERVICE_NAME]: status() });
    this.serving.on("change", () => {
      this.health.setStatus("", status());
      this.health.setStatus(REGISTRY_SERVICE_NAME, status());
    });
    this.health.addToServer(this.server);
    new ReflectionService(reflectionPackageDefinition()).addToServer(this.server);
  }

  /** Binds and starts serving; resolves with the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number> {
    const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, this.options.credentials ?? ServerCredentials.createInsecure(), (err, bound) => {
        if (err) return reject(err);
        resetStreamsAnsweredByGrpcJs(this.server, this.hookedHttp2Servers, this.options.logger);
        resolve(bound);
      });
    });
  }

  /**
   * Serves an HTTP/2 connection accepted elsewhere: the port shared with
   * HTTP/1.1 (`PortListener`), which has already terminated any TLS, so the
   * connection is taken as plaintext. Shutdown covers these connections too.
   */
  acceptConnection(socket: Socket): void {
    // grpc-js would serve a connection injected after tryShutdown(): refuse it here.
    if (this.shuttingDown) return void socket.destroy();
    if (this.injector === undefined) {
      this.injector = this.server.createConnectionInjector(ServerCredentials.createInsecure());
      resetStreamsAnsweredByGrpcJs(this.server, this.hookedHttp2Servers, this.options.logger);
    }
    this.injector.injectConnection(socket);
  }

  /** Number of open watch streams. */
  get watchStreamCount(): number {
    return this.watchStreams.size;
  }

  /** Number of open xDS streams. */
  get xdsStreamCount(): number {
    return this.adsStreams?.size ?? 0;
  }

  /**
   * Graceful stop: report NOT_SERVING, refuse new calls, end watch streams,
   * KeepAlive sessions and grpc.health.v1 Watch streams with UNAVAILABLE, let in-flight unary
   * calls finish (bounded by the grace period), then abort the signals of
   * those left (a write not yet committed is then not made) and cut them.
   */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    this.serving.set("shutting_down", true);
    this.health.endAll();
    // KeepAlive streams end now, as watches do, and their instances are not failed for it: this server is going, not they.
    this.options.registry.releaseSessions();
    const drained = new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    this.watchStreams.endAll(shuttingDown());
    this.adsStreams?.endAll(shuttingDown());
    await settledWithin(drained, this.options.shutdownGraceMs ?? 5000);
    // Before the cut: grpc-js would report each call cancelled too, but only once its stream closes.
    this.calls.abortAll();
    this.server.forceShutdown();
  }
}
