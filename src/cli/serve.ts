import type { Logger } from "pino";
import type { Config } from "../config/settings.js";
import { resolveRegistrationKeys } from "../config/registration-key.js";
import { RegistrationKeys } from "../registry/credentials.js";
import { ServiceRegistry } from "../registry/service-registry.js";
import { RegistryGrpcServer } from "../server/grpc-server.js";
import { createStore } from "../store/create-store.js";

/** A started registry server. */
export interface RunningServer {
  readonly port: number;
  readonly registry: ServiceRegistry;
  /** Graceful stop: streams end with UNAVAILABLE, in-flight calls finish, the store is flushed. */
  close(): Promise<void>;
}

/** Builds the registry from a configuration and serves it over gRPC. */
export async function startServer(config: Config, logger: Logger): Promise<RunningServer> {
  const keys = new RegistrationKeys(resolveRegistrationKeys(config.registrationKey, config.dataDir, logger));
  const registry = new ServiceRegistry({
    store: createStore(config),
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
  const grpc = new RegistryGrpcServer({
    registry,
    keys,
    logger,
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
