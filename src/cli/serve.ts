import type { Logger } from "pino";
import type { Config } from "../config/settings.js";
import { resolveRegistrationKeys } from "../config/registration-key.js";
import { InstrumentedStore } from "../observability/instrumented-store.js";
import { ServingState } from "../observability/serving-state.js";
import { RegistrationKeys } from "../registry/credentials.js";
import { ServiceRegistry } from "../registry/service-registry.js";
import { RegistryGrpcServer } from "../server/grpc-server.js";
import { createStore } from "../store/create-store.js";
import type { RegistryStore } from "../store/registry-store.js";

/** A started registry server. */
export interface RunningServer {
  readonly port: number;
  readonly registry: ServiceRegistry;
  /** Graceful stop: streams end with UNAVAILABLE, in-flight calls finish, the store is flushed. */
  close(): Promise<void>;
}

/** Overrides for embedding and tests. */
export interface StartOptions {
  /** Use this store instead of the one `STORE` names. */
  readonly store?: RegistryStore;
}

/** Builds the registry from a configuration and serves it over gRPC. */
export async function startServer(config: Config, logger: Logger, options: StartOptions = {}): Promise<RunningServer> {
  const keys = new RegistrationKeys(resolveRegistrationKeys(config.registrationKey, config.dataDir, logger));
  const serving = new ServingState();
  const store = new InstrumentedStore(options.store ?? createStore(config), {
    onFailingChange(failing, err) {
      serving.set("store_failing", failing, "a store commit failed");
      if (failing) logger.error({ err }, "store commit failed; reporting NOT_SERVING until a commit succeeds");
      else logger.warn("store commits again; serving");
    },
  });
  const registry = new ServiceRegistry({
    store,
    logger,
    healthChecks: config.healthChecks,
    healthCheckInterval: config.healthCheckIntervalMs,
    healthCheckBatchSize: config.healthCheckBatchSize,
    healthCheckMaxRequests: config.healthCheckMaxRequests,
    healthCheckTTL: config.healthCheckTtlMs,
    unhealthyThreshold: config.unhealthyThreshold,
    healthyThreshold: config.healthyThreshold,
    deregisterAfter: config.deregisterAfterMs,
    historySize: config.historySize,
    watchQueueLimit: config.watchQueueLimit,
    bookmarkInterval: config.bookmarkIntervalMs,
  });
  try {
    await registry.start();
  } catch (err) {
    await registry.close().catch(() => undefined);
    throw err;
  }
  serving.follow(registry);
  const grpc = new RegistryGrpcServer({
    registry,
    keys,
    logger,
    serving,
    watchStallTimeoutMs: config.watchStallTimeoutMs,
    shutdownGraceMs: config.shutdownGraceMs,
  });
  let port: number;
  try {
    port = await grpc.listen(config.host, config.port);
  } catch (err) {
    await registry.close();
    throw err;
  }
  logger.info(
    { host: config.host, port, store: config.store, dataDir: config.dataDir, epoch: registry.epoch, instances: registry.size },
    "registry serving gRPC",
  );
  return {
    port,
    registry,
    async close() {
      await grpc.shutdown();
      await registry.close();
    },
  };
}
