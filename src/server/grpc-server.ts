import { Server, ServerCredentials, type ServerOptions } from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "pino";
import { RegistryServiceService, WatchInstancesResponse } from "../../gen/registry/v1/registry.js";
import { RegistryApi } from "../api/registry-api.js";
import type { RegistrationKeys } from "../registry/credentials.js";
import type { ServiceRegistry } from "../registry/service-registry.js";
import { shuttingDown } from "../registry/watcher.js";
import { reflectionPackageDefinition } from "./proto-files.js";
import { registryHandlers } from "./registry-handlers.js";
import { WatchEventEncoder } from "./watch-encoder.js";
import { WatchStreams } from "./watch-handler.js";

/** The service definition, except that WatchInstances also sends pre-encoded bytes as they are. */
const registryService = {
  ...RegistryServiceService,
  watchInstances: {
    ...RegistryServiceService.watchInstances,
    responseSerialize: (value: WatchInstancesResponse | Buffer): Buffer =>
      Buffer.isBuffer(value) ? value : Buffer.from(WatchInstancesResponse.encode(value).finish()),
  },
};

/** Name under which grpc.health.v1 reports the registry service itself. */
export const REGISTRY_SERVICE_NAME = "registry.v1.RegistryService";

/** Options of `RegistryGrpcServer`. */
export interface RegistryGrpcServerOptions {
  readonly registry: ServiceRegistry;
  readonly keys: RegistrationKeys;
  /** The request layer; built from `registry` and `keys` when omitted (share one with the HTTP API). */
  readonly api?: RegistryApi;
  readonly logger: Logger;
  /** Plaintext when omitted. */
  readonly credentials?: ServerCredentials;
  /** A watch stream accepting nothing this long is ended. Default 60000 ms. */
  readonly watchStallTimeoutMs?: number;
  /** How long shutdown waits for in-flight calls before cutting them. Default 5000 ms. */
  readonly shutdownGraceMs?: number;
  /** grpc-js server options (message sizes, keepalive...). */
  readonly serverOptions?: ServerOptions;
}

/**
 * The gRPC front end: RegistryService, grpc.health.v1 and server reflection on
 * one grpc-js server. Translation only; the registry core does the work.
 */
export class RegistryGrpcServer {
  private readonly server: Server;
  private readonly health = new HealthImplementation({ "": "SERVING", [REGISTRY_SERVICE_NAME]: "SERVING" });
  private readonly watchStreams: WatchStreams;
  private shuttingDown = false;

  constructor(private readonly options: RegistryGrpcServerOptions) {
    const { registry, keys, logger } = options;
    const api = options.api ?? new RegistryApi(registry, keys);
    this.watchStreams = new WatchStreams({
      api,
      logger,
      encoder: new WatchEventEncoder(() => registry.epoch),
      stallTimeoutMs: options.watchStallTimeoutMs ?? 60_000,
    });
    this.server = new Server(options.serverOptions);
    this.server.addService(registryService, registryHandlers({ api, logger, watchStreams: this.watchStreams }));
    this.health.addToServer(this.server);
    // A replica that lost its shared store must be taken out of rotation.
    registry.on("availability", (available) => this.setServing(available));
    new ReflectionService(reflectionPackageDefinition()).addToServer(this.server);
  }

  /** Binds and starts serving; resolves with the bound port (useful with port 0). */
  listen(host: string, port: number): Promise<number> {
    const address = host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
    return new Promise((resolve, reject) => {
      this.server.bindAsync(address, this.options.credentials ?? ServerCredentials.createInsecure(), (err, bound) =>
        err ? reject(err) : resolve(bound),
      );
    });
  }

  /** Number of open watch streams. */
  get watchStreamCount(): number {
    return this.watchStreams.size;
  }

  private setServing(serving: boolean): void {
    if (this.shuttingDown) return;
    const status = serving ? "SERVING" : "NOT_SERVING";
    this.health.setStatus("", status);
    this.health.setStatus(REGISTRY_SERVICE_NAME, status);
  }

  /**
   * Graceful stop: report NOT_SERVING, refuse new calls, end watch streams with
   * UNAVAILABLE, let in-flight unary calls finish (bounded by the grace
   * period), then cut whatever is left.
   */
  async shutdown(): Promise<void> {
    this.setServing(false);
    this.shuttingDown = true;
    const drained = new Promise<void>((resolve) => this.server.tryShutdown(() => resolve()));
    this.watchStreams.endAll(shuttingDown());
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.options.shutdownGraceMs ?? 5000);
    });
    await Promise.race([drained, timedOut]);
    clearTimeout(timer);
    this.server.forceShutdown();
  }
}
